"""Warm job starts (runtime/jobs/warm.py): a job started from a preloaded interpreter sees what a
cold ``python script.py`` sees, and ends the same way: crash, SystemExit, SIGKILL, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.jobs import run_command, warm
from runtime.jobs.contract import CommandResult

PROBE = """\
import json, os, signal, sys
main = sys.modules["__main__"]

def collects():
    import gc
    cycle = []
    cycle.append(cycle)
    del cycle
    return gc.collect() > 0

print(json.dumps({
    "argv": sys.argv, "orig_argv": sys.orig_argv, "cwd": os.getcwd(), "path": sys.path,
    "env": dict(os.environ), "flags": list(sys.flags), "executable": sys.executable,
    "main": sorted(vars(main)), "file": main.__dict__.get("__file__"), "name": __name__,
    "loader": type(main.__dict__.get("__loader__")).__name__,
    "spec": __spec__ and [__spec__.name, __spec__.origin],
    "package": __package__, "doc": __doc__, "annotations": main.__dict__.get("__annotations__"),
    "sigint": repr(signal.getsignal(signal.SIGINT)),
    "sigpipe": repr(signal.getsignal(signal.SIGPIPE)),
    "sigterm": repr(signal.getsignal(signal.SIGTERM)),
    "stdin": sys.stdin.read(), "encoding": sys.stdout.encoding,
    "excepthook_is_default": sys.excepthook is sys.__excepthook__,
    "user_base": __import__("site").getuserbase(),
    "shadow": getattr(sys.modules.get("json_shadow_probe"), "__file__", None),
    "preloaded": "numpy" in sys.modules,
    "frozen": __import__("gc").get_freeze_count() > 0,
    "collects": collects(), "gc_enabled": __import__("gc").isenabled(),
}, sort_keys=True))
"""
"""Prints what a job sees of how it started (``preloaded`` and ``frozen``: the differences by
design; ``collects``: the job's own garbage cycles are collected all the same)."""


@pytest.fixture(autouse=True)
def _small_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """numpy alone (fast to load); every test starts and ends with no warm process waiting."""
    monkeypatch.setenv(warm.PRELOAD_ENV, "numpy")
    monkeypatch.setenv(warm.POOL_ENV, "1")
    warm.discard_all()
    yield
    warm.discard_all()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(home), "SM_CURRENT_HOST": "algo-1", **extra}


