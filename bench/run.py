"""`python -m bench.run`: measure the local pipeline and write build/bench/results.{json,png}.

What is measured (every figure is a ratio within this one run, medians over repeats):

1. overhead_ratio: the whole local pipeline (`run_local`, fresh workspace, nothing cached) on
   the reference data (100k rows) over the same jobs run bare in sequence (bench/bare.py).
2. cached_ratio: an unchanged re-run over the steady-state run it repeats. The first run of a
   fresh workspace bootstraps the data-quality baseline; the steady-state run then reads the
   same rows under a new object key (as a new data drop would) so that it computes every step
   against that baseline, and its unchanged re-run is the cached one.
3. definition_ratio: `python -m pipelines definition` over a bare import of the SDK modules the
   builders import (read from their source); definition_ratio_to_frozen_import: over the same
   import ending as the definition command does, with gc.freeze() (see measure_definition).
4. scale: the whole pipeline per size (fresh workspace each): seconds and peak RSS per step.
5. quality: the model's test AUC next to the oracle AUC of the same test rows.
6. limits (the yardstick, bench/yardstick.py: the same work in one warm Python process):
   limit_ratio_<rows>: `python -m pipelines run-local --config <csv config>` as a user runs it
   (whole process, fresh workspace, the definition built inside it) over the yardstick;
   preprocess_limit_ratio_1m: that run's Preprocess job over the yardstick's read + preprocess.
7. preprocess_rss_to_csv_<rows>: the Preprocess job's peak RSS (bare, wait4) over the CSV size.
8. cached_prefix_ratio: the unchanged re-run of (2) up to the end of the last step before
   Register (the part SageMaker can cache) over the same span of the run it repeats.
9. hosts (bench/scale.py): every ``--scale-sizes`` size end to end with TrainInstanceCount 1
   and 2: train_rss_ratio_2_hosts, auc_gap_2_hosts, preprocess_rss_ratio_10m_1m,
   rows_10m_seconds_1_host / _2_hosts (``--scale-only`` runs just these).

Exit codes: 0 measured (targets met or not), 1 a run failed, 2 bad arguments.

Over 500 lines: the five measurements above, each a short function, and the report that puts
their figures side by side; it is a tool outside the product, run by `make bench` only.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import report, scale
from bench.bare import BareRunError, run_bare
from config.paths import ROOT

if TYPE_CHECKING:
    from config import Config

OUT_DIR = ROOT / "build" / "bench"
RESULTS = "results.json"
CHART = "results.png"
DEFAULT_SIZES = (100_000, 1_000_000, 3_000_000)
LIMIT_SIZES = (100_000, 1_000_000)
"""Sizes of the yardstick comparison (limit_ratio_<rows>), when they are among the sizes."""
RSS_SIZES = (1_000_000, 10_000_000)
"""Sizes of the Preprocess peak-RSS measurement (its own data sets, Preprocess alone)."""
QUICK_SIZES = (5_000, 20_000)
REFERENCE_ROWS = 100_000
LARGE_ROWS = 1_000_000
"""Sizes above this run --large-repeats times (default once): a 3M-row run takes minutes."""
SDK_SOURCES = ("steps/*.py", "pipelines/cli.py", "pipelines/definition.py", "pipelines/sdk.py")
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2

TARGETS: dict[str, tuple[str, float]] = {
    "overhead_ratio": ("<= 1.15", 1.15),
    "cached_ratio": ("<= 0.03", 0.03),
    "definition_ratio": ("<= 1.2", 1.2),
    "transform_peak_rss_ratio_1m_100k": ("<= 1.5", 1.5),
    "auc_gap_to_oracle": ("<= 0.01", 0.01),
    "limit_ratio_100k": ("<= 2.0", 2.0),
    "limit_ratio_1m": ("<= 1.3", 1.3),
    "preprocess_limit_ratio_1m": ("<= 1.5", 1.5),
    "preprocess_rss_to_csv_1m": ("<= 4", 4.0),
    "preprocess_rss_to_csv_10m": ("<= 4", 4.0),
    "cached_prefix_ratio": ("<= 0.03", 0.03),
}
USER_RERUNS = 2
"""The user's run repeated unchanged: the second runs the drift check against the baseline the
first registered (DataQuality and Evaluate compute), the third is the unchanged re-run (every
step before Register from the cache); ``user_rerun_ratio`` is the third over the first."""
SIZE_LABELS = {100_000: "100k", 1_000_000: "1m", 10_000_000: "10m"}
USER_CONFIG = """\
# A user's config for the bench: the published graph on one CSV file.
extends: {parent}
data:
  input_uri: {uri}
  target: label
  problem_type: binary
