"""Warm job starts: a Python job's interpreter and libraries loaded before the job is known.

A cold job process spends about a second importing numpy, pandas, pyarrow, scikit-learn and
XGBoost before its first line of work. A warm start is the same process, started earlier: the
launcher (:data:`runtime.jobs.process._LAUNCHER`, unchanged) starts ``python -c WARM``, which
imports :data:`DEFAULT_PRELOAD` and then waits for its job on a pipe. A job that comes while
the list is loading stops it after the module being imported: the job imports the rest itself,
if it needs it (at 100k rows Preprocess, which follows a 0.45 s Profile and imports neither
scikit-learn nor XGBoost, waited up to 1 s for them). When the job comes, the process becomes
it, with what a cold ``python script.py args`` (or ``python -m module args``)
sees:

* ``sys.argv``, ``sys.orig_argv``, the job's environment (``os.environ`` replaced, C ``environ``
  too), its cwd, and ``sys.path`` as CPython builds it for that command (the script's folder or
  the cwd, then ``PYTHONPATH``, then the interpreter's own entries);
* a fresh ``__main__`` module (``__file__``, ``__loader__``, ``__builtins__`` as CPython sets them)
  or ``runpy._run_module_as_main``, the function ``python -m`` itself calls;
* the interpreter's own exit: an uncaught exception prints its traceback (without the warm
  start's frame) and exits 1, ``SystemExit`` and ``KeyboardInterrupt`` end the process as they
  end a cold one (a Ctrl-C still kills it by SIGINT);
* one process per job: a warm process serves one job and ends with it (never forked from a
  shared parent, so no job inherits another's threads, locks, random state or hash seed).

The process falls back to a cold start (``exec`` of the job's command, in the same process)
when what it loaded could differ from what the job would load: an environment variable its
imports read (recorded while they ran) differs in the job's environment, or a module it loaded
would resolve elsewhere on the job's ``sys.path`` (a code folder that ships its own ``pandas``).
Which variables a warm process is started with is :func:`startup_env`: a job whose
start-up-relevant variables differ (``OMP_NUM_THREADS``, ``PYTHON*``, locale...) gets a warm
process started with its own values, or a cold start.

What stays different, by design: ``sys.modules`` holds the preloaded libraries before the job
imports them (the same modules, from the same files), the job's peak RSS counts them whether
the job imports them or not, ``/proc/<pid>/cmdline`` shows ``python -c``, and the objects the
preload made are frozen (``gc.freeze``: ``gc.get_freeze_count()`` is not 0). The collector
then never walks them: not in the job's full collections, and not at its exit, where a process
holding these libraries otherwise spent 0.2-0.4 s (measured: a warm job of one line took
0.3-0.5 s from hand-over to its end before, 0.09-0.10 s after, load about 3) - a job ends when
its process has exited, as a container does, so that was on every step's time. They are the
libraries' own module-level objects, which live as long as the process either way. No
collection runs while they load (the collector is enabled again before the job; the job's
``gc.get_count()`` and ``gc.get_stats()`` differ from a cold start's), so the few reference
cycles the imports leave behind (about a thousand objects for :data:`DEFAULT_PRELOAD`) are
frozen with them instead of collected: a preload took 1.005 s of CPU instead of 1.10 s (eight
alternated pairs, load 3.3-3.9).

:data:`JOB_START_ENV` set to ``cold`` starts every job cold (the bench's bare runs and any
debugging); :data:`PRELOAD_ENV` replaces the module list (empty: preload nothing).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

JOB_START_ENV = "LOCAL_RUNTIME_JOB_START"
"""``warm`` (default) or ``cold``: how the local runtime starts Python jobs."""
PRELOAD_ENV = "LOCAL_RUNTIME_PRELOAD"
"""Comma-separated modules a warm process imports before its job (default:
:data:`DEFAULT_PRELOAD`)."""
POOL_ENV = "LOCAL_RUNTIME_WARM_POOL"
"""How many warm processes wait for jobs at once (default: as many as the jobs that may start
next, :func:`expect_jobs`, at least :data:`DEFAULT_POOL_SIZE`)."""
DEFAULT_PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.csv",
    "pyarrow.parquet",
    "scipy.sparse",
    "scipy.special",
    "scipy.linalg",
    "scipy.spatial",
    "scipy.optimize",
    "scipy.stats",
    "sklearn.metrics",
    "sklearn.model_selection",
    "xgboost",
)
"""The libraries the SageMaker XGBoost framework image carries and the jobs import, in import
order: the ones every job imports first, then what scikit-learn imports (``import sklearn``
alone took 0.53 s, 0.39 s of it ``scipy.stats``), in steps, so a job that comes while the list
is loading waits for one step (at most ``scipy.stats``, about 0.25 s), not for the rest
(:data:`WARM`). Not matplotlib: it reads its configuration from ``HOME`` at import, which is
the job's own."""
DEFAULT_POOL_SIZE = 1
"""One when the caller does not say how many jobs may start at once: a waiting process costs a
preload's CPU (seconds) whether a job comes or not, and on a small machine a second one slows
the running job more than it saves the next. When it does (the engine, from the graph: two
steps that wait for the same one), each of them finds a process loaded; with one process for
two jobs, the job that came second waited for a whole preload, beside the first (measured at
100k rows, quiet machine: Train 3.4-3.8 s after DataQuality took the warm process, 1.6 s
warm)."""
STARTUP_PREFIXES = (
    "PYTHON", "LC_", "LANG", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "GOTO", "BLIS_",
    "VECLIB_", "NUMEXPR_", "NUMPY_", "NPY_", "ARROW_", "MALLOC_", "JE_", "LD_", "SKLEARN_",
    "SCIPY_", "XGBOOST_", "PATH", "TZ", "TMPDIR",
)  # fmt: skip
"""Variables read while an interpreter and its native libraries start (thread pools, allocators,
locale, flags). A warm process is started with the job's values of these; ``PYTHONPATH`` is
the exception (``sys.path`` is rebuilt for the job)."""
_AFTER_START = frozenset({"PYTHONPATH"})
SPAWN_WAIT_SECONDS = 5.0
"""How long a job waits for a warm process that is being started (not loaded: started)."""
NO_HOME = "/nonexistent"
"""``HOME`` while a warm process loads its libraries (no dotfiles, no user site-packages); the
job's own is set before it starts, and what the start-up derived from it (``site``'s and
``sysconfig``'s user base) is derived again."""

