"""What moto lacks, with botocore's Stubber (which validates every request and answer against the
service model): the states of an update (Updating, Baking, RollingBack, UpdateRollbackFailed),
SageMaker's silent rollback, the alarm that tripped, the monitoring schedule, the shadow test and
provisioned-concurrency scaling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from config import PIPELINE_CONFIG, Config, load_config
from pipelines.deploy import apply, golden
from pipelines.deploy.deployment import DEPLOY, DeployFailed, Deployment, Live, prepare

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
OLD = "tabular-xgboost-prod-v6-6e472f6b"


@dataclass
class Stubs:
    clients: apply.Clients
    sagemaker: Stubber
    cloudwatch: Stubber
    autoscaling: Stubber
    lines: list[str]
    sleeps: list[float]

    @property
    def clock(self) -> apply.Clock:
        return apply.Clock(sleep=self.sleeps.append, monotonic=lambda: sum(self.sleeps),
                           now=lambda: START)  # fmt: skip


@pytest.fixture
def stubs(aws_credentials: None) -> Iterator[Stubs]:
    session = boto3.Session(region_name="us-east-1")
    clients = apply.Clients.for_session(session)
    stubbed = [Stubber(c) for c in (clients.sagemaker, clients.cloudwatch, clients.autoscaling)]
    for stub in stubbed:
        stub.activate()
    yield Stubs(clients, *stubbed, lines=[], sleeps=[])
    for stub in stubbed:
        stub.assert_no_pending_responses()
        stub.deactivate()


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(golden.REFERENCE_CONFIG, env={})


def deployment(cfg: Config, stage: str = "prod") -> Deployment:
    first = prepare(cfg, stage, golden.reference_package(cfg, 6),
                    Live(cfg.deploy.stage(stage).endpoint_name), DEPLOY)  # fmt: skip
    return prepare(cfg, stage, golden.reference_package(cfg, 7), golden.previous_live(first),
                   DEPLOY)  # fmt: skip


def endpoint(status: str, config: str, **extra: Any) -> dict[str, Any]:
    return {
        "EndpointName": "tabular-xgboost-prod",
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/tabular-xgboost-prod",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": START,
        "LastModifiedTime": START,
        "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentWeight": 1.0,
                                "CurrentInstanceCount": 2, "DesiredInstanceCount": 2}],
        **extra,
    }  # fmt: skip


def pending(config: str, status: str, message: str) -> dict[str, Any]:
    return {
        "PendingDeploymentSummary": {
            "EndpointConfigName": config,
            "StartTime": START,
            "ProductionVariants": [
                {"VariantName": "AllTraffic",
                 "VariantStatus": [{"Status": status, "StatusMessage": message,
                                    "StartTime": START}]}
            ],
        }
    }  # fmt: skip


def alarms(d: Deployment, states: dict[str, str]) -> dict[str, Any]:
    """DescribeAlarms of the update's rollback alarms; `states` by short name (default OK)."""
    found = []
    for name in d.rollback_alarms:
        state = states.get(name.removeprefix(f"{d.config_name}-"), "OK")
        reason = "Threshold Crossed: 1 datapoint [4.0] was greater than 0.0"
        found.append({"AlarmName": name, "StateValue": state,
                      "StateReason": reason if state == "ALARM" else "ok"})  # fmt: skip
    return {"MetricAlarms": found}


def poll(stubs: Stubs, d: Deployment, answer: dict[str, Any], states: dict[str, str]) -> None:
    stubs.sagemaker.add_response("describe_endpoint", answer, {"EndpointName": d.target.endpoint})
    stubs.cloudwatch.add_response("describe_alarms", alarms(d, states),
                                  {"AlarmNames": d.rollback_alarms})  # fmt: skip


def settle(stubs: Stubs, d: Deployment) -> dict[str, Any]:
    return apply.wait_for_endpoint(stubs.clients, d.target, d.config_name, d.rollback_alarms,
                                   stubs.lines.append, stubs.clock)  # fmt: skip


def test_an_update_shows_its_progress_and_is_verified_live(stubs: Stubs, cfg: Config) -> None:
    d = deployment(cfg)
    new = d.config_name
    poll(stubs, d, endpoint("Updating", OLD, **pending(new, "Creating", "Launching 2 instances")),
         {})  # fmt: skip
    poll(stubs, d, endpoint("Updating", OLD, **pending(new, "Baking", "Canary 50%: baking")), {})
    poll(stubs, d, endpoint("Updating", OLD, **pending(new, "Baking", "Canary 50%: baking")), {})
    poll(stubs, d, endpoint("InService", new), {})
    described = settle(stubs, d)
    apply.verify(stubs.clients, d, described, START)
    assert stubs.lines == [
        f"Updating on {OLD} | new fleet {new}/AllTraffic: Creating (Launching 2 instances) | "
        "AllTraffic weight 1, 2 instance(s) | alarms errors-5xx OK, latency-p99 OK",
        f"Updating on {OLD} | new fleet {new}/AllTraffic: Baking (Canary 50%: baking) | "
        "AllTraffic weight 1, 2 instance(s) | alarms errors-5xx OK, latency-p99 OK",
        f"InService on {new} | AllTraffic weight 1, 2 instance(s) | alarms errors-5xx OK, "
        "latency-p99 OK",
    ]
    assert stubs.sleeps == [cfg.deploy.stage("prod").poll_seconds] * 3


