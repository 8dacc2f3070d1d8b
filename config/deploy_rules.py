"""What SageMaker refuses or silently degrades in a stage of `deploy:`, as plain functions.

The sections (steps/deploy_config.py) call these when a config is loaded; the deploy plan calls
the rollout's with the live fleet, which autoscaling may have moved (pipelines/deploy), and the
rollout plan steps through the same arithmetic: one rule, one place. Each message gives the
reason SageMaker documents and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.deploy import DeploySection, RolloutSection, StageSection

GUARDED = ("canary", "linear", "rolling")
DEFAULT_SCALING_METRIC = {
    "realtime": "invocations_per_instance",
    "async": "backlog_per_instance",
    "serverless": "provisioned_concurrency_utilization",
}
# The share of the new fleet each step may activate (API reference: TrafficRoutingConfig,
# RollingUpdatePolicy): a canary at most 50 %, a linear step 10-50 %, a rolling batch 5-50 %.
STEP_LIMITS: dict[str, tuple[float, float]] = {
    "canary": (0.0, 50.0),
    "linear": (10.0, 50.0),
    "rolling": (5.0, 50.0),
}
INF1_PREFIX = "ml.inf1."
RESERVED_TAGS = 30
MAX_TAGS = 50
GUARDRAILS_DOC = "SageMaker Developer Guide, Deployment guardrails"


def step_instances(size: int, unit: str, fleet: int) -> int:
    """Instances one step activates: a count, or a share of the fleet rounded down to stay
    within the share, but at least one instance."""
    if unit == "instances":
        return size
    return max(1, math.floor(fleet * size / 100))


def rollout_problems(rollout: RolloutSection, fleet: int | None) -> list[str]:
    """What SageMaker refuses or degrades in `rollout` for a fleet of `fleet` instances.

    Used by config validation (the configured instance count) and by the deploy plan (the
    live count, where autoscaling has moved it).
    """
    problems: list[str] = []
    mode = rollout.mode
    if rollout.rollback_size is not None and mode != "rolling":
        problems.append(
            "rollout.rollback_size applies to mode rolling only "
            "(RollingUpdatePolicy.RollbackMaximumBatchSize); remove it"
        )
    if mode not in GUARDED:
        return problems
    if fleet is None:
        problems.append(
            f"rollout.mode {mode} needs an instance fleet: a serverless endpoint has none to "
            "shift in steps, and rolling deployments exclude serverless endpoints "
            f"({GUARDRAILS_DOC}, Exclusions); use mode all_at_once with bake_seconds and alarms"
        )
        return problems
    low, high = STEP_LIMITS[mode]
    if rollout.unit == "percent" and not low <= rollout.size <= high:
        problems.append(
            f"rollout.size {rollout.size}% is outside the {low:g}-{high:g}% of the fleet "
            f"that SageMaker allows for a {mode} step ({GUARDRAILS_DOC})"
        )
        return problems
    active = step_instances(rollout.size, rollout.unit, fleet)
    share = 100.0 * active / fleet
    # A share in range is honoured as rounded; one instance above the share is too few.
    low = low if rollout.unit == "instances" else 0.0
    if not low <= share <= high:
        what = "a canary above 50 %" if mode == "canary" else f"a {mode} step outside its range"
        problems.append(
            f"rollout.size {rollout.size} {rollout.unit} activates {active} of {fleet} "
            f"instance(s) = {share:g}% of the fleet: {what}; SageMaker allows "
            f"{low:g}-{high:g}% for {mode} ({GUARDRAILS_DOC}). "
            + (
                f"With {fleet} instance(s) no step fits: raise instance_count to at least "
                f"{math.ceil(100 / high)}"
                if fleet * high / 100 < 1
                else "Change rollout.size or instance_count"
            )
        )
    rollback = rollout.rollback_size
    if rollback is not None and step_instances(rollback, rollout.rollback_unit, fleet) > fleet:
        problems.append(
            f"rollout.rollback_size {rollout.rollback_size} {rollout.rollback_unit} is "
            f"more than the {fleet} instance(s) of the fleet"
        )
    return problems


def bake_windows(rollout: RolloutSection, fleet: int | None) -> list[int]:
    """The baking periods of a rollout, during which SageMaker watches the alarms."""
    return [w for w in (*step_bakes(rollout, fleet), final_bake(rollout)) if w > 0]


def stage_problems(stage: StageSection) -> list[str]:
    """Every combination of one stage that SageMaker refuses or silently degrades."""
    problems: list[str] = []
    kind = stage.endpoint_type
    rollout = stage.rollout
    fleet = stage.fleet_size
    problems += rollout_problems(rollout, fleet)
    guarded = rollout.mode in GUARDED
    if guarded and rollout.wait_seconds == 0:
        problems.append(
            f"rollout.mode {rollout.mode} with wait_seconds 0 shifts the next step at once: "
            "nothing bakes and no alarm is watched; set wait_seconds (1-3600)"
        )
    inf1 = kind != "serverless" and stage.instance_type.startswith(INF1_PREFIX)
    if inf1 and (guarded or rollout.bake_seconds or stage.alarms):
        problems.append(
            f"instance_type {stage.instance_type}: endpoints on Inf1 instances cannot use "
            "deployment guardrails and fall back to an all-at-once blue/green update with "
            f"no baking period and no auto-rollback ({GUARDRAILS_DOC}, Exclusions); use "
            "rollout.mode all_at_once, bake_seconds 0 and no alarms, or another type"
        )
    windows = bake_windows(rollout, fleet)
    if stage.alarms and not windows:
        problems.append(
            "alarms are set but the rollout has no baking period (rollout.bake_seconds 0 "
            "with mode all_at_once): SageMaker watches rollback alarms only while it bakes, so "
            "they could never roll back; set rollout.bake_seconds or remove the alarms"
        )
    if guarded and not stage.alarms:
        problems.append(
            f"rollout.mode {rollout.mode} without alarms bakes without watching anything: "
            "SageMaker rolls back only on a CloudWatch alarm (Auto-Rollback Configuration and "
            "Monitoring); add alarms (e.g. Invocation5XXErrors, ModelLatency)"
        )
    if windows:
        shortest = min(windows)
        for alarm in stage.alarms:
            if alarm.seconds_to_trip > shortest:
                problems.append(
                    f"alarm {alarm.name!r} needs {alarm.seconds_to_trip} s of breaching data "
                    f"to go to ALARM, longer than the {shortest} s baking period: it could "
                    "never roll the rollout back; lower its period or datapoints, or bake "
                    "longer"
                )
    names = [a.name for a in stage.alarms]
    if len(set(names)) != len(names):
        problems.append(f"alarms: names must be unique, got {names}")
    if rollout.max_execution_seconds is not None:
        total = total_wait_seconds(rollout, fleet)
        if rollout.max_execution_seconds <= total:
            problems.append(
                f"rollout.max_execution_seconds {rollout.max_execution_seconds} is not larger "
                f"than the {total} s of waits the rollout holds; SageMaker requires the "
                "timeout to exceed WaitIntervalInSeconds and TerminationWaitInSeconds in total "
                "(BlueGreenUpdatePolicy); raise it or shorten the waits"
            )
    if kind == "serverless":
        problems += _serverless_problems(stage)
    if kind != "realtime" and stage.shadow.enabled:
        problems.append(
            f"shadow tests run on real-time endpoints only (InferenceExperiment supports "
            f"InfrastructureType RealTimeInference); a {kind} endpoint cannot host one"
        )
    if kind != "async" and (
        stage.async_inference.success_topic or stage.async_inference.error_topic
    ):
        problems.append(
            "async_inference topics are set on a "
            f"{kind} endpoint; they apply to endpoint_type async only"
        )
    if stage.monitoring.enabled:
        capture = stage.data_capture
        if not capture.enabled or "Input" not in capture.capture:
            problems.append(
                "monitoring.enabled needs data_capture.enabled with Input captured: the "
                "data-quality monitor analyses the captured requests"
            )
    problems += _autoscaling_problems(stage)
    if len(stage.tags) > MAX_TAGS - RESERVED_TAGS:
        problems.append(
            f"tags: {len(stage.tags)} tags; at most {MAX_TAGS - RESERVED_TAGS} fit beside the "
            f"{RESERVED_TAGS} that deploy keeps on the endpoint (SageMaker allows {MAX_TAGS})"
        )
    return problems


def _serverless_problems(stage: StageSection) -> list[str]:
    problems = []
    unsupported = [
        name
        for name, used in (
            ("data_capture", stage.data_capture.enabled),
            ("monitoring", stage.monitoring.enabled),
        )
        if used
    ]
    if unsupported:
        problems.append(
            f"{' and '.join(unsupported)} on a serverless endpoint: Serverless Inference does "
            "not support data capture or Model Monitor (Serverless Inference, feature "
            "exclusions); disable them or use endpoint_type realtime"
        )
    return problems


def _autoscaling_problems(stage: StageSection) -> list[str]:
    scaling = stage.autoscaling
    if not scaling.enabled:
        return []
    problems = []
    kind = stage.endpoint_type
    metric = stage.scaling_metric
    expected = DEFAULT_SCALING_METRIC[kind]
    if metric != expected:
        reasons = {
            "realtime": "real-time endpoints scale their instance count on "
            "SageMakerVariantInvocationsPerInstance",
            "async": "asynchronous endpoints scale on their queue, "
            "ApproximateBacklogSizePerInstance",
            "serverless": "serverless endpoints scale provisioned concurrency on "
            "SageMakerVariantProvisionedConcurrencyUtilization",
        }
        problems.append(
            f"autoscaling.metric {metric} does not fit a {kind} endpoint: {reasons[kind]}; "
            f"use {expected}"
        )
    if scaling.min_capacity > scaling.max_capacity:
        problems.append(
            f"autoscaling.min_capacity {scaling.min_capacity} is above max_capacity "
            f"{scaling.max_capacity}"
        )
    if kind == "realtime" and scaling.min_capacity < 1:
        problems.append(
            "autoscaling.min_capacity 0 on a real-time endpoint: only asynchronous endpoints "
            "scale to zero instances; use at least 1"
        )
    if kind == "serverless":
        provisioned = stage.serverless.provisioned_concurrency
        if provisioned is None:
            problems.append(
                "autoscaling on a serverless endpoint scales provisioned concurrency, and "
                "serverless.provisioned_concurrency is not set; set it or disable autoscaling"
            )
        elif not scaling.min_capacity <= provisioned <= scaling.max_capacity:
            problems.append(
                f"serverless.provisioned_concurrency {provisioned} is outside autoscaling "
                f"[{scaling.min_capacity}, {scaling.max_capacity}]: Application Auto Scaling "
                "would change it at once"
            )
        if scaling.max_capacity > stage.serverless.max_concurrency:
            problems.append(
                f"autoscaling.max_capacity {scaling.max_capacity} is above "
                f"serverless.max_concurrency {stage.serverless.max_concurrency}: provisioned "
                "concurrency cannot exceed MaxConcurrency"
            )
        if scaling.min_capacity < 1:
            problems.append("autoscaling.min_capacity of provisioned concurrency is at least 1")
    else:
        if not scaling.min_capacity <= stage.instance_count <= scaling.max_capacity:
            problems.append(
                f"instance_count {stage.instance_count} is outside autoscaling "
                f"[{scaling.min_capacity}, {scaling.max_capacity}]: Application Auto Scaling "
                "would resize the fleet at once after the deploy; make them agree"
            )
    if metric == "provisioned_concurrency_utilization" and scaling.target_value > 1:
        problems.append(
            f"autoscaling.target_value {scaling.target_value} for provisioned concurrency "
            "utilization is a fraction (0-1], e.g. 0.7"
        )
    return problems


def step_count(rollout: RolloutSection, fleet: int | None) -> int:
    """Traffic shifts of a rollout: 1 at once, 2 for a canary, n linear steps or batches."""
    if rollout.mode == "all_at_once" or fleet is None:
        return 1
    if rollout.mode == "canary":
        return 2
    active = step_instances(rollout.size, rollout.unit, fleet)
    return math.ceil(fleet / active)


def step_bakes(rollout: RolloutSection, fleet: int | None) -> list[int]:
    """The baking period after each step: WaitIntervalInSeconds between traffic shifts
    (blue/green), after every batch (rolling); the last blue/green step is followed by the
    final bake instead."""
    steps = step_count(rollout, fleet)
    if rollout.mode == "rolling":
        return [rollout.wait_seconds] * steps
    return [rollout.wait_seconds] * (steps - 1) + [0]


def final_bake(rollout: RolloutSection) -> int:
    """TerminationWaitInSeconds: blue/green bakes the new fleet before the old one goes."""
    return 0 if rollout.mode == "rolling" else rollout.bake_seconds


def total_wait_seconds(rollout: RolloutSection, fleet: int | None) -> int:
    """The waits a rollout holds: every baking period between steps, plus the final bake."""
    return sum(step_bakes(rollout, fleet)) + final_bake(rollout)


def security_problems(
    deploy: DeploySection, network_isolation: bool, subnets: Sequence[str]
) -> list[str]:
    """Stages that the security section (which reaches the model) makes impossible."""
    problems = []
    for name, stage in deploy.stages.items():
        if stage.endpoint_type == "serverless" and (network_isolation or subnets):
            problems.append(
                f"deploy.stages.{name}: a serverless endpoint cannot run a model with "
                "security.enable_network_isolation or a VPC (security.subnets); Serverless "
                "Inference does not support them (feature exclusions); use endpoint_type "
                "realtime or turn them off"
            )
    return problems
