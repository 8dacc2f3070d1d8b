"""CheckMetric: the configured metric of evaluation.json against the threshold; else Fail."""

from __future__ import annotations

from sagemaker.core.workflow.conditions import (
    ConditionGreaterThanOrEqualTo,
    ConditionLessThanOrEqualTo,
)
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.steps import ProcessingStep, Step

from config.gate import GTE, LTE
from config.parameters import METRIC_THRESHOLD
from steps.context import BuildContext
from steps.names import CHECK_METRIC, METRIC_BELOW_THRESHOLD
from tabular.names import metric_json_path

COMPARISONS = {GTE: ConditionGreaterThanOrEqualTo, LTE: ConditionLessThanOrEqualTo}
COMPARISON_WORDS = {GTE: "at least", LTE: "at most"}


def metric_value(ctx: BuildContext, evaluate: ProcessingStep, report: PropertyFile) -> JsonGet:
    """The gated metric as evaluate wrote it (a JsonGet on the evaluation report)."""
    path = metric_json_path(ctx.cfg.data.problem_type, ctx.cfg.gate.metric)
    return JsonGet(step_name=evaluate.name, property_file=report, json_path=path)


def build_check_metric_step(
    ctx: BuildContext,
    evaluate: ProcessingStep,
    report: PropertyFile,
    if_steps: list[Step],
) -> ConditionStep:
    gate = ctx.cfg.gate
    measured = metric_value(ctx, evaluate, report)
    fail = FailStep(
        name=METRIC_BELOW_THRESHOLD,
        description="The model did not reach the metric threshold; nothing was registered.",
        error_message=Join(
            on=" ",
            values=[
                f"{gate.metric} on the test split was",
                measured,
                f"but must be {COMPARISON_WORDS[gate.comparison]}",
                ctx.params.metric_threshold,
                f"(parameter {METRIC_THRESHOLD}); the model was not registered.",
            ],
        ),
    )
    return ConditionStep(
        name=CHECK_METRIC,
        description=f"{gate.metric} {gate.comparison} {METRIC_THRESHOLD}, else fail.",
        conditions=[COMPARISONS[gate.comparison](left=measured, right=ctx.params.metric_threshold)],
        if_steps=if_steps,
        else_steps=[fail],
    )