WARM = r"""
import os, sys
_startup_modules = set(sys.modules)
_spec_fd, _preload = int(sys.argv[1]), [m for m in sys.argv[2].split(",") if m]
_base_path = sys.path[1:]
_start_env = dict(os.environ)
_read = set()
_failed = None

class _Recording(type(os.environ)):
    def __getitem__(self, key):
        frame = sys._getframe(1)
        while frame is not None and key == "HOME":
            if frame.f_code.co_name == "_getuserbase":  # sysconfig's cache: redone for the job
                break
            frame = frame.f_back
        if frame is None or key != "HOME":
            _read.add(key)
        return super().__getitem__(key)

_environ = os.environ
os.environ = _Recording(_environ._data, _environ.encodekey, _environ.decodekey,
                        _environ.encodevalue, _environ.decodevalue)
_early = []

def _job_came():
    os.set_blocking(_spec_fd, False)
    try:
        _early.append(os.read(_spec_fd, 1 << 16))  # b"": discarded, the pipe is closed
    except BlockingIOError:
        return False
    finally:
        os.set_blocking(_spec_fd, True)
    return True

import gc as _gc
_gc.disable()  # no collection while they load (9% of a preload's CPU): it is all frozen below
try:
    import importlib
    for _index, _name in enumerate(_preload):
        if _index and _job_came():  # the job came: it imports the rest itself, if it needs it
            break
        importlib.import_module(_name)
except Exception as _error:  # a broken library: the job starts cold and meets it itself
    _failed = f"{_name}: {_error!r}"
finally:
    os.environ = _environ
_gc.enable()
_gc.freeze()  # the libraries' objects: no collection walks them, during the job or at its exit

def _receive():
    chunks = list(_early)
    while (not chunks or chunks[-1]) and (_chunk := os.read(_spec_fd, 1 << 16)):
        chunks.append(_chunk)
    os.close(_spec_fd)
    import json
    return json.loads(b"".join(chunks))

_job = _receive()
_argv, _env = _job["argv"], _job["env"]
os.chdir(_job["cwd"])
os.environ.clear()
os.environ.update(_env)
if "LC_CTYPE" in _start_env and "LC_CTYPE" not in _env:  # PEP 538: the launcher's coercion,
    os.environ["LC_CTYPE"] = _start_env["LC_CTYPE"]      # which a cold job inherits as well
_module = _argv[2] if len(_argv) > 2 and _argv[1] == "-m" else None
_first = os.getcwd() if _module else os.path.dirname(os.path.realpath(_argv[1]))
_extra = [os.path.abspath(p) for p in _env.get("PYTHONPATH", "").split(os.pathsep) if p]
sys.path[:] = [_first, *_extra, *_base_path]
import site
site.USER_BASE = site.USER_SITE = None
site.getusersitepackages()
if "sysconfig" in sys.modules and "userbase" in (sys.modules["sysconfig"]._CONFIG_VARS or {}):
    sys.modules["sysconfig"]._CONFIG_VARS["userbase"] = sys.modules["sysconfig"]._getuserbase()
sys.path_importer_cache.clear()
importlib.invalidate_caches()

def _resolves_elsewhere():
    for name in {n.partition(".")[0] for n in sys.modules} - _startup_modules:
        loaded = getattr(getattr(sys.modules.get(name), "__spec__", None), "origin", None)
        if loaded is None:
            continue
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            found = find(name, None) if find else None
            if found is not None:
                if found.origin != loaded:
                    return name
                break
    return None

if _failed or _resolves_elsewhere() or any(_env.get(k) != _start_env.get(k) for k in _read):
    try:
        os.execvp(_argv[0], _argv)
    except OSError as error:
        os.write(2, f"ERROR: cannot run {_argv[0]!r}: {error.strerror}\n".encode())
        os._exit(127)

sys.orig_argv[:] = _argv

def _excepthook(kind, value, tb, _original=sys.__excepthook__):
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next
    if isinstance(value, BaseException):  # the display reads the exception's own traceback
        value.__traceback__ = tb
    _original(kind, value, tb)

sys.excepthook = sys.__excepthook__ = _excepthook
del _Recording, _environ, _job, _receive, _resolves_elsewhere, _excepthook
import builtins, types
_main = types.ModuleType("__main__")
_main.__builtins__ = builtins
_main.__annotations__ = {}  # as CPython's own __main__ starts (pylifecycle.c add_main_module)
sys.modules["__main__"] = _main
if _module:
    import runpy
    sys.argv[:] = ["-m", *_argv[3:]]
    runpy._run_module_as_main(_module)
else:
    from importlib.machinery import SourceFileLoader
    sys.argv[:] = _argv[1:]
    _main.__file__ = _argv[1]
    _main.__cached__ = None
    _main.__loader__ = SourceFileLoader("__main__", _argv[1])
    with open(_argv[1], "rb") as _source:
        _code = compile(_source.read(), _argv[1], "exec")
    exec(_code, _main.__dict__)
"""
"""The warm process: ``python -c WARM <spec fd> <modules>``. Plain stdlib, nothing of the
project: the job finds in ``sys.modules`` only the interpreter's start-up modules and the
preloaded libraries. Every name it leaves in the (replaced) ``__main__`` starts with ``_``."""


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    value = (environ if environ is not None else os.environ).get(JOB_START_ENV, "warm")
    if value not in ("warm", "cold"):
        raise ValueError(f"{JOB_START_ENV}={value!r}: use 'warm' (the default) or 'cold'.")
    return value == "warm"