def test_an_alarm_trip_rolls_back_and_the_deploy_names_it(stubs: Stubs, cfg: Config) -> None:
    d = deployment(cfg)
    new = d.config_name
    poll(stubs, d, endpoint("Updating", OLD, **pending(new, "Baking", "Canary")), {})
    poll(stubs, d, endpoint("Updating", OLD, **pending(new, "Baking", "Canary")),
         {"errors-5xx": "ALARM"})  # fmt: skip
    poll(stubs, d, endpoint("RollingBack", OLD), {"errors-5xx": "ALARM"})
    rolled = endpoint("InService", OLD, FailureReason="Alarm tabular-xgboost-prod-... in ALARM")
    poll(stubs, d, rolled, {})
    described = settle(stubs, d)
    assert any("RollingBack on" in line for line in stubs.lines)
    assert any("errors-5xx ALARM" in line for line in stubs.lines)
    # After the rollback the new fleet is gone and its alarm back to OK: its history tells.
    stubs.cloudwatch.add_response("describe_alarms", alarms(d, {}),
                                  {"AlarmNames": d.rollback_alarms})  # fmt: skip
    errors, latency = d.rollback_alarms
    history = {"AlarmHistoryItems": [{
        "AlarmName": errors, "HistoryItemType": "StateUpdate", "Timestamp": START,
        "HistorySummary": "Alarm updated from OK to ALARM",
        "HistoryData": json.dumps({"newState": {"stateValue": "ALARM"}})}]}  # fmt: skip
    window = {"HistoryItemType": "StateUpdate", "StartDate": START}
    stubs.cloudwatch.add_response("describe_alarm_history", history,
                                  {"AlarmName": errors, **window})  # fmt: skip
    stubs.cloudwatch.add_response("describe_alarm_history", {"AlarmHistoryItems": []},
                                  {"AlarmName": latency, **window})  # fmt: skip
    with pytest.raises(DeployFailed) as caught:
        apply.verify(stubs.clients, d, described, START)
    message = str(caught.value)
    assert f"endpoint tabular-xgboost-prod is InService on {OLD}, not on {new}" in message
    assert f"{errors}: Alarm updated from OK to ALARM" in message
    assert "SageMaker says: Alarm tabular-xgboost-prod-... in ALARM" in message
    assert latency not in message


def test_a_silent_rollback_is_never_a_success(stubs: Stubs, cfg: Config) -> None:
    """The endpoint never showed Updating: after a few looks, InService on the old config is
    the verdict (the in-service waiter would have called this a success)."""
    d = deployment(cfg)
    for _ in range(apply.CONFIRM_POLLS + 1):
        poll(stubs, d, endpoint("InService", OLD), {})
    described = settle(stubs, d)
    assert len(stubs.sleeps) == apply.CONFIRM_POLLS
    stubs.cloudwatch.add_response("describe_alarms", alarms(d, {}),
                                  {"AlarmNames": d.rollback_alarms})  # fmt: skip
    for name in d.rollback_alarms:
        stubs.cloudwatch.add_response(
            "describe_alarm_history", {"AlarmHistoryItems": []},
            {"AlarmName": name, "HistoryItemType": "StateUpdate", "StartDate": START})  # fmt: skip
    with pytest.raises(DeployFailed, match="rolled the update back.*none found in ALARM"):
        apply.verify(stubs.clients, d, described, START)


@pytest.mark.parametrize("status", ["UpdateRollbackFailed", "Failed"])
def test_a_failed_endpoint_fails_the_deploy_with_its_reason(
    stubs: Stubs, cfg: Config, status: str
) -> None:
    d = deployment(cfg)
    poll(stubs, d, endpoint(status, OLD, FailureReason="Image could not be pulled"), {})
    described = settle(stubs, d)
    with pytest.raises(DeployFailed, match=f"is {status} .*: Image could not be pulled"):
        apply.verify(stubs.clients, d, described, START)


