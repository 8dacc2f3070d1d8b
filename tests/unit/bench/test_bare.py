"""The bench's bare jobs report their own peak RSS, not the bench process's."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from bench.bare import _run

MIB = 1 << 20


def test_a_bare_job_reports_its_own_peak_not_the_bench_process(tmp_path: Path) -> None:
    # The bench process is large (the SDK imported, the definition built); a job started
    # straight from it reported at least this process's high-water mark.
    ballast = bytearray(300 * MIB)
    ballast[:: resource.getpagesize()] = b"\x01" * len(
        range(0, len(ballast), resource.getpagesize())
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    small = _run([sys.executable, "-c", "pass"], cwd=tmp_path, env=dict(os.environ), what="pass")
    large = _run(
        [sys.executable, "-c", "x = bytearray(200 * 2**20); x[::4096] = b'1' * len(x[::4096])"],
        cwd=tmp_path,
        env=dict(os.environ),
        what="large",
    )
    assert own >= 300 * MIB
    assert small < 64 * MIB  # a bare interpreter, not this process's 300+ MiB
    assert 200 * MIB < large < 300 * MIB
    del ballast
