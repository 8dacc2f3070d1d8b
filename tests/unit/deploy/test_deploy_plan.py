"""The rollout plan and the alarm definitions: plain data a local router can also carry out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from config import PIPELINE_CONFIG, load_config
from config.deploy_rules import total_wait_seconds
from config.paths import CONFIG_DIR
from pipelines.deploy.plan import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmDefinition,
    RolloutPlan,
    alarm_definitions,
)


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    return load_config(CONFIG_DIR / "deploy-reference.yaml", env={})


def test_canary_plan_of_the_committed_prod_stage() -> None:
    prod = load_config(PIPELINE_CONFIG, env={}).deploy.stage("prod")
    plan = RolloutPlan.for_stage(prod)
    assert plan.mode == "canary" and plan.fleet_size == 2
    assert [(s.traffic_percent, s.new_instances, s.bake_seconds) for s in plan.steps] == [
        (50.0, 1, 600),
        (100.0, 2, 0),
    ]
    assert plan.final_bake_seconds == 600
    assert plan.total_wait_seconds == 1200 == total_wait_seconds(prod.rollout, 2)
    assert plan.timeline() == [(0, plan.steps[0]), (600, plan.steps[1])]
    assert plan.guarded


def test_linear_rolling_and_serverless_plans(reference) -> None:  # type: ignore[no-untyped-def]
    linear = RolloutPlan.for_stage(reference.deploy.stage("realtime"))
    assert [s.traffic_percent for s in linear.steps] == [25.0, 50.0, 75.0, 100.0]
    assert [s.bake_seconds for s in linear.steps] == [300, 300, 300, 0]
    assert linear.total_wait_seconds == 1500 < linear.max_execution_seconds  # type: ignore[operator]
    rolling = RolloutPlan.for_stage(reference.deploy.stage("async"))
    assert [(s.new_instances, s.bake_seconds) for s in rolling.steps] == [(1, 300), (2, 300)]
    assert rolling.final_bake_seconds == 0  # a rolling update has no final bake
    serverless = RolloutPlan.for_stage(reference.deploy.stage("serverless"))
    assert serverless.fleet_size is None and len(serverless.steps) == 1
    assert serverless.steps[0].new_instances is None and serverless.final_bake_seconds == 600


def test_the_plan_follows_the_live_fleet(reference) -> None:  # type: ignore[no-untyped-def]
    """Autoscaling moved the fleet to 8 instances: 25 % steps are 2 instances each."""
    plan = RolloutPlan.for_stage(reference.deploy.stage("realtime"), fleet=8)
    assert [s.new_instances for s in plan.steps] == [2, 4, 6, 8]


def test_a_rehearsal_scales_the_waits_and_a_restore_is_immediate() -> None:
    prod = load_config(PIPELINE_CONFIG, env={}).deploy.stage("prod")
    plan = RolloutPlan.for_stage(prod)
    fast = plan.scaled(0.01)
    assert [s.bake_seconds for s in fast.steps] == [6, 0] and fast.final_bake_seconds == 6
    assert [s.traffic_percent for s in fast.steps] == [s.traffic_percent for s in plan.steps]
    now = RolloutPlan.immediate(2)
    assert now.mode == "all_at_once" and now.total_wait_seconds == 0 and not now.guarded


def test_alarm_definitions_watch_the_new_fleet_where_the_metric_allows() -> None:
    staging = load_config(PIPELINE_CONFIG, env={}).deploy.stage("staging")
    errors, latency = alarm_definitions(staging)
    assert errors.dimensions == ("EndpointName", "VariantName", "EndpointConfigName")
    assert errors.new_fleet_only and latency.new_fleet_only
    assert latency.percentile == 99.0 and errors.percentile is None
    cpu = replace(errors, metric="CPUUtilization", namespace="/aws/sagemaker/Endpoints")
    assert cpu.dimensions == ("EndpointName", "VariantName") and not cpu.new_fleet_only
    backlog = replace(errors, metric="ApproximateBacklogSizePerInstance")
    assert backlog.dimensions == ("EndpointName",)


def definition(**values: object) -> AlarmDefinition:
    base = dict(name="a", metric="Invocation5XXErrors", namespace="AWS/SageMaker",
                statistic="Sum", period_seconds=60, evaluation_periods=3,
                datapoints_to_alarm=2, threshold=0.0, comparison="GreaterThanThreshold",
                treat_missing_data="notBreaching")  # fmt: skip
    return AlarmDefinition(**{**base, **values})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("missing", "datapoints", "state"),
    [
        ("notBreaching", [1.0, 0.0, 2.0], ALARM),  # 2 of 3 breach
        ("notBreaching", [1.0, 0.0, 0.0], OK),
        ("notBreaching", [None, 1.0, None], OK),  # missing counts as good
        ("breaching", [None, 1.0, None], ALARM),  # missing counts as bad
        ("missing", [None, None, None], INSUFFICIENT_DATA),
        ("ignore", [None, None, None], "previous"),
        ("notBreaching", [5.0, 5.0, 0.0, 0.0, 0.0], OK),  # only the last 3 periods count
    ],
)
def test_alarm_state_follows_cloudwatch(missing: str, datapoints: list, state: str) -> None:
    alarm = definition(treat_missing_data=missing)
    assert alarm.state(datapoints, previous="previous") == state


def test_statistics_of_a_period() -> None:
    samples = [float(v) for v in range(1, 101)]
    assert definition(statistic="p99").statistic_of(samples) == 99.0
    assert definition(statistic="p50").statistic_of(samples) == 50.0
    assert definition(statistic="Average").statistic_of([1.0, 3.0]) == 2.0
    assert definition(statistic="SampleCount").statistic_of([1.0, 3.0]) == 2.0
    assert definition(statistic="Maximum").statistic_of([1.0, 3.0]) == 3.0
    assert definition().statistic_of([]) is None
    assert definition(comparison="LessThanOrEqualToThreshold", threshold=1).breaches(1.0)
