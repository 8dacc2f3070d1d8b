"""The `deploy:` section of the config: one entry per stage, refused where SageMaker would refuse.

`deploy.defaults` holds every knob with its published default; each `deploy.stages.<name>` is
merged over it, so a stage names only what differs (its endpoint name, at least). Validation
refuses, with SageMaker's documented reason, every combination that SageMaker refuses or
silently degrades (deployment guardrails, Serverless and Asynchronous Inference, Application
Auto Scaling, CloudWatch alarms, shadow tests); the README lists them. The rules across fields
are plain functions in steps/deploy_rules.py, so that the deploy plan applies the very same
rules to the live fleet when autoscaling has changed its size.

Enumerations (instance types, statistics) come from botocore's service models, like the job
instance types in config/catalogue.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, partial
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from config.catalogue import service_model
from config.deploy_rules import DEFAULT_SCALING_METRIC, stage_problems
from config.fields import merge

# Endpoint names are at most 63 characters; deploy derives the names of the configs, models and
# job definitions (63 characters at most) as <endpoint>-v<version>-<8-hex hash>.
ENDPOINT_NAME_MAX = 40
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
STAGE_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
SNS_TOPIC_ARN = r"^arn:aws[a-z\-]*:sns:[a-z0-9\-]*:[0-9]{12}:[a-zA-Z0-9_.-]+$"
MAX_ROLLBACK_ALARMS = 10  # AutoRollbackConfig.Alarms: 1-10 items
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
ONE_HOUR = 3600
ONE_DAY = 86400
SEVEN_DAYS = 7 * ONE_DAY

EndpointType = Literal["realtime", "serverless", "async"]
RolloutMode = Literal["all_at_once", "canary", "linear", "rolling"]
SizeUnit = Literal["percent", "instances"]
ScalingMetric = Literal[
    "invocations_per_instance", "backlog_per_instance", "provisioned_concurrency_utilization"
]
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")


@cache
def service_enum(service: str, shape: str) -> frozenset[str]:
    """The values botocore's model of `service` allows for `shape`."""
    return frozenset(service_model(service).shape_for(shape).enum)


@cache
def member_enum(service: str, shape: str, member: str) -> frozenset[str]:
    """The values of `shape.member` (for enums defined inline on a member)."""
    return frozenset(service_model(service).shape_for(shape).members[member].enum)


def _one_of(allowed: Callable[[], frozenset[str]], what: str) -> AfterValidator:
    """A check against ``allowed()``, read when a value is checked: the service models are
    large documents, loaded only by a config that sets such a value (not at import)."""

    def check(value: str) -> str:
        if value not in allowed():
            family = value.rsplit(".", 1)[0]
            near = sorted(v for v in allowed() if v.startswith(family))[:6] or sorted(allowed())[:6]
            raise ValueError(f"{value!r} is not {what}; e.g. {', '.join(near)}")
        return value

    return AfterValidator(check)


EndpointInstance = Annotated[
    str,
    _one_of(
        partial(service_enum, "sagemaker", "ProductionVariantInstanceType"),
        "an instance type SageMaker offers for endpoints",
    ),
]
ShadowInstance = Annotated[
    str,
    _one_of(
        partial(member_enum, "sagemaker", "RealTimeInferenceConfig", "InstanceType"),
        "an instance type SageMaker offers for shadow variants",
    ),
]
MonitoringInstance = Annotated[
    str,
    _one_of(
        partial(service_enum, "sagemaker", "ProcessingInstanceType"),
        "an instance type SageMaker offers for monitoring jobs",
    ),
]
ComparisonOperator = Annotated[
    str,
    _one_of(
        partial(service_enum, "cloudwatch", "ComparisonOperator"),
        "a CloudWatch comparison operator",
    ),
]
CaptureMode = Literal["Input", "Output"]