def _run(
    mode: str, argv: list[str], env: dict[str, str], cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[CommandResult, str]:
    """One run in ``mode``; a warm run is handed a process primed for its environment first."""
    monkeypatch.setenv(warm.JOB_START_ENV, mode)
    if mode == "warm":
        warm.prime(argv[0], env)
    log = cwd / f"{mode}.log"
    log.unlink(missing_ok=True)
    result = run_command(argv, env=env, cwd=cwd, log_path=log, timeout_seconds=60)
    assert result.started_warm is (mode == "warm")
    return result, log.read_text()


def _both(
    argv: list[str], env: dict[str, str], cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[CommandResult, str]]:
    return {mode: _run(mode, argv, env, cwd, monkeypatch) for mode in ("cold", "warm")}


def _seen(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_a_warm_script_sees_what_a_cold_one_sees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(PROBE)
    (tmp_path / "lib").mkdir()
    env = _env(tmp_path, PYTHONPATH=f"{tmp_path / 'lib'}{os.pathsep}relative-entry")
    # What the caller's process holds never reaches a job, warm or cold.
    monkeypatch.setenv("PYTHONPATH", "/caller/path")
    monkeypatch.setenv("SM_LEAK", "caller's")
    argv = [sys.executable, str(code / "probe.py"), "a", "b c"]
    runs = _both(argv, env, tmp_path, monkeypatch)
    cold, hot = (_seen(runs[mode][1]) for mode in ("cold", "warm"))
    assert hot.pop("preloaded") is True and cold.pop("preloaded") is False
    assert hot.pop("frozen") is True and cold.pop("frozen") is False
    assert hot == cold and hot["collects"] is True
    assert hot["argv"] == [str(code / "probe.py"), "a", "b c"]
    assert hot["path"][:3] == [str(code), str(tmp_path / "lib"), str(tmp_path / "relative-entry")]
    assert "/caller/path" not in hot["path"] and "SM_LEAK" not in hot["env"]
    assert hot["user_base"].startswith(env["HOME"])
    assert runs["warm"][0].returncode == runs["cold"][0].returncode == 0


def test_a_warm_module_sees_what_a_cold_one_sees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "lib" / "probepkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "probe.py").write_text(PROBE)
    env = _env(tmp_path, PYTHONPATH=str(tmp_path / "lib"))
    argv = [sys.executable, "-m", "probepkg.probe", "--flag", "x"]
    runs = _both(argv, env, tmp_path, monkeypatch)
    cold, hot = (_seen(runs[mode][1]) for mode in ("cold", "warm"))
    assert hot.pop("preloaded") is True and cold.pop("preloaded") is False
    assert hot.pop("frozen") is True and cold.pop("frozen") is False
    assert hot == cold
    assert hot["argv"] == [str(package / "probe.py"), "--flag", "x"]
    assert hot["name"] == "__main__" and hot["path"][0] == str(tmp_path)


@pytest.mark.parametrize(
    ("body", "returncode"),
    [
        ("def f():\n    raise ValueError('bad input row 3')\nf()", 1),
        ("import sys\nsys.exit('ERROR: the config is wrong')", 1),
        ("import sys\nsys.exit(3)", 3),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGINT)", -signal.SIGINT),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM),
        ("import atexit\natexit.register(print, 'bye')\nprint('done')", 0),
    ],
    ids=["crash", "exit-message", "exit-code", "sigkill", "ctrl-c", "sigterm", "atexit"],
)
def test_a_warm_job_ends_as_a_cold_one(
    body: str, returncode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "job.py").write_text(body + "\n")
    runs = _both([sys.executable, str(tmp_path / "job.py")], _env(tmp_path), tmp_path, monkeypatch)
    assert runs["warm"][0].returncode == runs["cold"][0].returncode == returncode
    # The same output and the same traceback: the warm start's own frame is not in it.
    assert runs["warm"][1] == runs["cold"][1]
    assert runs["warm"][0].stderr_tail == runs["cold"][0].stderr_tail


def test_a_library_the_job_ships_itself_wins_over_the_preloaded_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A code folder holding its own ``numpy`` gets it, as on a cold start: the warm process
    sees that the preloaded module would resolve elsewhere and starts the job cold."""
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text("SHIPPED = True\n")
    (tmp_path / "job.py").write_text("import numpy\nprint(getattr(numpy, 'SHIPPED', False))\n")
    runs = _both([sys.executable, str(tmp_path / "job.py")], _env(tmp_path), tmp_path, monkeypatch)
    assert runs["warm"][1].strip() == runs["cold"][1].strip() == "True"


def test_an_environment_the_preload_depends_on_gets_its_own_warm_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """OMP/BLAS thread counts and PYTHON* flags are read as the interpreter and its libraries
    start: a warm process started for other values is never handed the job."""
    (tmp_path / "job.py").write_text(PROBE)
    monkeypatch.setenv(warm.JOB_START_ENV, "warm")
    warm.prime(sys.executable, _env(tmp_path))
    env = _env(tmp_path, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    log = tmp_path / "job.log"
    result = run_command(
        [sys.executable, str(tmp_path / "job.py")],
        env=env, cwd=tmp_path, log_path=log, timeout_seconds=60,
    )  # fmt: skip
    assert not result.started_warm  # none waits for these values yet: a cold start
    seen = _seen(log.read_text())
    assert seen["env"]["OPENBLAS_NUM_THREADS"] == "1" and not seen["preloaded"]
    assert warm.startup_env(env) == {
        "PATH": env["PATH"], "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"
    }  # fmt: skip


def test_a_job_that_comes_while_the_preload_loads_does_not_wait_for_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Handed over at once (the process is still importing numpy), the job stops the preload at
    the next module: it starts warm, with numpy, and without the libraries after it, which it
    would otherwise have waited for."""
    monkeypatch.setenv(warm.PRELOAD_ENV, "numpy,pandas,scipy.stats,sklearn.metrics,xgboost")
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(
        "import json, sys\n"
        "print(json.dumps({m: m in sys.modules for m in ('numpy', 'sklearn', 'xgboost')}))\n"
    )
    result, output = _run(
        "warm", [sys.executable, str(code / "probe.py")], _env(tmp_path), tmp_path, monkeypatch
    )
    assert result.returncode == 0, output
    assert _seen(output) == {"numpy": True, "sklearn": False, "xgboost": False}


def test_the_preload_reads_no_variable_a_job_sets_for_itself(tmp_path: Path):
    """Every environment variable the default preload reads (recorded as the warm process
    does) is one the warm process is started with, or one no job sets: no job's own value
    (HOME, SM_*, its request's Environment) can be baked into what it imports."""
    script = textwrap.dedent(
        """
        import importlib, json, os, sys
        read = set()
        class Recording(type(os.environ)):
            def __getitem__(self, key):
                read.add(key)
                return super().__getitem__(key)
        original = os.environ
        os.environ = Recording(original._data, original.encodekey, original.decodekey,
                               original.encodevalue, original.decodevalue)
        for name in sys.argv[1:]:
            importlib.import_module(name)
        print(json.dumps(sorted(read)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *warm.DEFAULT_PRELOAD],
        env={"PATH": os.environ["PATH"], "HOME": warm.NO_HOME},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    read = set(json.loads(done.stdout))
    job_specific = {key for key in read if not warm.startup_env({key: ""})}
    # HOME: only sysconfig's user base reads it, which the warm process derives again.
    assert job_specific <= {"HOME"} | {
        key for key in read if not key.startswith(("SM_", "TRAINING"))
    }
    assert not {key for key in read if key.startswith(("SM_", "TRAINING_JOB", "AWS_"))}


def test_cold_starts_on_demand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "job.py").write_text(PROBE)
    monkeypatch.setenv(warm.JOB_START_ENV, "cold")
    warm.prime(sys.executable, _env(tmp_path))
    assert warm.take([sys.executable, str(tmp_path / "job.py")], _env(tmp_path)) is None
    monkeypatch.setenv(warm.JOB_START_ENV, "lukewarm")
    with pytest.raises(ValueError, match="LOCAL_RUNTIME_JOB_START='lukewarm'"):
        warm.enabled()


def test_only_python_scripts_and_modules_start_warm():
    python = sys.executable
    assert warm.python_command([python, "job.py", "--x"], python)
    assert warm.python_command([python, "-m", "runtime.monitor", "--x"], python)
    assert not warm.python_command([python, "-c", "pass"], python)
    assert not warm.python_command([python, "-X", "dev", "job.py"], python)
    assert not warm.python_command(["/bin/sh", "job.sh"], python)
    assert not warm.python_command(["/other/python", "job.py"], python)


def test_no_warm_process_is_started_beyond_the_jobs_to_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The engine says how many jobs may still start: the last job's start prepares no other
    (a preload nobody uses costs its CPU all the same)."""
    (tmp_path / "job.py").write_text("print('ok')\n")
    monkeypatch.setenv(warm.JOB_START_ENV, "warm")
    env = _env(tmp_path)
    warm.prime(sys.executable, env)
    warm.expect_jobs(0)
    result = run_command(
        [sys.executable, str(tmp_path / "job.py")],
        env=env, cwd=tmp_path, log_path=tmp_path / "job.log", timeout_seconds=60,
    )  # fmt: skip
    assert result.started_warm and result.returncode == 0
    assert warm.take([sys.executable, str(tmp_path / "job.py")], env) is None
    warm.expect_jobs(None)
    warm.prime(sys.executable, env)
    found = warm.take([sys.executable, str(tmp_path / "job.py")], env)
    assert found is not None
    found.discard()


def _waiting() -> int:
    """Warm processes waiting, once every one asked for has started."""
    with warm._POOL.lock:
        warm._POOL.changed.wait_for(lambda: not any(warm._POOL.pending.values()), 30)
        return sum(len(group) for group in warm._POOL.idle.values())


def test_each_job_that_may_start_next_finds_a_warm_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Two jobs that start at the same moment (DataQuality and Train after Preprocess) are
    each handed a loaded process, not the second one a process that only starts loading;
    LOCAL_RUNTIME_WARM_POOL, when set, stays the size."""
    monkeypatch.setenv(warm.JOB_START_ENV, "warm")
    monkeypatch.delenv(warm.POOL_ENV)
    env = _env(tmp_path)
    warm.expect_jobs(3, together=2)
    warm.prime(sys.executable, env)
    assert _waiting() == 2
    warm.expect_jobs(1, together=2)  # no more than the jobs to come
    (tmp_path / "job.py").write_text("print('ok')\n")
    argv = [sys.executable, str(tmp_path / "job.py")]
    taken = [warm.take(argv, env), warm.take(argv, env)]
    assert all(taken) and taken[0] is not taken[1]
    assert _waiting() == 1
    for found in taken:
        assert found is not None
        found.discard()
    warm.discard_all()
    monkeypatch.setenv(warm.POOL_ENV, "1")
    warm.expect_jobs(3, together=2)
    warm.prime(sys.executable, env)
    assert _waiting() == 1
