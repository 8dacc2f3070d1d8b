"""The plan, the progress and the status of a deployment as text (no AWS)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from pipelines.deploy import history
from pipelines.deploy.deployment import CREATE, UNCHANGED, Deployment, Live
from pipelines.deploy.plan import AlarmDefinition, RolloutPlan, alarm_definitions

CONFIG_KEYS = ("ProductionVariants", "DataCaptureConfig", "AsyncInferenceConfig", "KmsKeyId")
COMPARISON_SIGNS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


def _config_text(config: dict[str, Any] | None) -> list[str]:
    if config is None:
        return []
    shown = {key: config[key] for key in CONFIG_KEYS if config.get(key)}
    return json.dumps(shown, indent=2, sort_keys=True, default=str).splitlines(keepends=True)


def config_diff(live: dict[str, Any] | None, new: dict[str, Any], live_name: str | None) -> str:
    """The new endpoint config against the live one, as a unified diff."""
    return "".join(
        difflib.unified_diff(
            _config_text(live),
            _config_text(new),
            f"live {live_name}" if live_name else "live (none)",
            f"new {new['EndpointConfigName']}",
            n=2,
        )
    )


def rollout_lines(plan: RolloutPlan) -> list[str]:
    fleet = "serverless" if plan.fleet_size is None else f"{plan.fleet_size} instance(s)"
    lines = [f"rollout: {plan.mode.replace('_', ' ')} on a new fleet of {fleet}"]
    for at, step in plan.timeline():
        serving = "" if step.new_instances is None else f" ({step.new_instances} instance(s))"
        bake = f", alarms watched {step.bake_seconds} s" if step.bake_seconds else ""
        lines.append(
            f"  t+{at:>5} s  step {step.number}: {step.traffic_percent:g}% of traffic on the new "
            f"fleet{serving}{bake}"
        )
    end = sum(step.bake_seconds for step in plan.steps)
    if plan.final_bake_seconds:
        lines.append(
            f"  t+{end:>5} s  final bake {plan.final_bake_seconds} s, alarms watched; then the "
            "old fleet is terminated"
        )
    limit = plan.max_execution_seconds
    lines.append(
        f"  waits {plan.total_wait_seconds} s in all"
        + (f", within the {limit} s maximum execution time" if limit else "")
        + ("; any alarm in ALARM sends all traffic back" if plan.guarded else "")
    )
    return lines


def alarm_line(name: str, alarm: AlarmDefinition) -> str:
    window = f"{alarm.datapoints_to_alarm} of {alarm.evaluation_periods} x {alarm.period_seconds} s"
    scope = "new fleet only" if alarm.new_fleet_only else "whole endpoint"
    return (
        f"  {name}: {alarm.metric} {alarm.statistic} "
        f"{COMPARISON_SIGNS.get(alarm.comparison, alarm.comparison)} {alarm.threshold:g} "
        f"({window}; {scope})"
    )


def plan_lines(d: Deployment) -> list[str]:
    """What deploy will do, before it does it."""
    target, package, live = d.target, d.package, d.live
    stage = target.stage
    verb = {CREATE: "create", UNCHANGED: "keep"}.get(d.kind, "update")
    lines = [
        f"{d.action} {package.label} ({package.status}) to endpoint {target.endpoint} "
        f"(stage {target.stage_name}, {stage.endpoint_type}): {verb} the endpoint",
        f"  package      {package.arn}",
        f"  model        {d.model_name}",
        f"  config       {d.config_name}"
        + (f" (live: {live.config_name})" if live.config_name else ""),
    ]
    if live.version is not None:
        lines.append(f"  live package v{live.version}")
    diff = config_diff(live.config, d.config, live.config_name)
    if diff and d.kind != UNCHANGED:
        lines += [line.rstrip("\n") for line in diff.splitlines()]
    if d.kind == CREATE:
        lines.append("rollout: none, a new endpoint serves once it is in service")
    elif d.kind != UNCHANGED:
        lines += rollout_lines(d.plan)
    definitions = alarm_definitions(stage)
    if definitions:
        watching = {
            CREATE: "alarms (watched by the next update)",
            UNCHANGED: "alarms",
        }.get(
            d.kind, "rollback alarms" if d.rollback_alarms else "alarms (not watched: a rollback)"
        )
        lines.append(f"{watching}:")
        lines += [alarm_line(a["AlarmName"], x) for a, x in zip(d.alarms, definitions, strict=True)]
    if d.scaling:
        scaling = stage.autoscaling
        what = "provisioned concurrency" if stage.endpoint_type == "serverless" else "instances"
        policy = d.scaling[1].request["TargetTrackingScalingPolicyConfiguration"]
        metric = (policy.get("PredefinedMetricSpecification") or {}).get(
            "PredefinedMetricType"
        ) or policy["CustomizedMetricSpecification"]["MetricName"]
        lines.append(
            f"autoscaling: {scaling.min_capacity}-{scaling.max_capacity} {what}, {metric} "
            f"target {scaling.target_value:g} (cooldown in {scaling.scale_in_cooldown_seconds} "
            f"s, out {scaling.scale_out_cooldown_seconds} s)"
            + ("; released during the update (instance type changes)" if d.rescale else "")
        )
    elif live.scalable_target is not None:
        lines.append("autoscaling: removed (disabled in the config)")
    capture = d.config.get("DataCaptureConfig")
    if capture:
        modes = ", ".join(o["CaptureMode"] for o in capture["CaptureOptions"])
        lines.append(
            f"data capture: {capture['InitialSamplingPercentage']}% of requests ({modes}) to "
            f"{capture['DestinationS3Uri']}"
        )
    if d.monitoring is not None:
        job, schedule = d.monitoring
        lines.append(
            f"monitoring: data quality {schedule['MonitoringScheduleConfig']['ScheduleConfig']}"
            f"['ScheduleExpression'] against "
            f"{job['DataQualityBaselineConfig']['StatisticsResource']['S3Uri']}"
        )
    if stage.smoke.enabled:
        lines.append(
            f"smoke test: {stage.smoke.rows} row(s) of the package's test data, answers within "
            f"rel {stage.smoke.relative_tolerance:g} / abs {stage.smoke.absolute_tolerance:g} "
            "of the pipeline's predictions"
        )
    return lines


def progress(described: dict[str, Any], alarms: dict[str, dict[str, Any]]) -> str:
    """One line of an endpoint while it changes: status, variants, alarm states."""
    parts = [f"{described.get('EndpointStatus')} on {described.get('EndpointConfigName')}"]
    pending = described.get("PendingDeploymentSummary") or {}
    for variant in pending.get("ProductionVariants") or []:
        statuses = ", ".join(
            f"{s.get('Status')}" + (f" ({s['StatusMessage']})" if s.get("StatusMessage") else "")
            for s in variant.get("VariantStatus") or []
        )
        parts.append(
            f"new fleet {pending.get('EndpointConfigName')}/{variant.get('VariantName')}: "
            f"{statuses or 'pending'}"
        )
    for variant in described.get("ProductionVariants") or []:
        count = variant.get("CurrentInstanceCount")
        weight = variant.get("CurrentWeight")
        parts.append(
            f"{variant.get('VariantName')}"
            + (f" weight {weight:g}" if weight is not None else "")
            + (f", {count} instance(s)" if count is not None else "")
        )
    if alarms:
        parts.append(
            "alarms "
            + ", ".join(f"{name} {alarm.get('StateValue')}" for name, alarm in alarms.items())
        )
    return " | ".join(parts)


def status_lines(
    stage_name: str,
    live: Live,
    alarms: dict[str, dict[str, Any]],
    extra: list[str],
) -> list[str]:
    """`python -m pipelines status`: what is live and how it got there."""
    if not live.exists:
        return [f"stage {stage_name}: endpoint {live.endpoint_name} is not deployed"]
    endpoint = live.endpoint or {}
    lines = [
        f"stage {stage_name}: endpoint {live.endpoint_name} {live.status} "
        f"({live.endpoint_type or 'unknown type'})",
        f"  config   {live.config_name}",
    ]
    tags = live.tags
    if live.version is not None:
        lines.append(
            f"  package  v{live.version} {tags.get('tabular-pipelines:package-arn', '')} "
            f"(deployed by {tags.get('tabular-pipelines:deployed-by', '?')} at "
            f"{tags.get('tabular-pipelines:deployed-at', '?')})"
        )
    elif not live.owned:
        lines.append("  (not created by this tool)")
    if endpoint.get("FailureReason"):
        lines.append(f"  failure  {endpoint['FailureReason']}")
    lines.append("  " + progress(endpoint, {}))
    for name, alarm in sorted(alarms.items()):
        lines.append(f"  alarm {name}: {alarm.get('StateValue')} ({alarm.get('StateReason', '')})")
    if live.scalable_target is not None:
        scaling = live.scalable_target
        lines.append(
            f"  autoscaling {scaling['ScalableDimension']} {scaling['MinCapacity']}-"
            f"{scaling['MaxCapacity']}, policies "
            f"{[p['PolicyName'] for p in live.scaling_policies]}"
        )
    lines += [f"  {line}" for line in extra]
    entries = history.read(tags)
    if entries:
        lines.append("  history (oldest first):")
        lines += [
            f"    {e.at}  v{e.version:<4} {e.action:<8} {e.config_name}  by {e.by}" for e in entries
        ]
    return lines
