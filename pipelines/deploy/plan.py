"""The rollout plan and the alarm definitions of a stage: plain data, no AWS.

`deploy` turns them into SageMaker's DeploymentConfig and CloudWatch alarms (pipelines/deploy/
requests.py); a local router can carry out the same steps and evaluate the same alarms on its own
metrics (`RolloutPlan.scaled` shortens the waits for a rehearsal; `AlarmDefinition.state`
evaluates datapoints the way CloudWatch does). The step arithmetic is the config's
(steps/deploy_rules.py), so the plan and the validation cannot disagree.

Traffic on the new fleet follows its active capacity: a canary of 1 of 4 instances takes 25 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from config.deploy import AlarmSection, RolloutSection, StageSection
from config.deploy_rules import final_bake, step_bakes, step_count, step_instances

ALL_AT_ONCE = "all_at_once"
OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
SAGEMAKER_NAMESPACE = "AWS/SageMaker"
# Metrics SageMaker publishes per endpoint config while a deployment runs: an alarm on them with
# the new config's EndpointConfigName watches the new fleet only (Deployment guardrails,
# Auto-Rollback Configuration and Monitoring).
FLEET_METRICS = frozenset(
    {
        "Invocations",
        "Invocation4XXErrors",
        "Invocation5XXErrors",
        "InvocationModelErrors",
        "ModelLatency",
        "OverheadLatency",
    }
)
# Asynchronous-inference queue metrics exist per endpoint only.
ENDPOINT_METRICS = frozenset(
    {"ApproximateBacklogSize", "ApproximateBacklogSizePerInstance",
     "ApproximateAgeOfOldestRequest", "HasBacklogWithoutCapacity"}
)  # fmt: skip
ENDPOINT, VARIANT, CONFIG = "EndpointName", "VariantName", "EndpointConfigName"
COMPARISONS = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}


@dataclass(frozen=True)
class RolloutStep:
    """One traffic shift: afterwards `traffic_percent` of requests reach the new fleet."""

    number: int
    traffic_percent: float
    new_instances: int | None  # instances of the new fleet serving (None: serverless)
    bake_seconds: int  # alarms watched this long before the next step (0: none)


@dataclass(frozen=True)
class RolloutPlan:
    """How traffic moves from the old fleet to the new one, and for how long alarms are watched.

    After the last step the new fleet bakes `final_bake_seconds` more (blue/green) before the
    old fleet is terminated; an alarm in ALARM at any time before then sends all traffic back.
    """

    mode: str
    fleet_size: int | None
    steps: tuple[RolloutStep, ...]
    final_bake_seconds: int
    max_execution_seconds: int | None
    rollback_batch_instances: int | None = None  # rolling: batch size when rolling back

    @classmethod
    def for_stage(cls, stage: StageSection, fleet: int | None = None) -> RolloutPlan:
        """The stage's rollout for a fleet of `fleet` instances (default: instance_count)."""
        size = stage.fleet_size if fleet is None else fleet
        return cls.from_rollout(stage.rollout, size)

    @classmethod
    def from_rollout(cls, rollout: RolloutSection, fleet: int | None) -> RolloutPlan:
        bakes = step_bakes(rollout, fleet)
        count = step_count(rollout, fleet)
        steps = []
        for number, bake in enumerate(bakes, start=1):
            if fleet is None:
                instances, share = None, 100.0
            elif count == 1:
                instances, share = fleet, 100.0
            else:
                per_step = step_instances(rollout.size, rollout.unit, fleet)
                instances = fleet if number == count else min(fleet, number * per_step)
                share = round(100.0 * instances / fleet, 2)
            steps.append(RolloutStep(number, share, instances, bake))
        rollback = None
        if rollout.mode == "rolling" and rollout.rollback_size is not None and fleet:
            rollback = step_instances(rollout.rollback_size, rollout.rollback_unit, fleet)
        return cls(
            mode=rollout.mode,
            fleet_size=fleet,
            steps=tuple(steps),
            final_bake_seconds=final_bake(rollout),
            max_execution_seconds=rollout.max_execution_seconds,
            rollback_batch_instances=rollback,
        )

    @classmethod
    def immediate(cls, fleet: int | None) -> RolloutPlan:
        """All traffic at once, no baking: how a rollback restores a known package."""
        return cls(ALL_AT_ONCE, fleet, (RolloutStep(1, 100.0, fleet, 0),), 0, None)

    @property
    def total_wait_seconds(self) -> int:
        return sum(step.bake_seconds for step in self.steps) + self.final_bake_seconds

    @property
    def guarded(self) -> bool:
        """Whether SageMaker bakes (and so watches alarms) at any point of this rollout."""
        return self.total_wait_seconds > 0

    def timeline(self) -> list[tuple[int, RolloutStep]]:
        """Each step with the second (after traffic starts to move) at which it happens."""
        at, found = 0, []
        for step in self.steps:
            found.append((at, step))
            at += step.bake_seconds
        return found

    def scaled(self, factor: float) -> RolloutPlan:
        """The same plan with every wait multiplied by `factor` (a local rehearsal)."""
        return replace(
            self,
            steps=tuple(
                replace(s, bake_seconds=math.ceil(s.bake_seconds * factor)) for s in self.steps
            ),
            final_bake_seconds=math.ceil(self.final_bake_seconds * factor),
        )


