"""One measured local run in a fresh process, as `make run-local` runs it.

`python -m bench.worker --rows N --workspace W [--data-uri URI] [--train-instances N]
[--preprocess-instances N]` builds
the definition (not timed, as `make run-local` builds it before it runs), then times
`run_local` and prints one JSON object on stdout: wall seconds, the engine's own span, every
StepRecord, the metrics.
A fresh process per run pays what `make run-local` pays each time (its lazy imports too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
TRAIN_STEP = "Train"
BEST_ITERATION = re.compile(r"^best_iteration: (\d+)$", re.MULTILINE)
"""What scripts/train.py prints; with early stopping it tells how many rounds the job ran."""


def _seconds_between(start: str, end: str | None) -> float | None:
    if end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _best_iteration(log: str | None) -> int | None:
    if not log or not Path(log).is_file():
        return None
    found = BEST_ITERATION.findall(Path(log).read_text(errors="replace"))
    return int(found[-1]) if found else None


def measure(
    rows: int,
    workspace: Path,
    data_uri: str | None,
    train_instances: int | None = None,
    preprocess_instances: int | None = None,
) -> dict[str, Any]:
    from config import LOCAL_CONFIG, load_config
    from pipelines.sdk import prepare_sdk

    cfg = load_config(LOCAL_CONFIG, env={})
    cfg = cfg.model_copy(update={"sample_data": cfg.sample_data.model_copy(update={"rows": rows})})
    prepare_sdk(cfg)
    logging.disable(logging.INFO)  # the SDK logs its config search at import
    from pipelines.definition import build

    logging.disable(logging.NOTSET)
    built = build(cfg)
    from pipelines.local import run_local

    load = os.getloadavg()[0]
    begun = datetime.now(UTC).isoformat(timespec="milliseconds")
    started = time.perf_counter()
    run = run_local(
        cfg,
        built,
        workspace=workspace,
        quiet=True,
        parameters={
            **({"InputDataUri": data_uri} if data_uri else {}),
            **({"TrainInstanceCount": train_instances} if train_instances else {}),
            **({"PreprocessInstanceCount": preprocess_instances} if preprocess_instances else {}),
        }
        or None,
    )
    wall = time.perf_counter() - started
    execution = run.execution
    auc = run.metrics.get("auc")
    return {
        "execution_id": execution.execution_id,
        "status": execution.status,
        "failure_reason": execution.failure_reason,
        "input_data_uri": execution.parameters.get("InputDataUri"),
        "wall_seconds": wall,
        "execution_seconds": _seconds_between(execution.start, execution.end),
        "run_start": begun,
        "load_average_before": load,
        "bootstrapped_baseline": run.bootstrapped_baseline,
        "steps": {
            name: {
                "type": r.type,
                "status": r.status,
                "seconds": r.seconds,
                "peak_rss_bytes": r.peak_rss_bytes,
                "cacheable": r.cacheable,
                "cache_hit": r.cache_hit,
                "end": r.end,
            }
            for name, r in execution.steps.items()
        },
        "train_best_iteration": _best_iteration(
            execution.steps[TRAIN_STEP].log if TRAIN_STEP in execution.steps else None
        ),
        "auc": auc,
        "oracle_auc": run.oracle_auc,
        "auc_gap": None if auc is None or run.oracle_auc is None else run.oracle_auc - auc,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--rows", type=int, required=True, help="sample_data.rows")
    parser.add_argument("--workspace", type=Path, required=True, help="run_local workspace")
    parser.add_argument("--data-uri", help="InputDataUri to pass instead of sample://default")
    parser.add_argument("--train-instances", type=int, help="TrainInstanceCount to pass")
    parser.add_argument("--preprocess-instances", type=int, help="PreprocessInstanceCount to pass")
    args = parser.parse_args(argv)
    result = measure(
        args.rows, args.workspace, args.data_uri, args.train_instances, args.preprocess_instances
    )
    print(json.dumps(result))
    return 0 if result["status"] == "Succeeded" else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
