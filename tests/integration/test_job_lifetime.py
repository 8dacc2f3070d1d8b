"""Jobs die with the run: no job process outlives an engine killed by SIGKILL, SIGTERM or Ctrl-C.

The run-local CLI runs in a subprocess; when a job of the wanted kind is running, its processes
are frozen (SIGSTOP, so that none can finish on its own first) and the engine is killed. Every
process of the run is found by the execution's folder in its command line, environment or
working directory (a job started warm (runtime/jobs/warm.py) shows ``python -c`` and the
environment it was started with, but works in its sandbox), and every process the engine had
started by then (warm processes waiting for a job included) must be gone as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_faults import SMALL, wait_for
from test_faults import start_run_local as start

from config.paths import ROOT
from steps.names import APPROVAL

PATIENCE_SECONDS = 300  # how long to wait for a process to appear or go (never a measurement)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    return found


def processes_of(marker: str) -> dict[int, int]:
    """pid -> parent pid of every process whose command line, environment or working
    directory holds `marker`."""
    found = {}
    needle = marker.encode()
    for pid, parent in _parents().items():
        if pid == os.getpid():
            continue
        entry = Path(f"/proc/{pid}")
        try:
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            text += os.readlink(entry / "cwd").encode()
        except OSError:
            continue  # gone meanwhile
        if needle in text:
            found[pid] = parent
    return found


def descendants(root: int) -> set[int]:
    """Every process below ``root`` now."""
    parents = _parents()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running or stopped; a zombie (dead, not yet reaped by init) is not alive."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def describe(pids: dict[int, int]) -> str:
    lines = []
    for pid in pids:
        try:
            lines.append(f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()[:200]!r}")
        except OSError:
            lines.append(f"{pid}: (gone)")
    return "\n".join(lines)


def execution_folder(workspace: Path, engine: subprocess.Popen[str]) -> Path:
    executions = workspace / "executions"
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not (executions.is_dir() and any(executions.iterdir())):
        assert engine.poll() is None, engine.communicate()
        assert time.monotonic() < deadline, "no execution started"
        time.sleep(0.05)
    (folder,) = executions.iterdir()
    return folder


def freeze_job(folder: Path, step: str, engine: subprocess.Popen[str]) -> dict[int, int]:
    """Wait for the step's job processes (below its launcher, the engine's child) and stop
    them where they are."""
    marker = f"{folder}/steps/{step}/"
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        found = processes_of(marker)
        jobs = {pid: parent for pid, parent in found.items() if parent != engine.pid}
        if jobs:
            for pid in jobs:
                os.kill(pid, signal.SIGSTOP)
            return jobs
        assert engine.poll() is None, f"the run ended before {step} ran: {engine.communicate()}"
        assert time.monotonic() < deadline, f"{step} never started"
        time.sleep(0.02)


def assert_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, (
        f"processes the engine started outlived it:\n{describe(dict.fromkeys(left, 0))}"
    )


def assert_nothing_left(folder: Path) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while (left := processes_of(str(folder))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes of the run outlived it:\n{describe(left)}"


@pytest.fixture(autouse=True)
def _nothing_left_behind(tmp_path: Path) -> Iterator[None]:
    """A failing test leaves no run going on: every process of its folder is killed."""
    yield
    for pid in processes_of(str(tmp_path)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    quick = SMALL.replace("num_round: 400", "num_round: 30")  # jobs are frozen, not slow
    path.write_text(quick.format(local=ROOT / "configs" / "local.yaml"))
    return path


def test_sigkill_of_the_engine_during_each_job_kind_leaves_no_process_and_retry_succeeds(
    config: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    engine = start(config, workspace)
    folder = execution_folder(workspace, engine)
    # Processing, training (with the QualityCheck job beside it), batch transform.
    for index, step in enumerate(("Preprocess", "Train", "BatchScore")):
        if index:
            engine = start(config, workspace, "--retry", folder.name)
        frozen = freeze_job(folder, step, engine)
        started = descendants(engine.pid)
        engine.kill()
        engine.communicate(timeout=PATIENCE_SECONDS)
        assert_nothing_left(folder)
        assert_gone(set(frozen) | started)  # the frozen job itself too (a big one takes a while
        # to exit: its command line is gone before it is)

    engine = start(config, workspace, "--retry", folder.name)
    stdout, stderr = engine.communicate(timeout=PATIENCE_SECONDS * 3)
    assert engine.returncode == 0, stdout + stderr
    document = json.loads((folder / "execution.json").read_text())
    assert document["status"] == "Succeeded"
    assert document["steps"]["Preprocess"]["attempts"] == 1, "what succeeded is not run again"
    assert_nothing_left(folder)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_sigterm_or_ctrl_c_stops_the_jobs_and_records_the_run_as_stopped(
    sig: signal.Signals, config: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    engine = start(config, workspace)
    folder = execution_folder(workspace, engine)
    freeze_job(folder, "Preprocess", engine)
    started = descendants(engine.pid)
    engine.send_signal(sig)
    _, stderr = engine.communicate(timeout=PATIENCE_SECONDS)
    assert engine.returncode == 130, stderr
    assert_nothing_left(folder)
    assert_gone(started)
    document = json.loads((folder / "execution.json").read_text())
    assert document["status"] == "Stopped"
    assert f"--retry {folder.name}" in document["failure_reason"]


def test_ctrl_c_while_waiting_for_approval_stops_the_run_at_once(
    config: Path, tmp_path: Path
) -> None:
    """The Approval step waits up to approval.timeout_seconds (a day) for an answer; Ctrl-C
    ends that wait as it stops a job."""
    workspace = tmp_path / "ws"
    engine = start(config, workspace, "--wait-for-approval")
    folder = execution_folder(workspace, engine)
    wait_for(folder / "execution.json", lambda d: d["steps"][APPROVAL]["status"] == "Executing")
    engine.send_signal(signal.SIGINT)
    _, stderr = engine.communicate(timeout=PATIENCE_SECONDS)
    assert engine.returncode == 130, stderr
    document = json.loads((folder / "execution.json").read_text())
    assert document["status"] == "Stopped"
    assert document["steps"][APPROVAL]["status"] == "Stopped"
    assert_nothing_left(folder)
