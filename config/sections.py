"""The config's sections other than ``data:`` (config/data.py) and the gate (config/gate.py).

Each section is a frozen pydantic model: unknown keys are errors, values are checked on load.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from config.catalogue import (
    EndpointInstance,
    ProcessingInstance,
    SklearnVersion,
    TrainingInstance,
    TransformInstance,
    XGBoostVersion,
)
from config.fields import Fraction, IsoDuration, NonEmpty, RoleArn, Section
from config.parameters import DATA_VERSION, INPUT_DATA_URI
from config.queue_url import check_queue_url
from tabular.contract import (
    ApprovalStatus,
    BatchStrategy,
    JobRetryType,
    SplitType,
    StepRetryType,
)
from tabular.names import (
    DEFAULT_BOOTSTRAP_ROUNDS,
    DEFAULT_PROBABILITY_THRESHOLD,
    DEFAULT_SMOKE_ROWS,
    DEFAULT_TRAIN_SHARDS,
)

JOB_RETRY_TYPES = tuple(kind.value for kind in JobRetryType)
STEP_RETRY_TYPES = tuple(kind.value for kind in StepRetryType)
APPROVAL_STATUSES = tuple(status.value for status in ApprovalStatus)
BATCH_STRATEGIES = tuple(strategy.value for strategy in BatchStrategy)
SPLIT_TYPES = (SplitType.LINE.value, SplitType.NONE.value)
"""The split types the serving code reads (and the local runtime runs)."""


class PipelineSection(Section):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")]
    description: str


class AwsSection(Section):
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    role_arn: RoleArn
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")]


class ImagesSection(Section):
    sklearn_version: SklearnVersion
    xgboost_version: XGBoostVersion
    python_version: Literal["py3"]


class JobSection(Section):
    instance_type: ProcessingInstance
    instance_count: Annotated[int, Field(ge=1, le=100)]
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)]
    max_runtime_seconds: Annotated[int, Field(ge=60, le=2419200)]


class TrainingJobSection(JobSection):
    instance_type: TrainingInstance


class TransformJobSection(JobSection):
    instance_type: TransformInstance


class JobsSection(Section):
    preprocess: JobSection
    data_quality: JobSection
    train: TrainingJobSection
    evaluate: JobSection
    transform: TransformJobSection


class Hyperparameters(Section):
    num_round: Annotated[int, Field(ge=1)]
    max_depth: Annotated[int, Field(ge=1, le=64)]
    eta: Annotated[float, Field(gt=0.0, le=1.0)]
    subsample: Annotated[float, Field(gt=0.0, le=1.0)]
    colsample_bytree: Annotated[float, Field(gt=0.0, le=1.0)]
    min_child_weight: Annotated[float, Field(ge=0.0)]
    reg_lambda: Annotated[float, Field(ge=0.0)]
    early_stopping_rounds: Annotated[int, Field(ge=1)]
    seed: int


class TrainingSection(Section):
    hyperparameters: Hyperparameters
    shards: Annotated[int, Field(ge=1, le=10000)] = DEFAULT_TRAIN_SHARDS
    """Files Preprocess writes the train split as; at most this many training instances."""
    keep_batches: bool = True
    """Train keeps its encoded batches while XGBoost builds its matrix (each row read once);
    false reads the files on each of XGBoost's passes: less memory per host, slower."""


Comparison = Literal["gte", "lte"]
"""The gate's comparison: the metric at least (gte) or at most (lte) the threshold."""


class EvaluationSection(Section):
    metric: str | None = None
    threshold: float | None = None
    comparison: Comparison | None = None
    probability_threshold: Fraction = DEFAULT_PROBABILITY_THRESHOLD
    bootstrap_rounds: Annotated[int, Field(ge=0, le=1000)] = DEFAULT_BOOTSTRAP_ROUNDS
    smoke_sample_rows: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_SMOKE_ROWS


class DataQualitySection(Section):
    skip_check: bool
    register_new_baseline: bool
    fail_on_violation: bool


