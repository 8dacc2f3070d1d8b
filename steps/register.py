"""Register: a model package version (pending approval) with its metrics and drift baselines."""

from __future__ import annotations

from sagemaker.core.drift_check_baselines import DriftCheckBaselines
from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.workflow.functions import Join
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.quality_check_step import QualityCheckStep
from sagemaker.mlops.workflow.steps import TrainingStep
from sagemaker.serve.model_builder import ModelBuilder

from steps.containers import XGBOOST, image_uri
from steps.context import BuildContext
from steps.names import REGISTER
from steps.security import job_networking
from tabular.contract import (
    CSV,
    JSON,
    SERVING_LOG_LEVEL,
    SERVING_PROGRAM,
    SERVING_REGION,
    SERVING_SUBMIT_DIRECTORY,
)
from tabular.names import SERVING_ENV, SERVING_SCRIPT, SMOKE_SAMPLE_PROPERTY

LOG_LEVEL = "20"


def serving_model(ctx: BuildContext, train: TrainingStep) -> ModelBuilder:
    """The XGBoost serving container running scripts/inference.py on the trained artifact."""
    return ModelBuilder(
        image_uri=image_uri(ctx, XGBOOST, "inference"),
        s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
        role_arn=ctx.cfg.aws.role_arn,
        env_vars={
            SERVING_PROGRAM: SERVING_SCRIPT,
            SERVING_SUBMIT_DIRECTORY: ctx.code.sourcedir(SERVING_SCRIPT),
            SERVING_REGION: ctx.cfg.aws.region,
            SERVING_LOG_LEVEL: LOG_LEVEL,
            **SERVING_ENV,
        },
        sagemaker_session=ctx.session,
        network=job_networking(ctx.cfg.security),
        # The code travels as SAGEMAKER_SUBMIT_DIRECTORY above; with the SDK's default
        # dependency detection it would also upload code while the definition is built.
        dependencies=None,
    )


def build_register_step(
    ctx: BuildContext,
    train: TrainingStep,
    data_quality: QualityCheckStep,
    report_uri: Join,
    smoke_sample_uri: Join,
) -> ModelStep:
    quality = data_quality.properties
    step_args = serving_model(ctx, train).register(
        model_package_group_name=ctx.cfg.registry.model_package_group,
        content_types=[CSV],
        response_types=[CSV],
        inference_instances=list(ctx.cfg.registry.inference_instance_types),
        transform_instances=list(ctx.cfg.registry.transform_instance_types),
        approval_status=ctx.params.model_approval_status,
        # Where deploy finds test records and the predictions made for them (its smoke test).
        customer_metadata_properties={SMOKE_SAMPLE_PROPERTY: smoke_sample_uri},
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(content_type=JSON, s3_uri=report_uri),
            model_data_statistics=MetricsSource(
                content_type=JSON, s3_uri=quality.CalculatedBaselineStatistics
            ),
            model_data_constraints=MetricsSource(
                content_type=JSON, s3_uri=quality.CalculatedBaselineConstraints
            ),
        ),
        drift_check_baselines=DriftCheckBaselines(
            model_data_statistics=MetricsSource(
                content_type=JSON, s3_uri=quality.BaselineUsedForDriftCheckStatistics
            ),
            model_data_constraints=MetricsSource(
                content_type=JSON, s3_uri=quality.BaselineUsedForDriftCheckConstraints
            ),
        ),
    )
    return ModelStep(
        name=REGISTER, step_args=step_args, retry_policies=ctx.service_retry_policies()
    )