def test_waiting_has_a_limit(stubs: Stubs, tmp_path: Path) -> None:
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump({"extends": str(PIPELINE_CONFIG), "deploy": {"stages": {
        "prod": {"wait_timeout_seconds": 60, "poll_seconds": 30,
                 "monitoring": {"enabled": False}}}}}))  # fmt: skip
    d = deployment(load_config(path, env={}))
    for _ in range(4):
        poll(stubs, d, endpoint("Updating", OLD), {})
    with pytest.raises(DeployFailed, match="still Updating after 60 s .*wait_timeout_seconds"):
        settle(stubs, d)


def tags_on_endpoint(stubs: Stubs, d: Deployment, present: dict[str, str], added: list) -> None:
    """What setting tags on the endpoint reads, and the AddTags it sends (if any)."""
    stubs.sagemaker.add_response("describe_endpoint", endpoint("InService", d.config_name),
                                 {"EndpointName": d.target.endpoint})  # fmt: skip
    arn = endpoint("InService", "")["EndpointArn"]
    stubs.sagemaker.add_response(
        "list_tags", {"Tags": [{"Key": k, "Value": v} for k, v in present.items()]},
        {"ResourceArn": arn})  # fmt: skip
    if added:
        stubs.sagemaker.add_response("add_tags", {}, {"ResourceArn": arn, "Tags": added})


def missing(stub: Stubber, operation: str, params: dict[str, Any]) -> None:
    stub.add_client_error(operation, "ResourceNotFound", "Could not find it", 400,
                          expected_params=params)  # fmt: skip


def test_the_monitoring_schedule_moves_to_the_new_baseline(stubs: Stubs, cfg: Config) -> None:
    d = deployment(cfg)
    assert d.monitoring is not None
    job, schedule = d.monitoring
    name = job["JobDefinitionName"]
    sagemaker = stubs.sagemaker
    missing(sagemaker, "describe_data_quality_job_definition", {"JobDefinitionName": name})
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:data-quality-job-definition/{name}"
    sagemaker.add_response("create_data_quality_job_definition", {"JobDefinitionArn": arn}, job)
    marker = apply.MONITORING_MARKER
    tags_on_endpoint(stubs, d, {}, [{"Key": marker, "Value": "tabular-xgboost-prod-data-quality"}])
    old_job = "tabular-xgboost-prod-dq-v6-00000000"
    described = {
        "MonitoringScheduleArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:monitoring-schedule/x",
        "MonitoringScheduleName": schedule["MonitoringScheduleName"],
        "MonitoringScheduleStatus": "Scheduled", "CreationTime": START,
        "LastModifiedTime": START,
        "MonitoringScheduleConfig": {**schedule["MonitoringScheduleConfig"],
                                     "MonitoringJobDefinitionName": old_job},
    }  # fmt: skip
    key = {"MonitoringScheduleName": schedule["MonitoringScheduleName"]}
    sagemaker.add_response("describe_monitoring_schedule", described, key)
    update = {k: v for k, v in schedule.items() if k != "Tags"}
    sagemaker.add_response(
        "update_monitoring_schedule",
        {"MonitoringScheduleArn": described["MonitoringScheduleArn"]},
        update,
    )
    sagemaker.add_response(
        "describe_monitoring_schedule", {**described, "MonitoringScheduleStatus": "Scheduled"}, key
    )
    old_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:data-quality-job-definition/{old_job}"
    sagemaker.add_response(
        "describe_data_quality_job_definition",
        job_description(job, old_job),
        {"JobDefinitionName": old_job},
    )
    sagemaker.add_response("list_tags", {"Tags": [
        {"Key": "tabular-pipelines:endpoint", "Value": "tabular-xgboost-prod"}]},
        {"ResourceArn": old_arn})  # fmt: skip
    sagemaker.add_response("delete_data_quality_job_definition", {}, {"JobDefinitionName": old_job})
    lines: list[str] = []
    apply.apply_monitoring(stubs.clients, d, lines.append, stubs.clock)
    assert lines[-1] == f"monitoring schedule tabular-xgboost-prod-data-quality: now on {name}"
    assert job["DataQualityBaselineConfig"]["StatisticsResource"]["S3Uri"].endswith(
        "/DataQuality/results/statistics.json"
    )  # the package's own baseline


def job_description(job: dict[str, Any], name: str) -> dict[str, Any]:
    keys = ("DataQualityAppSpecification", "DataQualityJobInput", "DataQualityJobOutputConfig",
            "JobResources", "RoleArn")  # fmt: skip
    return {
        "JobDefinitionArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:data-quality-job-definition/"
        f"{name}",
        "JobDefinitionName": name,
        "CreationTime": START,
        **{key: job[key] for key in keys},
    }