@dataclass(frozen=True)
class AlarmDefinition:
    """A rollback alarm: a metric of the endpoint, a statistic per period, a threshold."""

    name: str
    metric: str
    namespace: str
    statistic: str  # SampleCount, Average, Sum, Minimum, Maximum or a percentile (p99)
    period_seconds: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing_data: str

    @classmethod
    def from_section(cls, section: AlarmSection) -> AlarmDefinition:
        return cls(
            name=section.name,
            metric=section.metric,
            namespace=section.namespace,
            statistic=section.statistic,
            period_seconds=section.period_seconds,
            evaluation_periods=section.evaluation_periods,
            datapoints_to_alarm=section.datapoints_to_alarm or section.evaluation_periods,
            threshold=section.threshold,
            comparison=section.comparison,
            treat_missing_data=section.treat_missing_data,
        )

    @property
    def percentile(self) -> float | None:
        """The percentile of an extended statistic (p99 -> 99.0), else None."""
        return float(self.statistic[1:]) if self.statistic.startswith("p") else None

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimensions the metric has, the new fleet's config among them where it exists."""
        if self.namespace == SAGEMAKER_NAMESPACE and self.metric in FLEET_METRICS:
            return (ENDPOINT, VARIANT, CONFIG)
        if self.metric in ENDPOINT_METRICS:
            return (ENDPOINT,)
        return (ENDPOINT, VARIANT)

    @property
    def new_fleet_only(self) -> bool:
        return CONFIG in self.dimensions

    def breaches(self, value: float) -> bool:
        return bool(COMPARISONS[self.comparison](value, self.threshold))

    def statistic_of(self, samples: Sequence[float]) -> float | None:
        """One period's statistic from the raw samples of that period (None: no data)."""
        if not samples:
            return None
        percentile = self.percentile
        if percentile is not None:  # nearest rank, as CloudWatch reports raw samples
            ordered = sorted(samples)
            rank = max(1, math.ceil(percentile / 100 * len(ordered)))
            return ordered[rank - 1]
        functions = {
            "SampleCount": lambda: float(len(samples)),
            "Average": lambda: sum(samples) / len(samples),
            "Sum": lambda: float(sum(samples)),
            "Minimum": lambda: float(min(samples)),
            "Maximum": lambda: float(max(samples)),
        }
        return functions[self.statistic]()

    def state(self, datapoints: Sequence[float | None], previous: str = INSUFFICIENT_DATA) -> str:
        """OK, ALARM or INSUFFICIENT_DATA after the latest `evaluation_periods` datapoints
        (oldest first, None where a period had no data), by CloudWatch's rules: ALARM when at
        least `datapoints_to_alarm` of them breach; missing data treated as configured."""
        window = list(datapoints)[-self.evaluation_periods :]
        missing = self.treat_missing_data
        present = [value for value in window if value is not None]
        if not present and missing in ("missing", "ignore"):
            return previous if missing == "ignore" else INSUFFICIENT_DATA
        breaching = sum(1 for value in present if self.breaches(value))
        if missing == "breaching":
            breaching += len(window) - len(present)
        return ALARM if breaching >= self.datapoints_to_alarm else OK


def alarm_definitions(stage: StageSection) -> list[AlarmDefinition]:
    """The stage's rollback alarms, in config order."""
    return [AlarmDefinition.from_section(section) for section in stage.alarms]