class Section(BaseModel):
    """A part of the deploy section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerlessSection(Section):
    memory_mb: int
    max_concurrency: Annotated[int, Field(ge=1, le=200)]
    provisioned_concurrency: Annotated[int, Field(ge=1, le=200)] | None = None

    @model_validator(mode="after")
    def _fits(self) -> ServerlessSection:
        if self.memory_mb not in SERVERLESS_MEMORY_MB:
            raise ValueError(
                f"serverless.memory_mb {self.memory_mb} is not one of SageMaker's sizes "
                f"{list(SERVERLESS_MEMORY_MB)} (1 GB steps, ProductionVariantServerlessConfig)"
            )
        provisioned = self.provisioned_concurrency
        if provisioned is not None and provisioned > self.max_concurrency:
            raise ValueError(
                f"serverless.provisioned_concurrency {provisioned} is above max_concurrency "
                f"{self.max_concurrency}; SageMaker refuses it (ProvisionedConcurrency must be "
                "less than or equal to MaxConcurrency): lower it or raise max_concurrency"
            )
        return self


class AsyncSection(Section):
    output_path: Annotated[str, Field(pattern=S3_URI)] | None = None
    failure_path: Annotated[str, Field(pattern=S3_URI)] | None = None
    success_topic: Annotated[str, Field(pattern=SNS_TOPIC_ARN)] | None = None
    error_topic: Annotated[str, Field(pattern=SNS_TOPIC_ARN)] | None = None
    include_response_in: list[Literal["SUCCESS_NOTIFICATION_TOPIC", "ERROR_NOTIFICATION_TOPIC"]]
    max_concurrent_invocations: Annotated[int, Field(ge=1, le=1000)] | None = None

    @model_validator(mode="after")
    def _topics(self) -> AsyncSection:
        topics = {
            "SUCCESS_NOTIFICATION_TOPIC": self.success_topic,
            "ERROR_NOTIFICATION_TOPIC": self.error_topic,
        }
        unset = [t for t in self.include_response_in if topics[t] is None]
        if unset:
            raise ValueError(
                f"async_inference.include_response_in names {unset}, but that topic is not set "
                "(success_topic / error_topic); set it or remove the entry"
            )
        return self


class DataCaptureSection(Section):
    enabled: bool
    sampling_percent: Annotated[int, Field(ge=0, le=100)]
    destination: Annotated[str, Field(pattern=S3_URI)] | None = None
    capture: Annotated[list[CaptureMode], Field(min_length=1, max_length=2)]

    @model_validator(mode="after")
    def _unique(self) -> DataCaptureSection:
        if len(set(self.capture)) != len(self.capture):
            raise ValueError("data_capture.capture names a mode twice; list Input and/or Output")
        if self.enabled and self.sampling_percent == 0:
            raise ValueError(
                "data_capture.sampling_percent is 0 with capture enabled: nothing would be "
                "captured (and monitoring would have no data); raise it or disable capture"
            )
        return self


class AutoscalingSection(Section):
    enabled: bool
    min_capacity: Annotated[int, Field(ge=0)]
    max_capacity: Annotated[int, Field(ge=1)]
    metric: ScalingMetric | None = None
    target_value: Annotated[float, Field(gt=0)]
    scale_in_cooldown_seconds: Annotated[int, Field(ge=0, le=86400)]
    scale_out_cooldown_seconds: Annotated[int, Field(ge=0, le=86400)]
    disable_scale_in: bool = False


class RolloutSection(Section):
    mode: RolloutMode
    size: Annotated[int, Field(ge=1)]
    unit: SizeUnit
    wait_seconds: Annotated[int, Field(ge=0, le=3600)]
    bake_seconds: Annotated[int, Field(ge=0, le=3600)]
    max_execution_seconds: Annotated[int, Field(ge=600, le=28800)] | None = None
    rollback_size: Annotated[int, Field(ge=1)] | None = None
    rollback_unit: SizeUnit = "percent"


class AlarmSection(Section):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
    metric: Annotated[str, Field(min_length=1, max_length=255)]
    namespace: Annotated[str, Field(min_length=1, max_length=255)] = "AWS/SageMaker"
    statistic: str
    period_seconds: Annotated[int, Field(ge=60)]
    evaluation_periods: Annotated[int, Field(ge=1)]
    datapoints_to_alarm: Annotated[int, Field(ge=1)] | None = None
    threshold: float
    comparison: ComparisonOperator
    treat_missing_data: Literal["breaching", "notBreaching", "ignore", "missing"] = "notBreaching"

    @model_validator(mode="after")
    def _cloudwatch_limits(self) -> AlarmSection:
        where = f"alarm {self.name!r}"
        if self.statistic not in STATISTICS and not PERCENTILE.match(self.statistic):
            raise ValueError(
                f"{where}: statistic {self.statistic!r} is neither one of {list(STATISTICS)} "
                "nor a percentile such as p99 or p99.9"
            )
        if self.period_seconds % 60:
            raise ValueError(
                f"{where}: period_seconds {self.period_seconds} is not a multiple of 60; "
                "SageMaker publishes endpoint metrics every minute, so CloudWatch accepts 60, "
                "120, ... (a shorter period has no data)"
            )
        window = self.period_seconds * self.evaluation_periods
        limit = ONE_DAY if self.period_seconds < ONE_HOUR else SEVEN_DAYS
        if window > limit:
            raise ValueError(
                f"{where}: evaluation_periods x period_seconds = {window} s exceeds "
                f"CloudWatch's {limit} s limit for this period (PutMetricAlarm)"
            )
        if (self.datapoints_to_alarm or 1) > self.evaluation_periods:
            raise ValueError(
                f"{where}: datapoints_to_alarm {self.datapoints_to_alarm} is above "
                f"evaluation_periods {self.evaluation_periods}; CloudWatch refuses it"
            )
        return self

    @property
    def seconds_to_trip(self) -> int:
        """The shortest time in which the alarm can reach ALARM: its breaching datapoints."""
        return self.period_seconds * (self.datapoints_to_alarm or self.evaluation_periods)


MONITOR_SCHEDULES = (
    (re.compile(r"^cron\(0 \* \? \* \* \*\)$"), ONE_HOUR),
    (re.compile(r"^cron\(0 (\d|1\d|2[0-3])/(\d+) \? \* \* \*\)$"), None),
    (re.compile(r"^cron\(0 (\d|1\d|2[0-3]) \? \* \* \*\)$"), ONE_DAY),
)


def monitoring_interval(expression: str) -> int | None:
    """Seconds between monitoring runs for the cron forms Model Monitor accepts, else None."""
    for pattern, interval in MONITOR_SCHEDULES:
        match = pattern.match(expression)
        if match:
            return interval if interval is not None else int(match.group(2)) * ONE_HOUR
    return None


class MonitoringSection(Section):
    enabled: bool
    schedule: str
    instance_type: MonitoringInstance
    instance_count: Annotated[int, Field(ge=1, le=100)]
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)]
    max_runtime_seconds: Annotated[int, Field(ge=1, le=86400)]

    @model_validator(mode="after")
    def _schedule(self) -> MonitoringSection:
        interval = monitoring_interval(self.schedule)
        if interval is None:
            raise ValueError(
                f"monitoring.schedule {self.schedule!r} is not a schedule Model Monitor "
                "accepts: cron(0 * ? * * *) hourly, cron(0 H/N ? * * *) every N hours, or "
                "cron(0 H ? * * *) daily"
            )
        if self.max_runtime_seconds > min(interval, ONE_HOUR):
            raise ValueError(
                f"monitoring.max_runtime_seconds {self.max_runtime_seconds} is above "
                f"{min(interval, ONE_HOUR)}: Model Monitor refuses a job that may run past "
                "the hour it monitors (and past the next scheduled run)"
            )
        return self


class ShadowSection(Section):
    enabled: bool
    duration_days: Annotated[int, Field(ge=1, le=30)]
    sampling_percent: Annotated[int, Field(ge=1, le=100)]
    instance_type: ShadowInstance
    instance_count: Annotated[int, Field(ge=1)]


class SmokeSection(Section):
    enabled: bool
    rows: Annotated[int, Field(ge=1, le=1000)]
    relative_tolerance: Annotated[float, Field(ge=0)]
    absolute_tolerance: Annotated[float, Field(ge=0)]
    timeout_seconds: Annotated[int, Field(ge=1, le=3600)]


class LoadTestSection(Section):
    """`make load STAGE=...`: a bounded run of real requests; it stops at `requests` or at
    `max_seconds`, whichever comes first, and fails above the error rate or the p99 latency."""

    requests: Annotated[int, Field(ge=1, le=100000)]
    concurrency: Annotated[int, Field(ge=1, le=64)]
    rows_per_request: Annotated[int, Field(ge=1, le=1000)]
    max_seconds: Annotated[int, Field(ge=1, le=3600)]
    max_error_rate: Annotated[float, Field(ge=0, le=1)]
    max_p99_ms: Annotated[float, Field(gt=0)] | None = None


TagText = Annotated[str, Field(pattern=r"^[\w\s.:/=+\-@]*$", max_length=256)]


class StageSection(Section):
    """One stage: where and how an approved package is served."""

    endpoint_name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=ENDPOINT_NAME_MAX)]
    endpoint_type: EndpointType
    variant_name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
    instance_type: EndpointInstance
    instance_count: Annotated[int, Field(ge=1, le=1000)]
    serverless: ServerlessSection
    async_inference: AsyncSection
    data_capture: DataCaptureSection
    autoscaling: AutoscalingSection
    rollout: RolloutSection
    alarms: Annotated[list[AlarmSection], Field(max_length=MAX_ROLLBACK_ALARMS)]
    monitoring: MonitoringSection
    shadow: ShadowSection
    smoke: SmokeSection
    load_test: LoadTestSection
    wait_timeout_seconds: Annotated[int, Field(ge=60, le=86400)]
    poll_seconds: Annotated[float, Field(gt=0, le=300)]
    tags: dict[Annotated[str, Field(pattern=r"^[\w.:/=+\-@]{1,128}$")], TagText]

    @model_validator(mode="after")
    def _supported(self) -> StageSection:
        problems = stage_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def fleet_size(self) -> int | None:
        """Instances of a fleet as configured (None: serverless has no instances)."""
        return None if self.endpoint_type == "serverless" else self.instance_count

    @property
    def scaling_metric(self) -> ScalingMetric:
        return self.autoscaling.metric or cast(
            ScalingMetric, DEFAULT_SCALING_METRIC[self.endpoint_type]
        )


class DeploySection(Section):
    """`deploy:`: per-stage endpoints; `defaults` is merged under every stage."""

    defaults: dict[str, Any]
    stages: dict[Annotated[str, Field(pattern=STAGE_PATTERN)], StageSection]

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        defaults = raw.get("defaults") or {}
        stages = raw.get("stages")
        if not isinstance(defaults, dict) or not isinstance(stages, dict):
            return raw
        merged = {
            name: merge(defaults, stage) if isinstance(stage, dict) else stage
            for name, stage in stages.items()
        }
        return {**raw, "stages": merged}

    @model_validator(mode="after")
    def _unique_endpoints(self) -> DeploySection:
        seen: dict[str, str] = {}
        for name, stage in self.stages.items():
            other = seen.setdefault(stage.endpoint_name, name)
            if other != name:
                raise ValueError(
                    f"stages {other!r} and {name!r} both deploy to endpoint "
                    f"{stage.endpoint_name!r}; give each stage its own endpoint_name"
                )
        return self

    def stage(self, name: str) -> StageSection:
        """The stage called `name`; KeyError names the stages that exist."""
        try:
            return self.stages[name]
        except KeyError:
            raise KeyError(
                f"no stage {name!r} in deploy.stages; the config defines "
                f"{sorted(self.stages) or 'none'}"
            ) from None