"""

PHASES_SCRIPT = """
import time
started = time.perf_counter()
import json, logging
from config import PIPELINE_CONFIG, load_config
cfg = load_config(PIPELINE_CONFIG)
config = time.perf_counter()
from pipelines.sdk import pipeline_session, prepare_sdk
prepare_sdk(cfg)
logging.disable(logging.INFO)
import pipelines.definition as definition
logging.disable(logging.NOTSET)
imported = time.perf_counter()
logging.disable(logging.WARNING)
session = pipeline_session(cfg)
sessioned = time.perf_counter()
pipeline, code = definition.create_pipeline(cfg, session)
created = time.perf_counter()
document = definition.canonical_json(pipeline.definition())
serialised = time.perf_counter()
print(json.dumps({
    "config_seconds": config - started,
    "sdk_and_builders_import_seconds": imported - config,
    "session_seconds": sessioned - imported,
    "create_pipeline_seconds": created - sessioned,
    "definition_json_seconds": serialised - created,
}))
"""


class BenchError(RuntimeError):
    """A measurement that could not be taken; the message says which and why."""


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Setup:
    """The local config, its definition and the code objects it names (for the bare jobs)."""

    cfg: Config
    definition: dict[str, Any]
    code: dict[str, bytes]


def setup() -> Setup:
    """Build the definition of configs/local.yaml as `make run-local` builds it."""
    from config import LOCAL_CONFIG, load_config
    from pipelines.sdk import prepare_sdk

    cfg = load_config(LOCAL_CONFIG, env={})
    prepare_sdk(cfg)
    logging.disable(logging.INFO)  # the SDK logs its config search at import
    from pipelines.definition import build

    logging.disable(logging.NOTSET)
    built = build(cfg)
    return Setup(cfg, json.loads(built.definition), {a.s3_uri: a.payload for a in built.code})


def dataset(cfg: Config, rows: int, data_dir: Path) -> tuple[Path, float]:
    """The built-in data set at ``rows`` (generated once, reused by later benches)."""
    from pipelines.sample_data import ensure_dataset

    started = time.perf_counter()
    path = data_dir / f"default-{rows}-{cfg.sample_data.seed}.csv"
    ensure_dataset(path, rows=rows, seed=cfg.sample_data.seed)
    return path, time.perf_counter() - started


def fresh_workspace(root: Path, label: str, csv: Path) -> Path:
    """An empty workspace holding the data set where run_local looks for `sample://default`,
    so that no run measures data generation (pipelines.local.input_uri's file name)."""
    from pipelines.sample_data import metadata_path

    workspace = root / label
    if workspace.exists():
        shutil.rmtree(workspace)
    (workspace / "data").mkdir(parents=True)
    os.link(csv, workspace / "data" / csv.name)
    shutil.copyfile(metadata_path(csv), metadata_path(workspace / "data" / csv.name))
    return workspace


# --------------------------------------------------------------------------- pipeline runs


def pipeline_run(
    rows: int,
    workspace: Path,
    csv: Path,
    data_uri: str | None = None,
    train_instances: int | None = None,
    preprocess_instances: int | None = None,
) -> dict[str, Any]:
    """One `run_local` in a fresh process (bench/worker.py): wall seconds, steps, metrics."""
    staged = workspace / "data" / csv.name
    inode = staged.stat().st_ino
    argv = [
        sys.executable,
        "-m",
        "bench.worker",
        "--rows",
        str(rows),
        "--workspace",
        str(workspace),
    ]
    if data_uri:
        argv += ["--data-uri", data_uri]
    if train_instances:
        argv += ["--train-instances", str(train_instances)]
    if preprocess_instances:
        argv += ["--preprocess-instances", str(preprocess_instances)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    try:
        run = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BenchError(
            f"bench.worker exited with {done.returncode} without a result:\n{done.stderr[-3000:]}"
        ) from None
    if run["status"] != "Succeeded":
        raise BenchError(
            f"local run {run['execution_id']} in {workspace}: {run['status']}: "
            f"{run['failure_reason']}"
        )
    expected = data_uri or staged.resolve().as_uri()
    if run["input_data_uri"] != expected or staged.stat().st_ino != inode:
        raise BenchError(
            f"run_local read {run['input_data_uri']!r}, not the staged {expected!r} (or "
            "regenerated it): bench/run.py fresh_workspace no longer matches "
            "pipelines.local.input_uri; update it so that no run times data generation."
        )
    return run


def non_cacheable(run: dict[str, Any]) -> dict[str, Any]:
    """Where an unchanged re-run spends its time: the steps it executes again (no cache hit),
    the engine around them, and run_local's own work after the engine (the oracle report)."""
    executed = {
        name: step["seconds"]
        for name, step in run["steps"].items()
        if step["status"] == "Succeeded" and not step["cache_hit"]
    }
    step_total = sum(s["seconds"] or 0.0 for s in run["steps"].values())
    return {
        "steps": executed,
        "steps_seconds": sum(executed.values()),
        "engine_other_seconds": run["execution_seconds"] - step_total,
        "outside_engine_seconds": run["wall_seconds"] - run["execution_seconds"],
    }


# --------------------------------------------------------------------------- the measurements


def bare_run(env: Setup, csv: Path, workspace: Path, label: str) -> dict[str, Any]:
    log(f"{label}: jobs bare")
    result = run_bare(env.definition, env.code, csv, workspace / "bare")
    shutil.rmtree(workspace / "bare")
    return {"seconds": result.seconds, "steps": result.steps}


def measure_reference(
    env: Setup, rows: int, csv: Path, repeats: int, work: Path, keep: bool
) -> dict[str, Any]:
    """Per repeat: bare jobs, then (fresh workspace) first, steady-state and unchanged runs.

    Bare goes first in even repeats and last in odd ones, so drift on the machine does not
    favour one side.
    """
    repeats_out = []
    for index in range(repeats):
        workspace = fresh_workspace(work, f"{rows}-r{index}", csv)
        record: dict[str, Any] = {"bare_first": index % 2 == 0}
        label = f"{rows} rows, repeat {index + 1}/{repeats}"
        if record["bare_first"]:
            record["bare"] = bare_run(env, csv, workspace, label)
        log(f"{label}: first run (fresh workspace)")
        record["first"] = pipeline_run(rows, workspace, csv)
        if not record["bare_first"]:
            record["bare"] = bare_run(env, csv, workspace, label)
        steady_csv = workspace / "data" / f"steady-{csv.name}"
        os.link(csv, steady_csv)
        log(f"{label}: steady-state run, then its re-run")
        uri = steady_csv.resolve().as_uri()
        record["steady"] = pipeline_run(rows, workspace, csv, data_uri=uri)
        record["rerun"] = pipeline_run(rows, workspace, csv, data_uri=uri)
        record["overhead_ratio"] = record["first"]["wall_seconds"] / record["bare"]["seconds"]
        record["cached_ratio"] = record["rerun"]["wall_seconds"] / record["steady"]["wall_seconds"]
        record["steady_prefix_seconds"] = prefix_seconds(record["steady"])
        record["rerun_prefix_seconds"] = prefix_seconds(record["rerun"])
        record["cached_prefix_ratio"] = (
            record["rerun_prefix_seconds"] / record["steady_prefix_seconds"]
        )
        record["rerun_non_cacheable"] = non_cacheable(record["rerun"])
        hits = [n for n, s in record["steady"]["steps"].items() if s["cache_hit"]]
        if hits:
            raise BenchError(f"the steady-state run was meant to compute every step; hits: {hits}")
        missed = [
            n
            for n in prefix_steps()
            if record["rerun"]["steps"][n]["cacheable"]
            and not record["rerun"]["steps"][n]["cache_hit"]
        ]
        if missed:
            raise BenchError(
                f"the unchanged re-run was meant to take every cacheable step before Register "
                f"from the cache; computed again: {missed}"
            )
        repeats_out.append(record)
        log(
            f"  overhead {record['overhead_ratio']:.3f} (pipeline "
            f"{record['first']['wall_seconds']:.1f} s, bare {record['bare']['seconds']:.1f} s); "
            f"cached {record['cached_ratio']:.3f} ({record['rerun']['wall_seconds']:.2f} s / "
            f"{record['steady']['wall_seconds']:.1f} s); cached prefix "
            f"{record['cached_prefix_ratio']:.3f}"
        )
        if not keep:
            shutil.rmtree(workspace)
    return summarise_reference(rows, repeats_out)


def summarise_reference(rows: int, repeats: list[dict[str, Any]]) -> dict[str, Any]:
    median = report.median
    steps = sorted({n for r in repeats for n in r["bare"]["steps"]})
    per_step: dict[str, dict[str, Any]] = {
        name: {
            "pipeline_seconds": [r["first"]["steps"][name]["seconds"] for r in repeats],
            "bare_seconds": [r["bare"]["steps"][name] for r in repeats],
        }
        for name in steps
    }
    for entry in per_step.values():
        entry["pipeline_median"] = median(entry["pipeline_seconds"]) or 0.0
        entry["bare_median"] = median(entry["bare_seconds"]) or 0.0
        entry["difference_median"] = entry["pipeline_median"] - entry["bare_median"]
    reruns = [r["rerun_non_cacheable"] for r in repeats]
    rerun_steps = sorted({n for r in reruns for n in r["steps"]})
    return {
        "overhead": {
            "rows": rows,
            "ratio_per_repeat": [r["overhead_ratio"] for r in repeats],
            "ratio_median": median([r["overhead_ratio"] for r in repeats]),
            "pipeline_seconds": [r["first"]["wall_seconds"] for r in repeats],
            "pipeline_execution_seconds": [r["first"]["execution_seconds"] for r in repeats],
            "pipeline_outside_engine_seconds": [
                r["first"]["wall_seconds"] - r["first"]["execution_seconds"] for r in repeats
            ],
            "engine_only_ratio_median": median(
                [r["first"]["execution_seconds"] / r["bare"]["seconds"] for r in repeats]
            ),
            "bare_seconds": [r["bare"]["seconds"] for r in repeats],
            "ratio_of_medians": statistics.median([r["first"]["wall_seconds"] for r in repeats])
            / statistics.median([r["bare"]["seconds"] for r in repeats]),
            "per_step": per_step,
        },
        "cached": {
            "rows": rows,
            "ratio_per_repeat": [r["cached_ratio"] for r in repeats],
            "ratio_median": median([r["cached_ratio"] for r in repeats]),
            "first_run_seconds": [r["first"]["wall_seconds"] for r in repeats],
            "steady_run_seconds": [r["steady"]["wall_seconds"] for r in repeats],
            "rerun_seconds": [r["rerun"]["wall_seconds"] for r in repeats],
            "prefix_ratio_per_repeat": [r["cached_prefix_ratio"] for r in repeats],
            "prefix_ratio_median": median([r["cached_prefix_ratio"] for r in repeats]),
            "steady_prefix_seconds": [r["steady_prefix_seconds"] for r in repeats],
            "rerun_prefix_seconds": [r["rerun_prefix_seconds"] for r in repeats],
            "rerun_cache_hits": sorted(
                n for n, s in repeats[0]["rerun"]["steps"].items() if s["cache_hit"]
            ),
            "rerun_non_cacheable_seconds": [r["steps_seconds"] for r in reruns],
            "rerun_non_cacheable_median": median([r["steps_seconds"] for r in reruns]),
            "rerun_non_cacheable_steps_median": {
                n: median([r["steps"].get(n) for r in reruns]) for n in rerun_steps
            },
            "rerun_engine_other_seconds": [r["engine_other_seconds"] for r in reruns],
            "rerun_outside_engine_seconds": [r["outside_engine_seconds"] for r in reruns],
            "ratio_without_transform_median": median(
                [
                    (
                        r["rerun"]["wall_seconds"]
                        - r["rerun_non_cacheable"]["steps"].get("BatchScore", 0)
                    )
                    / r["steady"]["wall_seconds"]
                    for r in repeats
                ]
            ),
            "ratio_without_transform_and_report_median": median(
                [
                    (
                        r["rerun"]["wall_seconds"]
                        - r["rerun_non_cacheable"]["steps"].get("BatchScore", 0)
                        - r["rerun_non_cacheable"]["outside_engine_seconds"]
                    )
                    / r["steady"]["wall_seconds"]
                    for r in repeats
                ]
            ),
        },
        "repeats": repeats,
    }


def prefix_steps() -> tuple[str, ...]:
    """The steps before Register: the part of the graph an unchanged re-run can take from the
    cache (on SageMaker too); CreateModel, BatchScore and the approval run again."""
    from steps import names

    return (
        names.PROFILE, names.PREPROCESS, names.FIT_TRANSFORMER, names.DATA_QUALITY, names.TRAIN,
        names.EVALUATE, names.CHECK_METRIC,
    )  # fmt: skip


def prefix_seconds(run: dict[str, Any]) -> float:
    """From run_local's start to the end of the last step before Register."""
    ends = [run["steps"][name]["end"] for name in prefix_steps() if name in run["steps"]]
    if len(ends) != len(prefix_steps()) or None in ends:
        raise BenchError(f"the run did not end every step of {prefix_steps()}: {run['steps']}")
    last = max(datetime.fromisoformat(e) for e in ends)
    return (last - datetime.fromisoformat(run["run_start"])).total_seconds()


def yardstick(env: Setup, csv: Path, out: Path) -> dict[str, Any]:
    """bench/yardstick.py in a fresh process, with the Train step's hyper-parameters."""
    hyperparameters = env.cfg.training.hyperparameters.model_dump()
    argv = [sys.executable, "-m", "bench.yardstick", "--csv", str(csv), "--target"]
    argv += ["label", "--hyperparameters", json.dumps(hyperparameters), "--out", str(out)]
    # The thread settings the local runtime gives its jobs, so both sides compute alike.
    from runtime.jobs.contract import SHARED_HOST_DEFAULTS

    threads = {**SHARED_HOST_DEFAULTS, **os.environ}
    done = subprocess.run(argv, cwd=ROOT, env=threads, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"bench.yardstick exited with {done.returncode}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def user_run(csv: Path, workspace: Path) -> dict[str, Any]:
    """`python -m pipelines run-local --config <csv config>` in a fresh workspace, timed whole:
    what a user waits for (start-up, config, definition build, the run, the summary)."""
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    config = workspace / "bench.yaml"
    parent = os.path.relpath(ROOT / "configs" / "pipeline.yaml", workspace)
    config.write_text(USER_CONFIG.format(parent=parent, uri=csv.resolve().as_uri()))
    from pipelines.local import WORKSPACE_ENV
    from pipelines.saved import SAVED_ENV

    # Saved definitions in the workspace: the first run builds (none saved yet), as on a fresh
    # checkout; the user's re-runs of the same command reuse it.
    env = {
        **os.environ,
        WORKSPACE_ENV: str(workspace / "local"),
        SAVED_ENV: str(workspace / "saved"),
    }
    argv = [sys.executable, "-m", "pipelines", "run-local", "--config", str(config)]
    runs = []
    for _ in range(1 + USER_RERUNS):
        load = os.getloadavg()[0]
        seconds, _ = _timed(argv, env)
        executions = [
            json.loads(path.read_text())
            for path in (workspace / "local" / "executions").glob("*/execution.json")
        ]
        steps = max(executions, key=lambda document: document["start"])["steps"]  # this run's
        runs.append({
            "seconds": seconds,
            "load_average_before": load,
            "steps": {
                name: {k: step.get(k) for k in ("status", "seconds", "peak_rss_bytes", "cache_hit")}
                for name, step in steps.items()
            },
        })  # fmt: skip
    first, *reruns = runs
    return {**first, "reruns": reruns}


def measure_limits(
    env: Setup, data: dict[str, dict[str, Any]], sizes: Sequence[int], work: Path, keep: bool
) -> dict[str, Any]:
    """Per size: the yardstick, then the user's first run (fresh workspace), one each."""
    out: dict[str, Any] = {}
    for rows in sizes:
        csv = Path(data[str(rows)]["path"])
        log(f"{rows} rows: yardstick (one process)")
        stick = yardstick(env, csv, work / f"yardstick-{rows}.csv")
        read = stick["read_preprocess_seconds"]
        log(f"  {stick['seconds']:.1f} s (read + preprocess {read:.1f} s)")
        log(f"{rows} rows: python -m pipelines run-local --config <csv config>, fresh workspace")
        run = user_run(csv, work / f"user-{rows}")
        preprocess = report.preprocess_job(run["steps"])["seconds"]
        log(f"  {run['seconds']:.1f} s (Preprocess {preprocess:.1f} s)")
        reruns = run["reruns"]
        log("  re-runs, same command and workspace: " + ", ".join(
            f"{r['seconds']:.1f} s" for r in reruns))  # fmt: skip
        out[str(rows)] = {
            "yardstick": stick,
            "user_run": run,
            "limit_ratio": run["seconds"] / stick["seconds"],
            "user_rerun_ratio": reruns[-1]["seconds"] / run["seconds"],
            "preprocess_limit_ratio": preprocess / stick["read_preprocess_seconds"],
        }
        if not keep:
            shutil.rmtree(work / f"user-{rows}")
    return out


def measure_preprocess_rss(
    env: Setup, data: dict[str, dict[str, Any]], sizes: Sequence[int], work: Path
) -> dict[str, Any]:
    """The Preprocess job alone (bench/bare.py: its three passes) per size: its peak RSS over
    the CSV's size."""
    from steps.names import FIT_TRANSFORMER

    out: dict[str, Any] = {}
    for rows in sizes:
        csv = Path(data[str(rows)]["path"])
        log(f"{rows} rows: Preprocess alone, peak RSS")
        result = run_bare(
            env.definition, env.code, csv, work / f"rss-{rows}", only=[FIT_TRANSFORMER]
        )
        shutil.rmtree(work / f"rss-{rows}")
        passes = {
            name: {"seconds": result.steps[name], "peak_rss_bytes": result.peak_rss_bytes[name]}
            for name in report.PREPROCESS_PASSES
        }
        job = report.preprocess_job(passes)
        rss = job["peak_rss_bytes"]
        size = csv.stat().st_size
        log(f"  {rss / report.MIB:.0f} MiB for a {size / report.MIB:.0f} MiB CSV")
        out[str(rows)] = {
            "peak_rss_bytes": rss,
            "csv_bytes": size,
            "ratio": rss / size,
            "seconds": job["seconds"],
            "passes": passes,
        }
    return out


def measure_size(
    rows: int, csv: Path, repeats: int, work: Path, keep: bool
) -> list[dict[str, Any]]:
    """Fresh-workspace first runs of the whole pipeline at ``rows``."""
    runs = []
    for index in range(repeats):
        workspace = fresh_workspace(work, f"{rows}-r{index}", csv)
        log(f"{rows} rows, repeat {index + 1}/{repeats}: first run (fresh workspace)")
        run = pipeline_run(rows, workspace, csv)
        log(f"  {run['wall_seconds']:.1f} s")
        runs.append(run)
        if not keep:
            shutil.rmtree(workspace)
    return runs


def sdk_modules() -> list[str]:
    """The `sagemaker...` modules the builders and the definition command import."""
    found: set[str] = set()
    for pattern in SDK_SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                found |= {n for n in names if n == "sagemaker" or n.startswith("sagemaker.")}
    return sorted(found)


def _timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(list(argv), cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def measure_definition(cfg: Config, repeats: int) -> dict[str, Any]:
    """`python -m pipelines definition` against a bare import of the SDK modules it uses: the
    build itself (no saved build reused: pipelines/saved.py off), then once the reuse of a
    saved build, beside it.

    The definition command freezes the objects the SDK's import made (pipelines/cli.py), so
    its interpreter's exit no longer walks them; the bare import's exit does (about 0.6 s of
    its 2.4 s here). ``ratio_to_frozen_import`` compares like with like: the same import
    followed by the same ``gc.freeze()``."""
    from pipelines.saved import OFF, SAVED_ENV

    env = {**os.environ, "AWS_DEFAULT_REGION": cfg.aws.region, SAVED_ENV: OFF}
    modules = sdk_modules()
    python = sys.executable
    imports = [python, "-c", "import " + ", ".join(modules)]
    frozen = [python, "-c", "import gc, " + ", ".join(modules) + "; gc.freeze()"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-definition-") as tmp:
        command = [python, "-m", "pipelines", "definition", "--out", f"{tmp}/pipeline.json"]
        _timed(imports, env)  # warm the file cache for both sides
        for index in range(repeats):
            log(f"definition build, repeat {index + 1}/{repeats}")
            order = [("definition", command), ("sdk_import", imports), ("frozen_import", frozen)]
            if index % 2:
                order.reverse()
            record: dict[str, Any] = {}
            for name, argv in order:
                record[f"{name}_seconds"] = _timed(argv, env)[0]
            record["python_startup_seconds"] = _timed([python, "-c", "pass"], env)[0]
            record["ratio"] = record["definition_seconds"] / record["sdk_import_seconds"]
            record["ratio_frozen"] = record["definition_seconds"] / record["frozen_import_seconds"]
            rows.append(record)
        phases = json.loads(_timed([python, "-c", PHASES_SCRIPT], env)[1])
        log("definition build saved, then reused")
        reuse_env = {**env, SAVED_ENV: f"{tmp}/saved"}
        _timed(command, reuse_env)
        reuse_seconds = _timed(command, reuse_env)[0]
    median = report.median
    return {
        "command": "python -m pipelines definition --out <tmp> (saved builds off)",
        "reuse_seconds": reuse_seconds,
        "reuse_ratio": reuse_seconds / median([r["sdk_import_seconds"] for r in rows]),
        "sdk_modules": modules,
        "ratio_per_repeat": [r["ratio"] for r in rows],
        "ratio_median": median([r["ratio"] for r in rows]),
        "ratio_to_frozen_import_per_repeat": [r["ratio_frozen"] for r in rows],
        "ratio_to_frozen_import": median([r["ratio_frozen"] for r in rows]),
        "definition_seconds": [r["definition_seconds"] for r in rows],
        "sdk_import_seconds": [r["sdk_import_seconds"] for r in rows],
        "frozen_import_seconds": [r["frozen_import_seconds"] for r in rows],
        "python_startup_seconds": [r["python_startup_seconds"] for r in rows],
        "phases_one_run": phases,
    }


# --------------------------------------------------------------------------- summaries


def train_rounds(definition: dict[str, Any], best_iteration: int | None) -> int | None:
    """Boosting rounds the Train job ran: early stopping ends ``early_stopping_rounds`` after
    the best iteration, at most ``num_round``."""
    from steps.names import TRAIN
    from tabular.contract import definition_steps

    if best_iteration is None:
        return None
    hyperparameters = definition_steps(definition)[0][TRAIN]["Arguments"]["HyperParameters"]
    patience = int(hyperparameters.get("early_stopping_rounds", 0))
    return min(best_iteration + 1 + patience, int(hyperparameters["num_round"]))


def summarise_size(runs: list[dict[str, Any]], definition: dict[str, Any]) -> dict[str, Any]:
    median = report.median
    steps = {}
    for name in runs[0]["steps"]:
        seconds = [r["steps"][name]["seconds"] for r in runs]
        rss = [r["steps"][name]["peak_rss_bytes"] for r in runs]
        steps[name] = {"seconds": median(seconds), "peak_rss_bytes": median(rss)}
    per_round = []
    for run in runs:
        rounds = train_rounds(definition, run.get("train_best_iteration"))
        run["train_rounds"] = rounds
        seconds = run["steps"].get("Train", {}).get("seconds")
        per_round.append(seconds / rounds if rounds and seconds else None)
    return {
        "wall_seconds": median([r["wall_seconds"] for r in runs]),
        "execution_seconds": median([r["execution_seconds"] for r in runs]),
        "steps": steps,
        "train_rounds": median([r["train_rounds"] for r in runs]),
        "train_seconds_per_round": median(per_round),
        "auc": median([r["auc"] for r in runs]),
        "oracle_auc": median([r["oracle_auc"] for r in runs]),
        "auc_gap": median([r["auc_gap"] for r in runs]),
    }


def _exponent(t1: float | None, t2: float | None, n1: int, n2: int) -> float | None:
    if not t1 or not t2 or t1 <= 0 or t2 <= 0:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def linearity(by_rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Growth exponents (1 = linear) between consecutive sizes, per step and in total.

    A job's fixed cost (interpreter and library start-up, 2-4 s) pulls its exponent below 1 at
    small sizes, so the verdict reads the two largest sizes. Train runs as many boosting rounds
    as early stopping picks, which changes with the data: its time per round is the measure
    of how its work grows with rows.
    """
    sizes = sorted(int(r) for r in by_rows)
    if len(sizes) < 2:
        return {"verdict": "needs two sizes"}

    def series(name: str) -> list[float | None]:
        medians = [by_rows[str(n)]["median"] for n in sizes]
        if name == "total":
            return [m["wall_seconds"] for m in medians]
        if name == "Train per round":
            return [m["train_seconds_per_round"] for m in medians]
        return [m["steps"].get(name, {}).get("seconds") for m in medians]

    names = (*report.JOB_STEPS, "Train per round", "total")
    exponents = {
        name: [
            _exponent(series(name)[i], series(name)[i + 1], sizes[i], sizes[i + 1])
            for i in range(len(sizes) - 1)
        ]
        for name in names
    }
    last = {name: values[-1] for name, values in exponents.items()}
    span = f"{sizes[-2]} -> {sizes[-1]} rows"
    total = last["total"]
    if total is None:
        verdict = "not measurable"
    elif 0.85 <= total <= 1.15:
        verdict = f"about linear: total time exponent {total:.2f} over {span}"
    elif total < 0.85:
        verdict = f"below linear: total time exponent {total:.2f} over {span}"
    else:
        verdict = f"above linear: total time exponent {total:.2f} over {span}"
    verdict += "; per step " + ", ".join(
        f"{name} {value:.2f}" for name, value in last.items() if name != "total" and value
    )
    return {"sizes": sizes, "exponents": exponents, "verdict": verdict}


def headline(
    reference: dict[str, Any] | None,
    definition: dict[str, Any],
    by_rows: dict[str, Any],
    limits: dict[str, Any],
    rss: dict[str, Any],
) -> dict[str, Any]:
    def transform_rss(rows: int) -> float | None:
        entry = by_rows.get(str(rows))
        return entry["median"]["steps"]["BatchScore"]["peak_rss_bytes"] if entry else None

    small, large = transform_rss(REFERENCE_ROWS), transform_rss(LARGE_ROWS)
    reference_entry = by_rows.get(str(reference["overhead"]["rows"])) if reference else None
    return {
        "overhead_ratio": reference["overhead"]["ratio_median"] if reference else None,
        "cached_ratio": reference["cached"]["ratio_median"] if reference else None,
        "definition_ratio": definition["ratio_median"],
        "definition_ratio_to_frozen_import": definition["ratio_to_frozen_import"],
        "transform_peak_rss_ratio_1m_100k": large / small if small and large else None,
        "auc_gap_to_oracle": reference_entry["median"]["auc_gap"] if reference_entry else None,
        **{
            f"limit_ratio_{SIZE_LABELS[n]}": limits[str(n)]["limit_ratio"]
            if str(n) in limits
            else None
            for n in LIMIT_SIZES
        },
        "preprocess_limit_ratio_1m": limits[str(LARGE_ROWS)]["preprocess_limit_ratio"]
        if str(LARGE_ROWS) in limits
        else None,
        **{
            f"preprocess_rss_to_csv_{SIZE_LABELS[n]}": rss[str(n)]["ratio"]
            if str(n) in rss
            else None
            for n in RSS_SIZES
        },
        "cached_prefix_ratio": reference["cached"]["prefix_ratio_median"] if reference else None,
    }


# --------------------------------------------------------------------------- hosts


def measure_hosts(args: argparse.Namespace, env: Setup, out: Path, work: Path) -> dict[str, Any]:
    """The scale-out runs: every scale size end to end with 1 and with 2 hosts (Train, Profile
    and Preprocess), both over the data set as scale.INPUT_FILES files."""

    def run(rows: int, hosts: int) -> dict[str, Any]:
        path, _ = dataset(env.cfg, rows, out / "data")
        workspace = fresh_workspace(work, scale.workspace_label(rows, hosts), path)
        data_uri = scale.split_csv(path, rows, scale.INPUT_FILES).as_uri() + "/"
        result = pipeline_run(
            rows, workspace, path, data_uri, train_instances=hosts, preprocess_instances=hosts
        )
        if not args.keep_workspaces:
            shutil.rmtree(workspace)
        return result

    measured = scale.measure_scale(args.scale_sizes, run, log)
    scale.add_floor(measured, train_import_floor(work))
    return measured


def train_import_floor(work: Path) -> int:
    """Peak RSS of a process that only imports what Train imports (its fixed part per host),
    measured as jobs are (runtime.jobs.run_command: the job's own wait4 peak)."""
    from runtime.jobs import run_command

    work.mkdir(parents=True, exist_ok=True)
    code = "import numpy, pandas, pyarrow, sklearn, joblib, xgboost"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = run_command(
        [sys.executable, "-c", code],
        env=env,
        cwd=work,
        log_path=work / "import-floor.log",
        timeout_seconds=300,
    )
    if result.returncode != 0:
        raise BenchError(f"importing Train's libraries failed: {result.stderr_tail[-3:]}")
    return result.peak_rss_bytes


def scale_only(args: argparse.Namespace, env: Setup, out: Path, work: Path) -> int:
    """``--scale-only``: the scale-out runs alone, their figures in results.json."""
    started = time.perf_counter()
    machine = report.machine()
    try:
        measured = measure_hosts(args, env, out, work)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_FAILED
    machine["load_average_at_end"] = list(os.getloadavg())
    results = {
        **measured["headline"],
        "machine": machine,
        "targets": scale.scale_targets(measured["headline"]),
        "details": {
            "settings": {"scale_sizes": args.scale_sizes, "scale_only": True},
            "hosts": measured["details"],
        },
    }
    results["details"]["settings"]["bench_seconds"] = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / RESULTS, results)
    print(json.dumps({k: results[k] for k in measured["headline"]}, indent=2))
    print(f"wrote {out / RESULTS} in {time.perf_counter() - started:.0f} s")
    return 0


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--sizes",
        help=f"comma-separated row counts (default {','.join(map(str, DEFAULT_SIZES))}); "
        f"overhead and caching are measured at {REFERENCE_ROWS} rows, else at the smallest",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats per size (default 3)")
    parser.add_argument(
        "--large-repeats",
        type=int,
        default=1,
        help=f"repeats for sizes above {LARGE_ROWS} rows (default 1)",
    )
    parser.add_argument(
        "--definition-repeats", type=int, default=5, help="repeats of the definition build"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: sizes {','.join(map(str, QUICK_SIZES))}, 1 repeat, 2 definition repeats",
    )
    parser.add_argument(
        "--rss-sizes",
        help="row counts of the Preprocess peak-RSS measurement (default "
        f"{','.join(map(str, RSS_SIZES))}; --quick: none)",
    )
    parser.add_argument(
        "--scale-sizes",
        help="comma-separated row counts run end to end with 1 and 2 training hosts (default "
        f"{','.join(map(str, scale.DEFAULT_SCALE_SIZES))}; --quick: "
        f"{','.join(map(str, scale.QUICK_SCALE_SIZES))}; 0 skips them)",
    )
    parser.add_argument(
        "--scale-only", action="store_true", help="only the runs with 1 and 2 training hosts"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    parser.add_argument("--keep-workspaces", action="store_true", help="keep run workspaces")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # workspaces under it become job sandboxes: absolute paths
    if args.quick:
        args.repeats, args.large_repeats, args.definition_repeats = 1, 1, 2
        args.sizes = args.sizes or ",".join(map(str, QUICK_SIZES))
    try:
        args.sizes = sorted({int(s) for s in (args.sizes or "").split(",") if s.strip()}) or list(
            DEFAULT_SIZES
        )
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: give whole numbers separated by commas")
    if args.rss_sizes is None:
        args.rss_sizes = "" if args.quick else ",".join(map(str, RSS_SIZES))
    try:
        args.rss_sizes = sorted({int(s) for s in args.rss_sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--rss-sizes {args.rss_sizes!r}: give whole numbers separated by commas")
    default_scale = scale.QUICK_SCALE_SIZES if args.quick else scale.DEFAULT_SCALE_SIZES
    try:
        given = [int(s) for s in (args.scale_sizes or "").split(",") if s.strip()]
    except ValueError:
        parser.error(f"--scale-sizes {args.scale_sizes!r}: give whole numbers separated by commas")
    args.scale_sizes = sorted({n for n in given if n > 0}) if given else list(default_scale)
    if args.scale_only and not args.scale_sizes:
        parser.error("--scale-only needs --scale-sizes")
    if min(args.sizes + args.scale_sizes) < 1000:
        parser.error("--sizes: every size must be at least 1000 rows (the splits need rows)")
    for name in ("repeats", "large_repeats", "definition_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = report.machine()
    out: Path = args.out
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    log(f"building the definition; sizes {args.sizes}, repeats {args.repeats}")
    env = setup()
    if args.scale_only:
        return scale_only(args, env, out, work)
    data: dict[str, dict[str, Any]] = {}
    for rows in sorted({*args.sizes, *args.rss_sizes}):
        path, seconds = dataset(env.cfg, rows, out / "data")
        data[str(rows)] = {"path": str(path), "bytes": path.stat().st_size, "seconds": seconds}
        log(f"data set {rows} rows: {path.stat().st_size / report.MIB:.0f} MiB ({seconds:.1f} s)")
    reference_rows = REFERENCE_ROWS if REFERENCE_ROWS in args.sizes else args.sizes[0]
    try:
        definition = measure_definition(env.cfg, args.definition_repeats)
        reference = measure_reference(
            env,
            reference_rows,
            Path(data[str(reference_rows)]["path"]),
            args.repeats,
            work,
            args.keep_workspaces,
        )
        by_rows: dict[str, Any] = {}
        for rows in args.sizes:
            if rows == reference_rows:
                runs = [r["first"] for r in reference["repeats"]]
            else:
                count = args.large_repeats if rows > LARGE_ROWS else args.repeats
                runs = measure_size(
                    rows, Path(data[str(rows)]["path"]), count, work, args.keep_workspaces
                )
            by_rows[str(rows)] = {"runs": runs, "median": summarise_size(runs, env.definition)}
        limit_sizes = [n for n in LIMIT_SIZES if n in args.sizes]
        limits = measure_limits(env, data, limit_sizes, work, args.keep_workspaces)
        rss = measure_preprocess_rss(env, data, args.rss_sizes, work)
        hosts = measure_hosts(args, env, out, work) if args.scale_sizes else None
    except (BenchError, BareRunError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_FAILED
    heads = headline(reference, definition, by_rows, limits, rss)
    scale_heads = hosts["headline"] if hosts else dict.fromkeys(scale.HEADLINE_KEYS)
    transform_rss = {
        rows: entry["median"]["steps"]["BatchScore"]["peak_rss_bytes"]
        for rows, entry in by_rows.items()
    }
    machine["load_average_at_end"] = list(os.getloadavg())
    results: dict[str, Any] = {
        **heads,
        **scale_heads,
        "machine": machine,
        "targets": {
            key: {
                "target": text,
                "limit": limit,
                "met": None if heads[key] is None else heads[key] <= limit,
            }
            for key, (text, limit) in TARGETS.items()
        }
        | scale.scale_targets(scale_heads),
        "details": {
            "settings": {
                "sizes": args.sizes,
                "repeats": args.repeats,
                "large_repeats": args.large_repeats,
                "definition_repeats": args.definition_repeats,
                "rss_sizes": args.rss_sizes,
                "quick": args.quick,
                "scale_sizes": args.scale_sizes,
                "reference_rows": reference_rows,
                "config": "configs/local.yaml (sample_data.rows per size)",
                "bench_seconds": None,
            },
            "notes": {
                "overhead": "run_local wall time (fresh workspace, nothing cached, definition "
                "built beforehand) over the bench/bare.py sequence; median of paired ratios",
                "cached": "run 1 bootstraps the baseline; run 2 reads the same rows under a new "
                "key, so it computes every step; run 3 repeats run 2 unchanged; ratio run3/run2. "
                "With the same key run 2 would already reuse Preprocess, Train and Evaluate.",
                "auc_gap_to_oracle": f"oracle minus model test AUC at {reference_rows} rows",
                "peak_rss": "StepRecord.peak_rss_bytes: the job process's own peak (wait4)",
                "transform_peak_rss": "BatchScore holds one request at a time; a request is "
                "at most MaxPayloadInMB of records, so its peak follows the request size, which "
                "grows with the scoring split until a single request reaches that cap",
                "train_rounds": "boosting rounds Train ran (early stopping), from its log",
                "limits": "bench/yardstick.py (one process: imports, pyarrow read, split, "
                "imputation + one-hot, xgb.train, AUC, predictions) against `python -m "
                "pipelines run-local --config <csv config>` timed whole in a fresh workspace",
                "preprocess_rss": "Preprocess alone as bench/bare.py runs it; wait4's peak RSS "
                "of the job process over the CSV file's size",
                "cached_prefix": "in the cached measurement: run 3 up to the end of the last "
                "step before Register over the same span of run 2",
            },
            "limits": limits,
            "preprocess_rss": rss,
            "overhead": reference["overhead"],
            "cached": reference["cached"],
            "definition": definition,
            "scale": {
                "by_rows": by_rows,
                "linearity": linearity(by_rows),
                "transform_peak_rss_bytes": transform_rss,
            },
            "quality": {
                rows: {k: entry["median"][k] for k in ("auc", "oracle_auc", "auc_gap")}
                for rows, entry in by_rows.items()
            },
            "data": data,
            "reference_repeats": reference["repeats"],
            "hosts": hosts["details"] if hosts else None,
        },
    }
    results["details"]["settings"]["bench_seconds"] = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / RESULTS, results)
    report.chart(results, out / CHART)
    if not args.keep_workspaces and work.exists():
        shutil.rmtree(work)
    print(report.table(results))
    print(f"\nlinearity: {results['details']['scale']['linearity']['verdict']}")
    print(f"wrote {out / RESULTS} and {out / CHART} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