class RegistrySection(Section):
    model_package_group: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")]
    approval_status: Literal[APPROVAL_STATUSES]  # type: ignore[valid-type]
    inference_instance_types: list[EndpointInstance]
    transform_instance_types: list[TransformInstance]


class ApprovalSection(Section):
    queue_url: Annotated[str, AfterValidator(check_queue_url)]
    local_policy: Literal["auto-approve", "auto-reject", "wait"]
    timeout_seconds: Annotated[int, Field(ge=1)]


class TransformSection(Section):
    max_payload_mb: Annotated[int, Field(ge=1, le=100)]
    strategy: Literal[BATCH_STRATEGIES]  # type: ignore[valid-type]
    split_type: Literal[SPLIT_TYPES]  # type: ignore[valid-type]


class CacheSection(Section):
    enabled: bool
    expire_after: IsoDuration


SCHEDULE_EXPRESSION = (
    r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)"
    r"|cron\(\S+ \S+ \S+ \S+ \S+ \S+\)"
    r"|at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\))$"
)


STATE_MACHINE_ARN = (
    r"^arn:aws[a-z-]*:states:[a-z]{2}(-[a-z]+)+-\d:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"
)


class ScheduleSection(Section):
    enabled: bool
    expression: Annotated[str, Field(pattern=SCHEDULE_EXPRESSION)]
    timezone: NonEmpty
    role_arn: RoleArn
    parameters: dict[str, str | int | float | bool]
    starter_arn: Annotated[str, Field(pattern=STATE_MACHINE_ARN)] | None = None

    @model_validator(mode="after")
    def _starter_passes_data_version_only(self) -> ScheduleSection:
        if self.starter_arn and self.parameters:
            raise ValueError(
                f"schedule.starter_arn starts runs through a state machine that passes only "
                f"{DATA_VERSION}, so schedule.parameters {sorted(self.parameters)} would be "
                "dropped; make them the pipeline's defaults, or remove starter_arn"
            )
        return self

    @model_validator(mode="after")
    def _no_pinned_data_version(self) -> ScheduleSection:
        if DATA_VERSION in self.parameters:
            raise ValueError(
                f"schedule.parameters must not set {DATA_VERSION}: each scheduled run "
                "passes its scheduled time there so Preprocess re-reads the input instead of "
                "reusing a cached run of the same URI; remove it"
            )
        uri = self.parameters.get(INPUT_DATA_URI)
        if uri is not None and not str(uri).startswith("s3://"):
            raise ValueError(
                f"schedule.parameters.{INPUT_DATA_URI} is {uri!r}, but scheduled runs "
                "execute on SageMaker, which reads from S3 only; give an s3:// URI or remove it"
            )
        return self


class SecuritySection(Section):
    enable_network_isolation: bool
    encrypt_inter_container_traffic: bool
    subnets: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]+$")]]
    security_group_ids: list[Annotated[str, Field(pattern=r"^sg-[0-9a-f]+$")]]
    volume_kms_key_id: NonEmpty | None
    output_kms_key_id: NonEmpty | None

    @model_validator(mode="after")
    def _vpc_complete(self) -> SecuritySection:
        if bool(self.subnets) != bool(self.security_group_ids):
            raise ValueError(
                "security.subnets and security.security_group_ids go together: a VPC config "
                "needs both (or neither)"
            )
        return self


class RetryRule(Section):
    exception_types: list[Literal[JOB_RETRY_TYPES + STEP_RETRY_TYPES]]  # type: ignore[valid-type]
    max_attempts: Annotated[int, Field(ge=1, le=20)]
    interval_seconds: Annotated[int, Field(ge=1)]
    backoff_rate: Annotated[float, Field(ge=1.0)]


class RetrySection(Section):
    job: RetryRule
    service: RetryRule

    @model_validator(mode="after")
    def _kinds_fit_their_rule(self) -> RetrySection:
        if any(t not in JOB_RETRY_TYPES for t in self.job.exception_types):
            raise ValueError("retry.job.exception_types takes SageMaker.* types only")
        if any(t not in STEP_RETRY_TYPES for t in self.service.exception_types):
            raise ValueError("retry.service.exception_types takes Step.* types only")
        return self