def test_a_first_monitoring_schedule_is_created(stubs: Stubs, cfg: Config) -> None:
    d = deployment(cfg)
    d = replace(d, live=replace(d.live, schedule=None))
    assert d.monitoring is not None
    job, schedule = d.monitoring
    name = job["JobDefinitionName"]
    sagemaker = stubs.sagemaker
    sagemaker.add_response("describe_data_quality_job_definition", job_description(job, name),
                           {"JobDefinitionName": name})  # fmt: skip
    marker = {apply.MONITORING_MARKER: schedule["MonitoringScheduleName"]}
    tags_on_endpoint(stubs, d, marker, [])  # the marker is there already: no AddTags
    missing(sagemaker, "describe_monitoring_schedule",
            {"MonitoringScheduleName": schedule["MonitoringScheduleName"]})  # fmt: skip
    sagemaker.add_response("create_monitoring_schedule",
                           {"MonitoringScheduleArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:"
                            "monitoring-schedule/x"}, schedule)  # fmt: skip
    lines: list[str] = []
    apply.apply_monitoring(stubs.clients, d, lines.append, stubs.clock)
    assert lines == [f"data-quality job definition {name}: exists",
                     "monitoring schedule tabular-xgboost-prod-data-quality: created"]  # fmt: skip


def test_a_shadow_test_mirrors_traffic_to_the_candidate_and_stops(
    stubs: Stubs, cfg: Config
) -> None:
    d = deployment(cfg, "realtime")
    request = d.shadow_request(START)
    sagemaker = stubs.sagemaker
    missing(sagemaker, "describe_model", {"ModelName": d.model_name})
    sagemaker.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:1:model/m"},
                           d.model)  # fmt: skip
    tags_on_endpoint(stubs, d, {}, [{"Key": apply.EXPERIMENT_MARKER, "Value": request["Name"]}])
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:inference-experiment/{request['Name']}"
    sagemaker.add_response("create_inference_experiment", {"InferenceExperimentArn": arn}, request)
    for status in ("Creating", "Running"):
        sagemaker.add_response("describe_inference_experiment", {
            "Arn": arn, "Name": request["Name"], "Type": "ShadowMode", "Status": status,
            "EndpointMetadata": {"EndpointName": d.target.endpoint},
            "ModelVariants": []}, {"Name": request["Name"]})  # fmt: skip
    lines: list[str] = []
    apply.start_shadow(stubs.clients, d, lines.append, stubs.clock)
    assert lines[-1] == f"shadow test {request['Name']}: Running"
    shadow = request["ModelVariants"][1]
    assert shadow["ModelName"] == d.model_name and shadow["VariantName"] == "AllTraffic-shadow"
    assert request["ShadowModeConfig"]["ShadowModelVariants"][0]["SamplingPercentage"] == 25
    assert request["Schedule"]["EndTime"] == "2026-03-05T09:00:00Z"  # 3 days
    # undeploy stops it: the live variant stays, the shadow goes.
    running = {
        "Arn": arn,
        "Name": request["Name"],
        "Type": "ShadowMode",
        "Status": "Running",
        "EndpointMetadata": {"EndpointName": d.target.endpoint},
        "ModelVariants": [],
    }
    sagemaker.add_response("describe_inference_experiment", running, {"Name": request["Name"]})
    actions = {"AllTraffic": "Retain", "AllTraffic-shadow": "Remove"}
    sagemaker.add_response(
        "stop_inference_experiment",
        {"InferenceExperimentArn": arn},
        {"Name": request["Name"], "ModelVariantActions": actions},
    )
    sagemaker.add_response("describe_inference_experiment", {**running, "Status": "Completed"},
                           {"Name": request["Name"]})  # fmt: skip
    sagemaker.add_response("delete_inference_experiment", {"InferenceExperimentArn": arn},
                           {"Name": request["Name"]})  # fmt: skip
    assert apply.stop_experiment(stubs.clients, d.target, request["Name"], stubs.clock)


def test_serverless_scaling_tracks_provisioned_concurrency(stubs: Stubs, cfg: Config) -> None:
    d = deployment(cfg, "serverless")
    target, policy = (c.request for c in d.scaling)
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredProvisionedConcurrency"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 10)
    stubs.autoscaling.add_response("register_scalable_target", {}, target)
    stubs.autoscaling.add_response("put_scaling_policy", {
        "PolicyARN": "arn:aws:autoscaling:us-east-1:1:scalingPolicy:x"}, policy)  # fmt: skip
    lines: list[str] = []
    apply.apply_scaling(stubs.clients, d.scaling, lines.append, stubs.clock)
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantProvisionedConcurrencyUtilization"
    )
    assert tracking["TargetValue"] == 0.7 and len(lines) == 2
