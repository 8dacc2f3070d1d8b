"""Approval: a human decision on the registered package, through an SQS callback."""

from __future__ import annotations

from sagemaker.core.workflow.functions import JsonGet
from sagemaker.mlops.workflow.callback_step import CallbackOutput, CallbackStep
from sagemaker.mlops.workflow.model_step import ModelStep

from steps.context import BuildContext
from steps.names import (
    APPROVAL,
    DECISION,
    METRIC_NAME,
    METRIC_THRESHOLD,
    METRIC_VALUE,
    MODEL_PACKAGE_ARN,
    REASON,
    REVIEWER,
)


def build_approval_step(ctx: BuildContext, register: ModelStep, measured: JsonGet) -> CallbackStep:
    return CallbackStep(
        name=APPROVAL,
        description=(
            "Send the package ARN and metrics to the approval queue and wait. Approving "
            "completes the step; rejecting fails it with the reviewer's reason."
        ),
        sqs_queue_url=ctx.cfg.approval.queue_url,
        inputs={
            MODEL_PACKAGE_ARN: register.properties.ModelPackageArn,
            METRIC_NAME: ctx.cfg.gate.metric,
            METRIC_VALUE: measured,
            METRIC_THRESHOLD: ctx.params.metric_threshold,
        },
        outputs=[CallbackOutput(output_name=name) for name in (DECISION, REVIEWER, REASON)],
    )
