"""A sample of the evaluation report's inputs, shared by its unit and browser tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation import report


def sample_inputs(problem_type: str, gate: report.Gate, rows: int = 400) -> report.ReportInputs:
    rng = np.random.default_rng(3)
    if problem_type == "binary":
        labels = (rng.random(rows) < 0.4).astype(float)
        scores = np.clip(0.5 * labels + 0.5 * rng.random(rows), 0, 1)
        metrics = (report.MetricValue("auc", 0.83, 0.02), report.MetricValue("f1", 0.6, 0.03))
    else:
        labels = rng.normal(10, 3, rows)
        scores = labels + rng.normal(0, 1, rows)
        metrics = (report.MetricValue("rmse", 1.01, 0.04), report.MetricValue("r2", 0.9, 0.01))
    features = pd.DataFrame({"plan": rng.choice(["basic", "pro", "max"], rows)})
    statistics = {"dataset": {"item_count": rows}, "features": []}
    return report.ReportInputs(
        problem_type=problem_type, metrics=metrics, rows=rows, labels=labels, scores=scores,
        gate=gate, features=features, categorical_columns=("plan",),
        importance={"plan_pro": 5.0, "tenure": 9.0},
        training_curve=report.TrainingCurve("auc", (0.7, 0.75, 0.74), 1),
        data_quality=report.DataQuality(
            statistics, None, [{"feature_name": "plan", "constraint_check_type": "data_type_check"}]
        ),
    )  # fmt: skip