def preload() -> tuple[str, ...]:
    value = os.environ.get(PRELOAD_ENV)
    if value is None:
        return DEFAULT_PRELOAD
    return tuple(name.strip() for name in value.split(",") if name.strip())


def pool_size(together: int | None = None) -> int:
    """How many warm processes should wait: :data:`POOL_ENV` when set, else one per job that
    may start next (``together``, when known), at least :data:`DEFAULT_POOL_SIZE`."""
    value = os.environ.get(POOL_ENV)
    if value is None:
        return max(DEFAULT_POOL_SIZE, together or 0)
    if not value.isdigit():
        raise ValueError(f"{POOL_ENV}={value!r}: give a whole number (0 turns warm starts off).")
    return int(value)


def startup_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` a warm process must start with (see :data:`STARTUP_PREFIXES`)."""
    return {
        key: value
        for key, value in env.items()
        if key.startswith(STARTUP_PREFIXES) and key not in _AFTER_START
    }


def python_command(argv: Sequence[str], python: str) -> bool:
    """Whether ``argv`` is ``python script [args]`` or ``python -m module [args]`` run by
    ``python`` itself, the two forms a warm process can become."""
    if len(argv) < 2 or argv[0] != python:
        return False
    if argv[1] == "-m":
        return len(argv) > 2 and not argv[2].startswith("-")
    return not argv[1].startswith("-")


@dataclass
class Warm:
    """A started warm process: its launcher, the launcher's report pipe and the job's pipe."""

    process: subprocess.Popen[bytes]
    report_read: int
    spec_write: int
    key: tuple[str, tuple[tuple[str, str], ...]]
    closed: bool = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        """Hand the job over; the process becomes it."""
        spec = json.dumps({"argv": list(argv), "env": dict(env), "cwd": str(cwd)}).encode()
        try:
            while spec:
                spec = spec[os.write(self.spec_write, spec) :]
        finally:
            os.close(self.spec_write)
            self.spec_write = -1

    def discard(self) -> None:
        """An unused warm process: closing its job pipe ends it (it reads end of file)."""
        if self.closed:
            return
        self.closed = True
        for fd in (self.spec_write, self.report_read):
            if fd >= 0:
                os.close(fd)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


Spawn = tuple[str, dict[str, str]]


@dataclass
class _Pool:
    """Warm processes waiting for jobs, per (python, start-up environment).

    They are started by one long-lived thread: the launcher's ``PR_SET_PDEATHSIG`` fires when
    the *thread* that started it ends, and a warm process must outlive the job thread that
    asked for it (and die with the run, as every job does).
    """

    idle: dict[tuple[str, tuple[tuple[str, str], ...]], list[Warm]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Queue[Spawn] = field(default_factory=Queue)
    spawner: threading.Thread | None = None
    pending: dict[tuple[str, tuple[tuple[str, str], ...]], int] = field(default_factory=dict)
    expected: int | None = None
    """Jobs still to come, when the caller knows (None: any number)."""
    together: int | None = None
    """Jobs that may start at the same moment next, when the caller knows."""

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def take(self, python: str, env: Mapping[str, str]) -> Warm | None:
        """A waiting warm process for this python and environment (and a replacement asked
        for), or None: the job then starts cold."""
        base = startup_env(env)
        key = (python, tuple(sorted(base.items())))
        found = None
        with self.lock:
            waiting = self.idle.setdefault(key, [])
            # One being started (a fork and exec, milliseconds away) is further along than a
            # cold start would be.
            self.changed.wait_for(lambda: waiting or not self.pending.get(key), SPAWN_WAIT_SECONDS)
            while waiting and found is None:
                candidate = waiting.pop(0)
                if candidate.alive():
                    found = candidate
                else:
                    candidate.discard()
        self.top_up(python, base)
        return found

    def top_up(self, python: str, base: dict[str, str]) -> None:
        """Start warm processes until :func:`pool_size` wait for ``(python, base)``."""
        key = (python, tuple(sorted(base.items())))
        with self.lock:
            wanted = pool_size(self.together)
            if self.expected is not None:
                wanted = min(wanted, self.expected)
            missing = wanted - len(self.idle.get(key, [])) - self.pending.get(key, 0)
            if missing <= 0:
                return
            self.pending[key] = self.pending.get(key, 0) + missing
            if self.spawner is None:
                self.spawner = threading.Thread(
                    target=self._serve, name="warm-job-starts", daemon=True
                )
                self.spawner.start()
        for _ in range(missing):
            self.requests.put((python, base))

    def _serve(self) -> None:
        while True:
            python, base = self.requests.get()
            key = (python, tuple(sorted(base.items())))
            try:
                warm: Warm | None = _spawn(python, base, key)
            except OSError:  # cannot start (no such python, no fds): its jobs start cold
                warm = None
            with self.lock:
                self.pending[key] -= 1
                if warm is not None:
                    self.idle.setdefault(key, []).append(warm)
                self.changed.notify_all()

    def discard_all(self) -> None:
        with self.lock:
            waiting = [warm for group in self.idle.values() for warm in group]
            self.idle.clear()
        for warm in waiting:
            warm.discard()


_POOL = _Pool()


def _spawn(python: str, base: dict[str, str], key: tuple[str, tuple[tuple[str, str], ...]]) -> Warm:
    from runtime.jobs.process import launcher_argv

    report_read, report_write = os.pipe()
    spec_read, spec_write = os.pipe()
    try:
        process = subprocess.Popen(
            launcher_argv(report_write, [python, "-c", WARM, str(spec_read), ",".join(preload())]),
            env={**base, "HOME": NO_HOME},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(report_write, spec_read),
        )
    finally:
        os.close(report_write)
        os.close(spec_read)
    return Warm(process, report_read, spec_write, key)


def take(argv: Sequence[str], env: Mapping[str, str]) -> Warm | None:
    """A warm process ready to become ``argv``, or None (not a Python command, warm starts
    off, or none waiting: the next one is being started)."""
    if not enabled() or pool_size() == 0 or not argv:
        return None
    if not python_command(argv, argv[0]):
        return None
    return _POOL.take(argv[0], env)


def prime(python: str, env: Mapping[str, str]) -> None:
    """Start warm processes for jobs run by ``python`` with ``env`` before the first is due."""
    if enabled() and pool_size() > 0:
        _POOL.top_up(python, startup_env(env))


def discard_all() -> None:
    """End every waiting warm process (the run is over, or being stopped); forget
    :func:`expect_jobs`."""
    _POOL.discard_all()
    with _POOL.lock:
        _POOL.expected = _POOL.together = None


def expect_jobs(count: int | None, together: int | None = None) -> None:
    """At most ``count`` more jobs will start (None: unknown): no warm process is started
    beyond them (a preload nobody uses costs its CPU all the same). ``together``: how many of
    them may start at the same moment next (None: unknown); that many warm processes are
    prepared (:func:`pool_size`)."""
    with _POOL.lock:
        _POOL.expected, _POOL.together = count, together
