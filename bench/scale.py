"""Scale: the same data set run end to end with 1 and with 2 local hosts.

For each scale size (default 1M and 10M rows) the whole graph runs twice in fresh workspaces:
one host, and 2 hosts (``TrainInstanceCount`` and ``PreprocessInstanceCount`` 2, the same
definition: only the parameters differ). Both read the data set as :data:`INPUT_FILES` CSV
files: Preprocess's hosts share the input out as whole files, and a row's split depends on its
place in its file (tabular.partition), so both runs split the same rows the same way.
From the runs come the headline figures:

* ``preprocess_rss_ratio_10m_1m``: Preprocess's peak RSS at the largest size over the smallest
  (1-host runs; the largest of its three passes, report.preprocess_job; None unless the sizes
  are 1M and 10M, the figure for other sizes is in details);
* ``train_rss_ratio_2_hosts``: Train's peak RSS per host with 2 hosts over 1 host (largest size;
  a job's peak is its largest host's);
* ``auc_gap_2_hosts``: test AUC with 1 host minus with 2 hosts, absolute (largest size);
* ``rows_10m_seconds_1_host`` / ``_2_hosts``: wall seconds of the whole run at 10M rows.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.report import preprocess_job

BASE_ROWS = 1_000_000
LARGE_ROWS = 10_000_000
DEFAULT_SCALE_SIZES = (BASE_ROWS, LARGE_ROWS)
QUICK_SCALE_SIZES = (20_000, 100_000)
HOSTS = (1, 2)
INPUT_FILES = 4
"""The 2-host runs read the data set as this many files (2 per Preprocess host)."""
TARGETS: dict[str, tuple[str, float]] = {
    "preprocess_rss_ratio_10m_1m": ("<= 1.5", 1.5),
    "train_rss_ratio_2_hosts": ("<= 0.65", 0.65),
    "auc_gap_2_hosts": ("<= 0.002", 0.002),
}
HEADLINE_KEYS = (
    "preprocess_rss_ratio_10m_1m",
    "train_rss_ratio_2_hosts",
    "auc_gap_2_hosts",
    "rows_10m_seconds_1_host",
    "rows_10m_seconds_2_hosts",
)
"""results.json's top-level keys from these runs (None when the size they name was not run)."""
RunFn = Callable[[int, int], dict[str, Any]]
"""``run(rows, hosts)``: one whole local run (bench.worker) of ``rows`` rows on ``hosts``."""


def _step(run: dict[str, Any], name: str, key: str) -> Any:
    if name == "Preprocess":  # the job, all its passes (report.preprocess_job)
        return preprocess_job(run["steps"])[key]
    return run["steps"][name][key]


def split_csv(csv: Path, rows: int, parts: int) -> Path:
    """The data set as ``parts`` CSV files of consecutive rows, each with the header (made once,
    beside ``csv``; one line per row, as the built-in data set writes them)."""
    folder = csv.with_name(f"{csv.stem}-{parts}-files")
    if folder.is_dir() and len(list(folder.glob("*.csv"))) == parts:
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with csv.open("rb") as source:
        header = source.readline()
        for index in range(parts):
            count = rows * (index + 1) // parts - rows * index // parts
            with (partial / f"part-{index:05d}.csv").open("wb") as part:
                part.write(header)
                part.writelines(itertools.islice(source, count))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def measure_scale(sizes: Sequence[int], run: RunFn, log: Callable[[str], None]) -> dict[str, Any]:
    """Run every size on 1 and 2 hosts; return the headline keys and a ``details`` entry."""
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for rows in sorted(sizes):
        for hosts in HOSTS:
            log(f"scale: {rows} rows, {hosts} host(s) (Preprocess and Train)")
            result = run(rows, hosts)
            runs.setdefault(str(rows), {})[str(hosts)] = result
            log(
                f"scale: {rows} rows, {hosts} host(s): {result['wall_seconds']:.0f} s, "
                f"Train peak {_step(result, 'Train', 'peak_rss_bytes') / 2**20:.0f} MiB, "
                f"Preprocess peak {_step(result, 'Preprocess', 'peak_rss_bytes') / 2**20:.0f} MiB,"
                f" auc {result['auc']}"
            )
    small, large = str(min(sizes)), str(max(sizes))
    one, two = runs[large]["1"], runs[large]["2"]
    preprocess_ratio = _step(one, "Preprocess", "peak_rss_bytes") / _step(
        runs[small]["1"], "Preprocess", "peak_rss_bytes"
    )
    exact = sorted(sizes) == [BASE_ROWS, LARGE_ROWS]
    summary = {
        rows: {
            hosts: {
                "wall_seconds": r["wall_seconds"],
                "auc": r["auc"],
                "oracle_auc": r["oracle_auc"],
                **{
                    f"{step.lower()}_{key}": _step(r, step, key)
                    for step in ("Preprocess", "Train")
                    for key in ("seconds", "peak_rss_bytes")
                },
                "preprocess_passes": {
                    name: {k: r["steps"][name][k] for k in ("seconds", "peak_rss_bytes")}
                    for name in ("Profile", "Preprocess", "FitTransformer")
                },
            }
            for hosts, r in by_hosts.items()
        }
        for rows, by_hosts in runs.items()
    }
    headline = {
        "preprocess_rss_ratio_10m_1m": preprocess_ratio if exact else None,
        "train_rss_ratio_2_hosts": _step(two, "Train", "peak_rss_bytes")
        / _step(one, "Train", "peak_rss_bytes"),
        "auc_gap_2_hosts": abs(one["auc"] - two["auc"]),
        "rows_10m_seconds_1_host": one["wall_seconds"] if int(large) == LARGE_ROWS else None,
        "rows_10m_seconds_2_hosts": two["wall_seconds"] if int(large) == LARGE_ROWS else None,
    }
    details = {
        "sizes": sorted(sizes),
        "preprocess_rss_ratio": {"rows": [int(small), int(large)], "ratio": preprocess_ratio},
        "preprocess_rss_ratio_2_hosts": _step(two, "Preprocess", "peak_rss_bytes")
        / _step(one, "Preprocess", "peak_rss_bytes"),
        "compared_at_rows": int(large),
        "runs": summary,
        "notes": "TrainInstanceCount and PreprocessInstanceCount 1 and 2 on the same definition "
        f"and files (the data set as {INPUT_FILES} CSV files); each run in a fresh "
        "workspace and process; peak RSS per job is its largest host's (wait4), Preprocess's "
        "the largest of its passes (Profile, Preprocess, FitTransformer), its seconds theirs "
        "added; AUC is Evaluate's test AUC. The hosts share this machine's cores (each gets "
        "half).",
    }
    return {"headline": headline, "details": details}


def add_floor(measured: dict[str, Any], floor: int) -> None:
    """Record Train's import floor and the 2-host ratio of what lies above it: the part of a
    host's peak that its data costs, which sharding can halve (imports it cannot)."""
    details = measured["details"]
    large = details["runs"][str(details["compared_at_rows"])]
    one, two = (large[h]["train_peak_rss_bytes"] for h in ("1", "2"))
    details["train_import_floor_bytes"] = floor
    details["train_rss_ratio_2_hosts_above_floor"] = (two - floor) / (one - floor)


def scale_targets(headline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scale targets, met or not (None: not measured at the sizes the target names)."""
    return {
        key: {
            "target": text,
            "limit": limit,
            "met": None if headline[key] is None else headline[key] <= limit,
        }
        for key, (text, limit) in TARGETS.items()
    }


def workspace_label(rows: int, hosts: int) -> str:
    return f"scale-{rows}-{hosts}-hosts"
