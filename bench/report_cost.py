"""`python -m bench.report_cost`: what the evaluation report adds to an Evaluate job, per size.

For each problem type and test-split size it times, in this one process with the libraries
already imported (as inside the job, which imports them for its metrics anyway):

* metrics: the evaluation's own numbers (scikit-learn point metrics and the seeded bootstrap,
  50 rounds), what Evaluate computed before it wrote a report;
* report: the page and the PNG summary (evaluation.report.render_html, render_summary_png) from
  the same arrays, slices over two categorical features included.

Writes build/bench/report_cost.json; prints one line per case with report/metrics as a ratio.
Curves and scatter plots are downsampled, so the report's cost is meant to stay flat with rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench" / "report_cost.json"
SIZES = (100_000, 1_000_000)


def _case(problem_type: str, rows: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    if problem_type == "binary":
        labels = (signal + rng.normal(size=rows) > 0.5).astype("float64")
        scores = 1 / (1 + np.exp(-1.5 * signal))
    else:
        labels = 10 + 3 * signal + rng.normal(size=rows)
        scores = 10 + 3 * signal
    features = pd.DataFrame(
        {
            "plan": rng.choice([f"plan-{i}" for i in range(8)], rows),
            "region": rng.choice([f"region-{i}" for i in range(40)], rows),
        }
    )
    return {"labels": labels, "scores": scores, "features": features}


def _seconds(work: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(problem_type: str, rows: int, repeats: int) -> dict[str, Any]:
    from evaluation import report
    from scripts import evaluate
    from tabular import names

    case = _case(problem_type, rows)
    labels, scores = case["labels"], case["scores"]

    def metrics() -> dict[str, Any]:
        values = evaluate.point_metrics(problem_type, labels, scores, 0.5)
        deviations = evaluate.bootstrap_standard_deviations(problem_type, labels, scores, 0.5, 50)
        return evaluate.build_report(problem_type, values, deviations, rows)

    document = metrics()
    gate_metric = names.METRICS[problem_type][0]
    inputs = report.ReportInputs(
        problem_type=problem_type,
        metrics=tuple(
            report.MetricValue(name, entry[names.VALUE_KEY], entry[names.STANDARD_DEVIATION_KEY])
            for name, entry in document[names.REPORT_KEYS[problem_type]].items()
        ),
        rows=rows,
        labels=labels,
        scores=scores,
        gate=report.Gate(gate_metric, names.AT_LEAST, 0.7),
        features=case["features"],
        categorical_columns=("plan", "region"),
        importance={f"feature-{i}": float(100 - i) for i in range(30)},
        training_curve=report.TrainingCurve("auc", tuple(np.linspace(0.6, 0.8, 200)), 180),
    )

    def page() -> None:  # as the job's write_page: the summary shows charts of the page
        data = report.ChartData.of(inputs)
        charts = report.figures(inputs, data)
        report.render_html(inputs, data, charts)
        report.render_summary_png(inputs, charts)

    page()  # warm: matplotlib's first figure loads its fonts
    metrics_seconds = _seconds(metrics, repeats)
    report_seconds = _seconds(page, repeats)
    return {
        "problem_type": problem_type,
        "rows": rows,
        "metrics_seconds": round(metrics_seconds, 3),
        "report_seconds": round(report_seconds, 3),
        "report_over_metrics": round(report_seconds / metrics_seconds, 3),
        "page_bytes": len(report.render_html(inputs)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    results = []
    for rows in args.rows:
        for problem_type in ("binary", "regression"):
            result = measure(problem_type, rows, args.repeats)
            results.append(result)
            print(
                f"{problem_type:<10} {rows:>9} rows: metrics {result['metrics_seconds']:.2f}s, "
                f"report {result['report_seconds']:.2f}s ({result['report_over_metrics']:.2f}x), "
                f"page {result['page_bytes'] / 1024:.0f} KiB",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cases": results}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
