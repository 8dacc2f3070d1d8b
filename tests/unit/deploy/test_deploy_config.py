"""The `deploy:` section: every combination SageMaker refuses or degrades is refused with why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config import PIPELINE_CONFIG, ConfigError, load_config
from config.deploy import RolloutSection
from config.deploy_rules import rollout_problems, step_count, total_wait_seconds
from config.fields import merge
from config.paths import CONFIG_DIR

REFERENCE = CONFIG_DIR / "deploy-reference.yaml"


def with_stage(tmp_path: Path, stage: dict[str, Any], other: dict[str, Any] | None = None) -> Path:
    """A config file adding stage `t` (merged over deploy.defaults) to pipeline.yaml."""
    document: dict[str, Any] = {
        "extends": str(PIPELINE_CONFIG),
        "deploy": {"stages": {"t": {"endpoint_name": "test-endpoint", **stage}}},
    }
    document = merge(document, other or {})
    path = tmp_path / "stage.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def refusal(tmp_path: Path, stage: dict[str, Any], other: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(with_stage(tmp_path, stage, other), env={})
    return str(caught.value)


def test_committed_configs_define_valid_stages() -> None:
    cfg = load_config(PIPELINE_CONFIG, env={})
    assert set(cfg.deploy.stages) == {"staging", "prod"}
    prod = cfg.deploy.stage("prod")
    assert prod.rollout.mode == "canary" and prod.instance_count == 2
    assert prod.alarms[0].metric == "Invocation5XXErrors"  # from deploy.defaults
    reference = load_config(REFERENCE, env={})
    kinds = {s.endpoint_type for s in reference.deploy.stages.values()}
    assert kinds == {"realtime", "serverless", "async"}
    with pytest.raises(KeyError, match=r"no stage 'nope' in deploy.stages; the config defines"):
        cfg.deploy.stage("nope")


def test_a_stage_names_only_what_differs_from_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(with_stage(tmp_path, {"rollout": {"bake_seconds": 120}}), env={})
    stage = cfg.deploy.stage("t")
    assert stage.rollout.bake_seconds == 120
    assert stage.rollout.mode == "all_at_once"  # the rest of rollout from the defaults
    assert stage.instance_type == "ml.m5.large"


CANARY = {"rollout": {"mode": "canary", "size": 50, "wait_seconds": 300}}


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ({"rollout": {"mode": "canary", "size": 60}, "instance_count": 4},
         "rollout.size 60% is outside the 0-50% of the fleet that SageMaker allows for a canary"),
        (CANARY, "With 1 instance(s) no step fits: raise instance_count to at least 2"),
        ({"rollout": {"mode": "canary", "size": 2, "unit": "instances"}, "instance_count": 3},
         "activates 2 of 3 instance(s) = 66.6667% of the fleet: a canary above 50 %"),
        ({"rollout": {"mode": "linear", "size": 5}, "instance_count": 4},
         "outside the 10-50% of the fleet that SageMaker allows for a linear step"),
        ({"rollout": {"mode": "linear", "size": 1, "unit": "instances"}, "instance_count": 20},
         "= 5% of the fleet: a linear step outside its range; SageMaker allows 10-50%"),
        ({"rollout": {"mode": "rolling", "size": 60}, "instance_count": 4},
         "outside the 5-50% of the fleet that SageMaker allows for a rolling step"),
        ({"endpoint_type": "serverless", **CANARY},
         "rollout.mode canary needs an instance fleet: a serverless endpoint has none"),
        ({"endpoint_type": "serverless", "rollout": {"mode": "rolling", "size": 10}},
         "rolling deployments exclude serverless endpoints"),
        ({"rollout": {"mode": "canary", "size": 50, "wait_seconds": 0}, "instance_count": 2},
         "with wait_seconds 0 shifts the next step at once"),
        ({**CANARY, "instance_count": 2, "rollout": {"mode": "canary", "size": 50,
          "wait_seconds": 600, "bake_seconds": 600, "max_execution_seconds": 1200}},
         "rollout.max_execution_seconds 1200 is not larger than the 1200 s of waits"),
        ({"rollout": {"mode": "linear", "size": 25, "wait_seconds": 600, "bake_seconds": 0,
          "max_execution_seconds": 1800}, "instance_count": 4},
         "is not larger than the 1800 s of waits"),
        ({"endpoint_type": "serverless", "serverless": {"provisioned_concurrency": 30}},
         "provisioned_concurrency 30 is above max_concurrency 20; SageMaker refuses it"),
        ({"endpoint_type": "serverless", "serverless": {"memory_mb": 1500}},
         "serverless.memory_mb 1500 is not one of SageMaker's sizes"),
        ({"endpoint_type": "serverless", "shadow": {"enabled": True}},
         "shadow tests run on real-time endpoints only"),
        ({"endpoint_type": "async", "shadow": {"enabled": True}},
         "a async endpoint cannot host one"),
        ({"endpoint_type": "serverless", "data_capture": {"enabled": True}},
         "Serverless Inference does not support data capture or Model Monitor"),
        ({"monitoring": {"enabled": True}},
         "monitoring.enabled needs data_capture.enabled with Input captured"),
        ({"monitoring": {"enabled": True}, "data_capture": {"enabled": True,
          "capture": ["Output"]}}, "needs data_capture.enabled with Input captured"),
        ({"instance_type": "ml.inf1.xlarge"}, "endpoints on Inf1 instances cannot use deployment "
         "guardrails and fall back to an all-at-once blue/green update"),
        ({**CANARY, "instance_count": 2, "alarms": []},
         "rollout.mode canary without alarms bakes without watching anything"),
        ({"rollout": {"bake_seconds": 0}},
         "SageMaker watches rollback alarms only while it bakes, so they could never roll back"),
        ({"rollout": {"bake_seconds": 100}},
         "alarm 'latency-p99' needs 120 s of breaching data to go to ALARM, longer than the "
         "100 s baking period"),
        ({"alarms": [{"name": "a", "metric": "ModelLatency", "statistic": "Average",
          "period_seconds": 90, "evaluation_periods": 1, "threshold": 1,
          "comparison": "GreaterThanThreshold"}]}, "period_seconds 90 is not a multiple of 60"),
        ({"alarms": [{"name": "a", "metric": "ModelLatency", "statistic": "p101",
          "period_seconds": 60, "evaluation_periods": 1, "threshold": 1,
          "comparison": "GreaterThanThreshold"}]}, "statistic 'p101' is neither one of"),
        ({"alarms": [{"name": "a", "metric": "ModelLatency", "statistic": "Sum",
          "period_seconds": 60, "evaluation_periods": 2, "datapoints_to_alarm": 3,
          "threshold": 1, "comparison": "GreaterThanThreshold"}]},
         "datapoints_to_alarm 3 is above evaluation_periods 2"),
        ({"alarms": [{"name": "a", "metric": "ModelLatency", "statistic": "Sum",
          "period_seconds": 60, "evaluation_periods": 1441, "threshold": 1,
          "comparison": "GreaterThanThreshold"}]}, "exceeds CloudWatch's 86400 s limit"),
        ({"alarms": [{"name": "a", "metric": "ModelLatency", "statistic": "Sum",
          "period_seconds": 60, "evaluation_periods": 1, "threshold": 1,
          "comparison": "Above"}]}, "'Above' is not a CloudWatch comparison operator"),
        ({"alarms": [{"name": f"a{i}", "metric": "ModelLatency", "statistic": "Sum",
          "period_seconds": 60, "evaluation_periods": 1, "threshold": 1,
          "comparison": "GreaterThanThreshold"} for i in range(11)]},
         "List should have at most 10 items"),
        ({"autoscaling": {"enabled": True, "metric": "backlog_per_instance"}},
         "autoscaling.metric backlog_per_instance does not fit a realtime endpoint"),
        ({"autoscaling": {"enabled": True, "min_capacity": 0}},
         "only asynchronous endpoints scale to zero instances"),
        ({"autoscaling": {"enabled": True, "min_capacity": 2, "max_capacity": 4}},
         "instance_count 1 is outside autoscaling [2, 4]"),
        ({"endpoint_type": "serverless", "autoscaling": {"enabled": True}},
         "serverless.provisioned_concurrency is not set"),
        ({"endpoint_type": "serverless", "serverless": {"provisioned_concurrency": 2},
          "autoscaling": {"enabled": True, "target_value": 70}},
         "target_value 70.0 for provisioned concurrency utilization is a fraction"),
        ({"endpoint_type": "serverless", "serverless": {"provisioned_concurrency": 2},
          "autoscaling": {"enabled": True, "max_capacity": 30, "target_value": 0.5}},
         "max_capacity 30 is above serverless.max_concurrency 20"),
        ({"instance_type": "ml.m5.huge"},
         "'ml.m5.huge' is not an instance type SageMaker offers for endpoints"),
        ({"shadow": {"enabled": True, "instance_type": "ml.t3.medium"}},
         "is not an instance type SageMaker offers for shadow variants"),
        ({"endpoint_name": "x" * 41}, "String should have at most 40 characters"),
        ({"monitoring": {"enabled": True, "schedule": "rate(1 hour)"},
          "data_capture": {"enabled": True}}, "is not a schedule Model Monitor accepts"),
        ({"monitoring": {"enabled": True, "max_runtime_seconds": 7200},
          "data_capture": {"enabled": True}}, "max_runtime_seconds 7200 is above 3600"),
        ({"async_inference": {"include_response_in": ["ERROR_NOTIFICATION_TOPIC"]},
          "endpoint_type": "async"}, "names ['ERROR_NOTIFICATION_TOPIC'], but that topic is not"),
        ({"async_inference": {"success_topic": "arn:aws:sns:us-east-1:123456789012:t"}},
         "they apply to endpoint_type async only"),
        ({"rollout": {"rollback_size": 1}}, "rollout.rollback_size applies to mode rolling only"),
        ({"data_capture": {"enabled": True, "sampling_percent": 0}},
         "data_capture.sampling_percent is 0 with capture enabled"),
        ({"rollout": {"speed": "fast"}}, "rollout.speed: unknown key"),
    ],
    ids=lambda value: None if isinstance(value, dict) else value[:40],
)  # fmt: skip
def test_refused_with_the_reason(tmp_path: Path, stage: dict[str, Any], expected: str) -> None:
    message = refusal(tmp_path, stage)
    assert "deploy.stages.t" in message
    assert expected in message, message


def test_refusals_across_sections(tmp_path: Path) -> None:
    isolated = {"security": {"enable_network_isolation": True}}
    assert "a serverless endpoint cannot run a model with security.enable_network_isolation" in (
        refusal(tmp_path, {"endpoint_type": "serverless"}, isolated)
    )
    same = {"deploy": {"stages": {"u": {"endpoint_name": "test-endpoint"}}}}
    assert "stages 't' and 'u' both deploy to endpoint 'test-endpoint'" in refusal(
        tmp_path, {}, same
    )
    bad_name = {"deploy": {"stages": {"Prod": {"endpoint_name": "x"}}}}
    assert "deploy.stages.Prod" in refusal(tmp_path, {}, bad_name)


def test_every_problem_of_a_stage_is_listed_at_once(tmp_path: Path) -> None:
    message = refusal(
        tmp_path,
        {"endpoint_type": "serverless", "rollout": {"mode": "canary"},
         "data_capture": {"enabled": True}, "shadow": {"enabled": True}},
    )  # fmt: skip
    for part in ("needs an instance fleet", "does not support data capture", "shadow tests"):
        assert part in message


def rollout(**values: Any) -> RolloutSection:
    base = {"mode": "canary", "size": 25, "unit": "percent", "wait_seconds": 300,
            "bake_seconds": 600}  # fmt: skip
    return RolloutSection(**{**base, **values})


def test_rollout_rules_apply_to_any_fleet_size() -> None:
    """The deploy plan checks the live fleet (autoscaling may have moved it) with these."""
    assert rollout_problems(rollout(), 4) == []
    assert "no step fits" in rollout_problems(rollout(), 1)[0]
    assert rollout_problems(rollout(mode="rolling", size=1, unit="instances"), 20) == []
    assert (
        "a rolling step outside its range"
        in rollout_problems(rollout(mode="rolling", size=1, unit="instances"), 40)[0]
    )
    assert rollout_problems(rollout(mode="all_at_once"), None) == []


def test_waits_and_steps() -> None:
    assert (step_count(rollout(), 4), total_wait_seconds(rollout(), 4)) == (2, 900)
    linear = rollout(mode="linear", size=25)
    assert (step_count(linear, 4), total_wait_seconds(linear, 4)) == (4, 3 * 300 + 600)
    rolling = rollout(mode="rolling", size=1, unit="instances")
    assert (step_count(rolling, 3), total_wait_seconds(rolling, 3)) == (3, 900)
    assert (step_count(rollout(mode="all_at_once"), 4), total_wait_seconds(
        rollout(mode="all_at_once"), 4)) == (1, 600)  # fmt: skip
