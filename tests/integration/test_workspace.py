"""The workspace: damaged, full, read-only, shared.

Each fault ends in a message that names the path and the fix, exit 2 (1 for a run that
started and failed), no traceback, and state that a rerun or `--retry` recovers from. The faults
are real: bytes of state.db overwritten or cut, a read-only bind mount, a small tmpfs filled up
(`unshare -m`: a private mount namespace, so nothing outside the test sees the mounts).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from test_faults import SMALL  # the small, slow-training config of the fault tests

from config.paths import ROOT
from runtime.files import WorkspaceError, atomic_path, extract_tar, write_atomic
from runtime.state import LocalState
from runtime.store import LocalS3
from steps.names import MODEL_PACKAGE_ARN

EXECUTION = "0123456789ab"
OLD_SCHEMA = """
CREATE TABLE model_package_groups (name TEXT PRIMARY KEY, description TEXT, created REAL NOT NULL);
CREATE TABLE model_packages (
    arn TEXT PRIMARY KEY, group_name TEXT NOT NULL, version INTEGER NOT NULL,
    status TEXT NOT NULL, approval_description TEXT, execution_id TEXT,
    created REAL NOT NULL, updated REAL NOT NULL, request TEXT NOT NULL,
    UNIQUE (group_name, version));
CREATE TABLE models (
    name TEXT PRIMARY KEY, execution_id TEXT, created REAL NOT NULL, request TEXT NOT NULL);
CREATE TABLE step_cache (
    pipeline TEXT NOT NULL, step TEXT NOT NULL, cache_key TEXT NOT NULL,
    execution_id TEXT NOT NULL, finished REAL NOT NULL, properties TEXT NOT NULL);
CREATE TABLE callbacks (
    token TEXT PRIMARY KEY, execution_id TEXT NOT NULL, step TEXT NOT NULL,
    queue_url TEXT, message TEXT NOT NULL, status TEXT NOT NULL,
    outputs TEXT, failure_reason TEXT, created REAL NOT NULL, answered REAL);
