"""What every builder receives: config, session, pipeline parameters and the code store."""

from __future__ import annotations

from dataclasses import dataclass

from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.parameters import (
    Parameter,
    ParameterBoolean,
    ParameterFloat,
    ParameterInteger,
    ParameterString,
)
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.mlops.workflow.retry import (
    RetryPolicy,
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)
from sagemaker.mlops.workflow.steps import CacheConfig

from config import Config, JobSection
from config.parameters import (
    DATA_QUALITY_INSTANCE_TYPE,
    DATA_VERSION,
    EVALUATE_INSTANCE_TYPE,
    INPUT_DATA_URI,
    METRIC_THRESHOLD,
    MODEL_APPROVAL_STATUS,
    PREPROCESS_INSTANCE_COUNT,
    PREPROCESS_INSTANCE_TYPE,
    REGISTER_NEW_BASELINE,
    SCORING_DATA_URI,
    SKIP_DATA_QUALITY_CHECK,
    TRAIN_INSTANCE_COUNT,
    TRAIN_INSTANCE_TYPE,
    TRANSFORM_INSTANCE_TYPE,
)
from steps.code import CodeStore
from tabular.contract import ApprovalStatus
from tabular.names import DEFAULT_DATA_VERSION


@dataclass(frozen=True)
class Parameters:
    """The pipeline parameters: everything a run may change without a new definition."""

    input_data_uri: ParameterString
    data_version: ParameterString
    preprocess_instance_type: ParameterString
    preprocess_instance_count: ParameterInteger
    data_quality_instance_type: ParameterString
    train_instance_type: ParameterString
    train_instance_count: ParameterInteger
    evaluate_instance_type: ParameterString
    transform_instance_type: ParameterString
    metric_threshold: ParameterFloat
    model_approval_status: ParameterString
    skip_data_quality_check: ParameterBoolean
    register_new_baseline: ParameterBoolean
    scoring_data_uri: ParameterString | None = None
    """Only with data.scoring_uri: the data BatchScore scores, read and checked by Preprocess."""

    @classmethod
    def from_config(cls, cfg: Config) -> Parameters:
        jobs = cfg.jobs
        return cls(
            input_data_uri=ParameterString(INPUT_DATA_URI, cfg.data.input_uri),
            data_version=ParameterString(DATA_VERSION, DEFAULT_DATA_VERSION),
            preprocess_instance_type=ParameterString(
                PREPROCESS_INSTANCE_TYPE, jobs.preprocess.instance_type
            ),
            preprocess_instance_count=ParameterInteger(
                PREPROCESS_INSTANCE_COUNT, jobs.preprocess.instance_count
            ),
            data_quality_instance_type=ParameterString(
                DATA_QUALITY_INSTANCE_TYPE, jobs.data_quality.instance_type
            ),
            train_instance_type=ParameterString(TRAIN_INSTANCE_TYPE, jobs.train.instance_type),
            train_instance_count=ParameterInteger(TRAIN_INSTANCE_COUNT, jobs.train.instance_count),
            evaluate_instance_type=ParameterString(
                EVALUATE_INSTANCE_TYPE, jobs.evaluate.instance_type
            ),
            transform_instance_type=ParameterString(
                TRANSFORM_INSTANCE_TYPE, jobs.transform.instance_type
            ),
            metric_threshold=ParameterFloat(METRIC_THRESHOLD, cfg.gate.threshold),
            model_approval_status=ParameterString(
                MODEL_APPROVAL_STATUS,
                cfg.registry.approval_status,
                enum_values=[status.value for status in ApprovalStatus],
            ),
            skip_data_quality_check=ParameterBoolean(
                name=SKIP_DATA_QUALITY_CHECK, default_value=cfg.data_quality.skip_check
            ),
            register_new_baseline=ParameterBoolean(
                name=REGISTER_NEW_BASELINE, default_value=cfg.data_quality.register_new_baseline
            ),
            scoring_data_uri=(
                ParameterString(SCORING_DATA_URI, cfg.data.scoring_uri)
                if cfg.data.scoring_uri
                else None
            ),
        )

    def all(self) -> list[Parameter]:
        """In declaration order, as the pipeline lists them (optional ones when configured)."""
        found = (getattr(self, name) for name in self.__dataclass_fields__)
        return [parameter for parameter in found if parameter is not None]


@dataclass(frozen=True)
class BuildContext:
    """Shared by every builder; builders read from it and never change it."""

    cfg: Config
    session: PipelineSession
    params: Parameters
    code: CodeStore

    def output_uri(self, step_name: str, output_name: str) -> Join:
        """Where a step writes an output: one prefix per execution, step and output.

        Output locations are not part of SageMaker's cache key, so an execution-scoped path keeps
        runs apart without costing cache hits.
        """
        return Join(
            on="/",
            values=[
                f"s3://{self.cfg.aws.bucket}/{self.cfg.aws.prefix}/runs",
                ExecutionVariables.PIPELINE_EXECUTION_ID,
                step_name,
                output_name,
            ],
        )

    @property
    def cache_config(self) -> CacheConfig:
        return CacheConfig(
            enable_caching=self.cfg.cache.enabled, expire_after=self.cfg.cache.expire_after
        )

    def job(self, step_key: str) -> JobSection:
        section: JobSection = getattr(self.cfg.jobs, step_key)
        return section

    def service_retry_policies(self) -> list[RetryPolicy]:
        """Retries on the Pipelines service's own faults and throttling (any step)."""
        rule = self.cfg.retry.service
        return [
            StepRetryPolicy(
                # The SDK's enums return their first member unless the value is passed by keyword.
                exception_types=[StepExceptionTypeEnum(value=t) for t in rule.exception_types],
                max_attempts=rule.max_attempts,
                interval_seconds=rule.interval_seconds,
                backoff_rate=rule.backoff_rate,
            )
        ]

    def job_retry_policies(self) -> list[RetryPolicy]:
        """Service retries plus retries of the SageMaker job (capacity, internal errors)."""
        rule = self.cfg.retry.job
        return [
            *self.service_retry_policies(),
            SageMakerJobStepRetryPolicy(
                exception_types=[
                    SageMakerJobExceptionTypeEnum(value=t) for t in rule.exception_types
                ],
                max_attempts=rule.max_attempts,
                interval_seconds=rule.interval_seconds,
                backoff_rate=rule.backoff_rate,
            ),
        ]
