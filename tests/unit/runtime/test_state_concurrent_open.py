"""Processes opening a new state.db at the same moment all get it (none fails as locked)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from runtime.state import LocalState

PROCESSES = 3
ROUNDS = 15


def _open(path: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    LocalState(Path(path))


def test_processes_opening_a_new_state_at_once_all_succeed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        path = tmp_path / str(round_) / "state.db"
        path.parent.mkdir()
        barrier = context.Barrier(PROCESSES)
        workers = [
            context.Process(target=_open, args=(str(path), barrier)) for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert [w.exitcode for w in workers] == [0] * PROCESSES, f"round {round_}"
