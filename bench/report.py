"""What `make bench` writes: results.json (atomically), the printed table and results.png."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime.files import atomic_path, write_atomic

MIB = 1024 * 1024
GIB = 1024 * MIB
PREPROCESS_PASSES = ("Profile", "Preprocess", "FitTransformer")
"""The steps Preprocess runs as (steps.names): together, "the Preprocess job" of the figures."""
JOB_STEPS = (*PREPROCESS_PASSES, "DataQuality", "Train", "Evaluate", "BatchScore")


def preprocess_job(steps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The Preprocess job's figures from its passes' records (``seconds``, ``peak_rss_bytes``):
    their seconds added (they run one after another), the largest peak of any pass's host."""
    found = [steps[name] for name in PREPROCESS_PASSES if name in steps]
    if len(found) != len(PREPROCESS_PASSES):
        raise KeyError(f"the run has not every pass of {PREPROCESS_PASSES}: {sorted(steps)}")
    return {
        "seconds": sum(step["seconds"] or 0.0 for step in found),
        "peak_rss_bytes": max(step["peak_rss_bytes"] or 0 for step in found),
    }


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    memory = _memory_bytes()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": memory,
        "memory_gib": round(memory / GIB, 1) if memory else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_start": list(os.getloadavg()),
    }


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(document, indent=2) + "\n")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def table(results: Mapping[str, Any]) -> str:
    """The headline figures against their targets, then one line per data size."""
    lines = [f"{'headline':<36} {'value':>8}  {'target':<8} met"]
    for key, target in results["targets"].items():
        value = results[key]
        met = "-" if target["met"] is None else ("yes" if target["met"] else "NO")
        lines.append(f"{key:<36} {_fmt(value):>8}  {target['target']:<8} {met}")
    scale = results["details"]["scale"]["by_rows"]
    lines.append("")
    header = f"{'rows':>9} {'runs':>4} {'total s':>8}"
    header += "".join(f" {name[:10]:>10}" for name in JOB_STEPS) + f" {'rounds':>6}"
    header += f" {'xform MiB':>9} {'auc':>6} {'oracle':>6} {'gap':>6}"
    lines.append(header)
    for rows, entry in scale.items():
        median_steps = entry["median"]["steps"]
        line = (
            f"{int(rows):>9} {len(entry['runs']):>4} {_fmt(entry['median']['wall_seconds'], 1):>8}"
        )
        line += "".join(
            f" {_fmt(median_steps.get(n, {}).get('seconds'), 1):>10}" for n in JOB_STEPS
        )
        rounds = entry["median"]["train_rounds"]
        line += f" {'-' if rounds is None else int(rounds):>6}"
        transform_rss = median_steps.get("BatchScore", {}).get("peak_rss_bytes")
        line += f" {_mib(transform_rss):>9} {_fmt(entry['median']['auc'], 4):>6}"
        line += (
            f" {_fmt(entry['median']['oracle_auc'], 4):>6} {_fmt(entry['median']['auc_gap'], 4):>6}"
        )
        lines.append(line)
    return "\n".join(lines)


def _floats(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def chart(results: Mapping[str, Any], path: Path) -> None:
    """Time and peak RSS per step against rows, and each headline against its target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = results["details"]["scale"]["by_rows"]
    rows = [int(r) for r in scale]
    figure, (times, memory, heads) = plt.subplots(1, 3, figsize=(17, 5.2))
    for name in (*JOB_STEPS, "total"):
        if name == "total":
            values = [scale[str(r)]["median"]["wall_seconds"] for r in rows]
        else:
            values = [scale[str(r)]["median"]["steps"].get(name, {}).get("seconds") for r in rows]
        width = 2.5 if name == "total" else 1.5
        times.plot(rows, _floats(values), marker="o", label=name, linewidth=width)
        if name != "total":
            rss = [
                scale[str(r)]["median"]["steps"].get(name, {}).get("peak_rss_bytes") for r in rows
            ]
            memory.plot(
                rows, _floats([v / MIB if v else None for v in rss]), marker="o", label=name
            )
    for axis, title, unit in (
        (times, "wall time per step (median)", "seconds"),
        (memory, "peak RSS per step (median)", "MiB"),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("rows")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    names, shares, labels = [], [], []
    for key, target in results["targets"].items():
        value = results[key]
        if value is None:
            continue
        names.append(key.replace("_", " "))
        shares.append(value / target["limit"])
        labels.append(f"{value:.3g} ({target['target']})")
    colours = ["tab:green" if s <= 1 else "tab:red" for s in shares]
    heads.barh(names, shares, color=colours)
    heads.axvline(1.0, color="black", linestyle="--", linewidth=1)
    for index, (share, label) in enumerate(zip(shares, labels, strict=True)):
        heads.text(max(share, 0) + 0.05, index, label, va="center", fontsize=8)
    heads.set_xlim(0, max([*shares, 1.0]) * 1.45)
    heads.set_xlabel("value / target limit (<= 1 meets the target)")
    heads.set_title("headlines")
    heads.invert_yaxis()
    info = results["machine"]
    figure.suptitle(
        f"make bench, {info['date']}: {info['cpu_count']} x {info['cpu_model']}, "
        f"{info['memory_gib']} GiB, Python {info['python']}"
    )
    figure.tight_layout()
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=110)
    finally:
        plt.close(figure)