"""
"""The state file as the first release wrote it (no versions, no recorded cache outputs)."""


def populated_state(path: Path) -> LocalState:
    """A state file with a package, a pending approval and enough cache entries for many pages."""
    state = LocalState(path)
    state.ensure_group("g")
    package = state.register_package({"ModelPackageGroupName": "g"}, EXECUTION)
    arguments = {MODEL_PACKAGE_ARN: package["ModelPackageArn"]}
    state.open_callback("token", EXECUTION, "Approval", "", {"arguments": arguments})
    for index in range(200):
        state.cache_store("p", f"step{index}", "k" * 64, EXECUTION, {"x": "y" * 400}, {})
    return state


def _truncated(path: Path) -> None:
    populated_state(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _overwritten(path: Path) -> None:
    populated_state(path)
    with path.open("r+b") as handle:  # the header page and the schema: a torn or foreign write
        handle.write(os.urandom(4096))


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")


def _other_columns(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE model_packages (id INTEGER PRIMARY KEY)")


def _newer(path: Path) -> None:
    populated_state(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncated, "is damaged"),
    "overwritten": (_overwritten, "is damaged"),
    "garbage": (lambda p: p.write_bytes(os.urandom(20000)), "is damaged"),
    "a directory": (lambda p: p.mkdir(), "is a directory"),
    "another program's database": (_foreign, "another program"),
    "other columns": (_other_columns, "not this package's local state"),
    "a newer version": (_newer, "newer version"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_state_file_is_refused_naming_it_and_the_fix(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    damage, expected = DAMAGE[kind]
    damage(path)
    with pytest.raises(WorkspaceError) as caught:
        LocalState(path)
    message = str(caught.value)
    assert expected in message and str(path) in message, message
    fix = "another workspace" if kind == "a newer version" else f"mv {path}"
    assert fix in message, message


def test_a_zero_byte_state_file_is_an_empty_state(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"")
    state = LocalState(path)
    assert state.packages() == []
    state.ensure_group("g")
    assert state.register_package({"ModelPackageGroupName": "g"}, EXECUTION)["ModelPackageVersion"]


def test_a_state_file_of_the_first_release_is_upgraded_and_its_cache_not_trusted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO model_package_groups VALUES ('g', '', 0)")
        db.execute("INSERT INTO step_cache VALUES ('p', 'Train', 'k', 'old', 1e12, '{}')")
    state = LocalState(path)
    assert state.cache_lookup("p", "Train", "k", None, lambda outputs: True) is None, (
        "an entry without a record of its outputs cannot prove they are there"
    )
    assert not state.ensure_group("g"), "the registry is kept"
    state.cache_store("p", "Train", "k", "new", {}, {})
    hit = state.cache_lookup("p", "Train", "k", None, lambda outputs: True)
    assert hit is not None and hit.execution_id == "new"


def cli(
    *args: str, workspace: Path, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    home = workspace.parent / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "PIPELINE_LOCAL_WORKSPACE": str(workspace), "HOME": str(home)}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "pipelines", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def small_config(tmp_path: Path, replace: tuple[str, str] = ("", "")) -> Path:
    config = tmp_path / "small.yaml"
    config.write_text(SMALL.format(local=ROOT / "configs" / "local.yaml").replace(*replace))
    return config


def refused(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The message of a refused command; it names what is wrong, with no traceback."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in message, message
    return message


WORKSPACE_VERBS = {
    "registry": ("registry",),
    "approve": ("approve", EXECUTION),
    "reject": ("reject", EXECUTION, "--reason", "no"),
    "run-local": ("run-local",),
    "run-local --retry": ("run-local", "--retry", EXECUTION),
}


def fake_execution(workspace: Path) -> None:
    """An execution folder as a run leaves it (what `--retry` looks for first)."""
    folder = workspace / "executions" / EXECUTION
    folder.mkdir(parents=True)
    (folder / "execution.json").write_text("{}")


def test_every_workspace_verb_refuses_a_damaged_state_file(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    fake_execution(workspace)
    state = workspace / "state.db"
    _truncated(state)
    config = small_config(tmp_path)
    for verb, args in WORKSPACE_VERBS.items():
        result = cli(*args, "--config", str(config), workspace=workspace)
        message = refused(result, 2, str(state), "is damaged", f"mv {state}")
        assert "started" not in result.stdout, f"{verb}: nothing may run\n{message}"


def mount_namespace() -> tuple[str, ...]:
    """`unshare -m` with private mounts, or a skip where this process may not mount."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("mounting a read-only or full file system needs root and unshare")
    probe = subprocess.run([unshare, "-m", "--propagation", "private", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("unshare -m is not permitted here")
    return (unshare, "-m", "--propagation", "private")


def read_only(workspace: Path) -> tuple[str, ...]:
    """A command prefix under which `workspace` is a read-only bind mount of itself."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return (*mount_namespace(), "sh", "-c", script, str(workspace))


def test_read_only_workspace_lists_the_registry_and_refuses_every_change(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    fake_execution(workspace)
    populated_state(workspace / "state.db")
    config = small_config(tmp_path)
    prefix = read_only(workspace)

    listed = cli("registry", "--group", "g", "--config", str(config), workspace=workspace,
                 prefix=prefix)  # fmt: skip
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert f"g v1   PendingManualApproval  {EXECUTION}" in listed.stdout, listed.stdout

    for verb in ("approve", "reject", "run-local", "run-local --retry"):
        result = cli(*WORKSPACE_VERBS[verb], "--config", str(config), workspace=workspace,
                     prefix=prefix)  # fmt: skip
        message = refused(result, 2, str(workspace))
        assert "read-only" in message, f"{verb}: {message}"
    assert LocalState(workspace / "state.db").callbacks()[0].status == "pending"


DISK_FULL_DRIVER = """
import json, os, subprocess, sys, time
from pathlib import Path

workspace, config = Path(sys.argv[1]), sys.argv[2]
env = {**os.environ, "PIPELINE_LOCAL_WORKSPACE": str(workspace)}
command = [sys.executable, "-m", "pipelines", "run-local", "--config", config]
run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
executions = workspace / "executions"
while True:
    found = [p / "execution.json" for p in executions.glob("*")] if executions.is_dir() else []
    try:
        document = json.loads(found[0].read_text()) if found else {}
    except (OSError, ValueError):
        document = {}
    if document.get("steps", {}).get("Train", {}).get("status") == "Executing":
        break
    assert run.poll() is None, run.communicate()
    time.sleep(0.1)
filler = workspace / "filler"
with filler.open("wb", buffering=0) as handle:  # fill the disk to the last block
    for size in (1 << 20, 1 << 12, 1):
        try:
            while True:
                handle.write(bytes(size))
        except OSError:
            pass
stdout, stderr = run.communicate()
execution = found[0].parent.name
result = {
    "code": run.returncode, "stdout": stdout, "stderr": stderr, "execution": execution,
    "document": json.loads(found[0].read_text()),
    "summary": json.loads((workspace / "last-run.json").read_text())
    if (workspace / "last-run.json").is_file() else None,
    "leftovers": [str(p) for p in workspace.rglob("*.partial")],
}
filler.unlink()
retry = subprocess.run(command + ["--retry", execution], env=env, capture_output=True, text=True)
result["retry"] = {"code": retry.returncode, "stdout": retry.stdout, "stderr": retry.stderr,
                   "document": json.loads(found[0].read_text())}
print(json.dumps(result))
"""


def test_disk_full_during_a_run_fails_it_with_the_fix_and_retry_recovers(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DISK_FULL_DRIVER))
    script = 'mount -t tmpfs -o size=64m tmpfs "$0" && exec "$@"'
    done = subprocess.run(
        [*mount_namespace(), "sh", "-c", script, str(workspace), sys.executable, str(driver),
         str(workspace), str(small_config(tmp_path))],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    execution = result["execution"]

    assert result["code"] == 1, result["stdout"] + result["stderr"]
    assert "Traceback" not in result["stderr"], result["stderr"]
    assert result["document"]["status"] == "Failed", "the execution must not stay Executing"
    reason = result["document"]["failure_reason"]
    assert "no space left on the device" in reason and f"--retry {execution}" in reason, reason
    assert str(workspace) in reason, reason
    assert result["summary"] is not None and result["summary"]["status"] == "Failed"
    assert f"--retry {execution}" in result["stdout"], result["stdout"]
    assert result["leftovers"] == [], "no half-written file may stay behind"

    retry = result["retry"]
    assert retry["code"] == 0, retry["stdout"] + retry["stderr"]
    assert retry["document"]["status"] == "Succeeded"
    assert retry["document"]["steps"]["Preprocess"]["attempts"] == 1, "Preprocess is reused"


def test_no_space_before_a_run_starts_is_refused_naming_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    script = (
        'mount -t tmpfs -o size=4m tmpfs "$0" && '
        '{ dd if=/dev/zero of="$0/filler" bs=64k 2>/dev/null; exec "$@"; }'
    )
    result = cli("run-local", "--config", str(small_config(tmp_path)), workspace=workspace,
                 prefix=(*mount_namespace(), "sh", "-c", script, str(workspace)))  # fmt: skip
    refused(result, 2, "no space left on the device", str(workspace), "df -h")


# Shared workspace --------------------------------------------------------------------------


def test_concurrent_writers_of_one_object_never_collide_or_leave_temporaries(
    tmp_path: Path,
) -> None:
    store = LocalS3(tmp_path / "s3")
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 100_000)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            for _ in range(50):
                store.put_bytes("s3://bucket/code/object", bytes([index]) * 1000)
                store.download("s3://bucket/code", tmp_path / "staged" / str(index))
        except BaseException as error:  # noqa: BLE001 - collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    published = (tmp_path / "s3" / "bucket" / "code" / "object").read_bytes()
    assert len(set(published)) == 1 and len(published) == 1000, "one writer's object, whole"
    assert [p.name for p in (tmp_path / "s3" / "bucket" / "code").iterdir()] == ["object"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_an_execution_runs_in_one_process_at_a_time(tmp_path: Path) -> None:
    from runtime.engine import LOCK_FILE, LocalPipelineRunner, _Run
    from runtime.execution import Execution, Hooks

    runner = LocalPipelineRunner(tmp_path / "ws", "us-east-1")
    execution = Execution(EXECUTION, "p", "Executing", {}, "now")
    folder = runner.execution_dir(EXECUTION)
    folder.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time; h = open(sys.argv[1], 'a'); fcntl.flock(h, fcntl.LOCK_EX); "
         "print('locked', flush=True); time.sleep(600)", str(folder / LOCK_FILE)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkspaceError, match=f"execution {EXECUTION} is running"):
            _Run(runner, execution, {"Steps": []}, Hooks()).run(resumed=True)
    finally:
        holder.kill()
        holder.wait()


def _archive(tmp_path: Path, *members: tuple[str, bytes | None, str | None]) -> Path:
    """A tar.gz of (name, content, link target): a file, or a symlink when content is None."""
    path = tmp_path / "archive.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content, link in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.linkname = tarfile.SYMTYPE, link or ""
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


@pytest.mark.parametrize("filters", ["with-filters", "before-3.11.4"])
def test_archives_extract_their_files_and_refuse_what_leaves_the_folder(
    filters: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if filters == "before-3.11.4":  # Debian 12's Python 3.11.2 has no tarfile filters
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    good = _archive(tmp_path, ("model.json", b"{}", None), ("code/inference.py", b"x = 1", None))
    with tarfile.open(good) as tar:
        extract_tar(tar, tmp_path / "out")
    assert (tmp_path / "out" / "code" / "inference.py").read_bytes() == b"x = 1"
    for bad in (("../escape.txt", b"x", None), ("link", None, "/etc/passwd")):
        (tmp_path / "bad").mkdir(exist_ok=True)
        archive = _archive(tmp_path / "bad", bad)
        with tarfile.open(archive) as tar, pytest.raises(tarfile.TarError):
            extract_tar(tar, tmp_path / "bad-out")
        assert not (tmp_path / "escape.txt").exists()
