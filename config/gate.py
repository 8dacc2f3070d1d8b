"""The gate: which metric of evaluation.json the CheckMetric condition compares, and how.

``evaluation.metric``, ``threshold`` and ``comparison`` may each be left out; they are resolved
per problem type: the metric from :data:`DEFAULT_METRIC`, the threshold from
:data:`DEFAULT_METRIC_THRESHOLD`, the comparison from the metric's direction. The metrics, their
ranges and directions are the ones Evaluate writes (tabular.names).
"""

from __future__ import annotations

from config.fields import Section
from config.sections import Comparison, EvaluationSection
from tabular.names import BINARY, METRIC_BY_NAME, METRICS, REGRESSION

DEFAULT_METRIC = {BINARY: "auc", REGRESSION: "r2"}
DEFAULT_METRIC_THRESHOLD = {"auc": 0.7, "r2": 0.2}
"""The gate's threshold where the config names none (other metrics need one)."""
GTE: Comparison = "gte"
LTE: Comparison = "lte"


class Gate(Section):
    """What the CheckMetric condition compares: evaluation.json's metric against a threshold."""

    metric: str
    threshold: float
    comparison: Comparison


def resolve_gate(problem_type: str, evaluation: EvaluationSection) -> Gate:
    """The gate with its defaults resolved; ValueError names what is wrong and the fix."""
    metric = evaluation.metric or DEFAULT_METRIC[problem_type]
    if metric not in METRICS[problem_type]:
        raise ValueError(
            f"evaluation.metric '{metric}' is not written by evaluate for problem_type "
            f"'{problem_type}'; choose one of {list(METRICS[problem_type])}"
        )
    bounds = METRIC_BY_NAME[metric]
    threshold = (
        evaluation.threshold
        if evaluation.threshold is not None
        else DEFAULT_METRIC_THRESHOLD.get(metric)
    )
    if threshold is None:
        raise ValueError(f"evaluation.threshold is required for metric '{metric}'")
    if not bounds.low <= threshold <= bounds.high:
        raise ValueError(
            f"evaluation.threshold {threshold} is outside the range of '{metric}' "
            f"[{bounds.low}, {bounds.high}]; pick a value inside it"
        )
    comparison = evaluation.comparison or (GTE if bounds.higher_is_better else LTE)
    return Gate(metric=metric, threshold=threshold, comparison=comparison)
