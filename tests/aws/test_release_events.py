"""The release's EventBridge rules and the retraining state machine, run by moto (in process and
behind its HTTP server) with the patterns, input transformers and definition read from
infra/*.yaml: real event samples reach only the targets they should, with the input the target's
API takes (pinned with botocore's ParamValidator)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator
from infra_support import INFRA, Resolver, load_template
from moto import mock_aws
from moto.events.models import EventPattern
from moto.sagemaker.models import sagemaker_backends

from config import PIPELINE_CONFIG, Config, ConfigError, load_config
from config.parameters import DATA_VERSION as DATA_VERSION_PARAMETER
from pipelines.deploy import names
from pipelines.schedule import (
    SCHEDULE_ARN,
    SCHEDULED_TIME,
    ScheduleError,
    put_schedule,
    schedule_request,
    starter_input,
)

ACCOUNT = "123456789012"
CFG = load_config(PIPELINE_CONFIG, env={})
REGION = CFG.aws.region
GROUP = CFG.registry.model_package_group
PROD = CFG.deploy.stage("prod").endpoint_name
INTRINSICS = {"Ref", "Fn::Sub", "Fn::GetAtt", "Fn::FindInMap"}


def resolved(resolver: Resolver, node: Any) -> Any:
    """A template fragment with its Ref / Fn::Sub / Fn::GetAtt replaced by their values."""
    if isinstance(node, dict):
        if len(node) == 1 and next(iter(node)) in INTRINSICS:
            return resolver.value(node)
        return {key: resolved(resolver, value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(resolver, item) for item in node]
    return node


def rule(template: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rule's event pattern and its (single) target, as CloudFormation creates them."""
    loaded = load_template(INFRA / template)
    resolver = Resolver(loaded, ACCOUNT, REGION)
    properties = resolved(resolver, loaded["Resources"][name]["Properties"])
    (target,) = properties["Targets"]
    return properties["EventPattern"], target


# --------------------------------------------------------------------------- event samples


def package_event(status: str, group: str = GROUP, version: int = 3) -> dict[str, Any]:
    """ "SageMaker Model Package State Change" as EventBridge delivers it."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"
    return {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Model Package State Change",
        "Resources": [arn],
        "Detail": json.dumps(
            {
                "ModelPackageGroupName": group,
                "ModelPackageVersion": version,
                "ModelPackageArn": arn,
                "ModelPackageName": f"{group}/{version}",
                "CreationTime": 1772442000000,
                "ModelApprovalStatus": status,
                "ModelPackageStatus": "Completed",
                "CreatedBy": {"UserProfileName": "ml-engineer"},
            }
        ),  # fmt: skip
    }


def group_event() -> dict[str, Any]:
    """The group's own change (another detail-type): never a release."""
    return {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Model Package Group State Change",
        "Resources": [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{GROUP}"],
        "Detail": json.dumps(
            {
                "ModelPackageGroupName": GROUP,
                "ModelPackageGroupStatus": "Completed",
                "ModelApprovalStatus": "Approved",
            }
        ),  # fmt: skip
    }


def alarm_event(alarm: str, state: str = "ALARM", previous: str = "OK") -> dict[str, Any]:
    """ "CloudWatch Alarm State Change" as CloudWatch sends it."""
    return {
        "Source": "aws.cloudwatch",
        "DetailType": "CloudWatch Alarm State Change",
        "Resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}"],
        "Detail": json.dumps(
            {
                "alarmName": alarm,
                "state": {
                    "value": state,
                    "reason": "Threshold Crossed",
                    "timestamp": "2026-03-02T09:00:00.000+0000",
                },
                "previousState": {"value": previous, "timestamp": "2026-03-01T09:00:00.000+0000"},
                "configuration": {"metrics": []},
            }
        ),  # fmt: skip
    }


PACKAGE_EVENTS = {
    "approved": package_event("Approved"),
    "rejected": package_event("Rejected"),
    "pending": package_event("PendingManualApproval"),
    "other-group-approved": package_event("Approved", group="someone-elses-model"),
    "other-group-rejected": package_event("Rejected", group="someone-elses-model"),
    "group-change": group_event(),
}


# --------------------------------------------------------------------------- moto, two ways


@pytest.fixture(params=["in-process", "http-server"])
def session(request: pytest.FixtureRequest, aws_credentials: None) -> Iterator[boto3.Session]:
    """A moto account, reached in process or through moto's HTTP server."""
    if request.param == "in-process":
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield boto3.Session(region_name=REGION)
        return
    server = request.getfixturevalue("moto_server")
    endpoint = f"http://{server}"
    # moto's Step Functions interpreter calls the services it integrates on localhost:MOTO_PORT.
    request.getfixturevalue("monkeypatch").setenv("MOTO_PORT", server.rsplit(":", 1)[1])
    settings = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    with urllib.request.urlopen(  # noqa: S310 - the local moto server
        urllib.request.Request(f"{endpoint}/moto-api/config", data=settings), timeout=10
    ) as response:
        assert response.status == 201

    class Remote(boto3.Session):
        def client(self, service: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs["endpoint_url"] = kwargs.get("endpoint_url") or endpoint
            return super().client(service, *args, **kwargs)

    yield Remote(region_name=REGION)


def deliveries(
    session: boto3.Session, pattern: dict[str, Any], target: dict[str, Any], events: dict[str, Any]
) -> dict[str, Any]:
    """Put the rule with its pattern and the target's input transformer (the target itself an
    SQS queue, which moto delivers to), put every event, return what reached it by name."""
    sqs, events_client = session.client("sqs"), session.client("events")
    queue = sqs.create_queue(QueueName="target")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    events_client.put_rule(Name="rule", EventPattern=json.dumps(pattern))
    stand_in = {"Id": target["Id"], "Arn": queue_arn["Attributes"]["QueueArn"]}
    if "InputTransformer" in target:
        stand_in["InputTransformer"] = target["InputTransformer"]
    events_client.put_targets(Rule="rule", Targets=[stand_in])
    reached = {}
    for name, event in events.items():
        assert events_client.put_events(Entries=[event])["FailedEntryCount"] == 0
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        for message in received.get("Messages", []):
            reached[name] = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return reached


def valid(service: str, operation: str, request: dict[str, Any]) -> None:
    model = get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


# --------------------------------------------------------------------------- the release rules


def test_only_an_approved_package_of_this_group_starts_a_release(session: boto3.Session) -> None:
    pattern, target = rule("model-deploy.yaml", "ApprovedPackageRule")
    assert target["Arn"] == f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:{CFG.pipeline.name}-release"
    reached = deliveries(session, pattern, target, PACKAGE_EVENTS)
    assert set(reached) == {"approved"}
    assert reached["approved"]["detail"]["ModelPackageArn"].endswith(f"/{GROUP}/3")
    # Event by event, through moto's matcher (moto has no TestEventPattern).
    matcher = EventPattern.load(json.dumps(pattern))
    for name, event in PACKAGE_EVENTS.items():
        sample = {
            "id": "1", "account": ACCOUNT, "region": REGION, "time": "2026-03-02T09:00:00Z",
            "version": "0", "source": event["Source"], "detail-type": event["DetailType"],
            "resources": event["Resources"], "detail": json.loads(event["Detail"]),
        }  # fmt: skip
        assert matcher.matches_event(sample) is (name == "approved"), name


def test_only_a_rejected_package_of_this_group_starts_the_rollback_with_its_arn(
    session: boto3.Session,
) -> None:
    pattern, target = rule("model-deploy.yaml", "RejectedPackageRule")
    reached = deliveries(session, pattern, target, PACKAGE_EVENTS)
    assert set(reached) == {"rejected"}
    rejected = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3"
    start_build = reached["rejected"]
    assert start_build == {"environmentVariablesOverride": [
        {"name": "REJECTED_PACKAGE_ARN", "value": rejected, "type": "PLAINTEXT"}]}  # fmt: skip
    # The input EventBridge gives CodeBuild is StartBuild's request (projectName from the target).
    valid("codebuild", "StartBuild", {"projectName": f"{CFG.pipeline.name}-rollback-rejected",
                                      **start_build})  # fmt: skip


def test_the_rules_as_cloudformation_creates_them_are_valid_requests() -> None:
    for template, name in (
        ("model-deploy.yaml", "ApprovedPackageRule"),
        ("model-deploy.yaml", "RejectedPackageRule"),
        ("drift-retraining.yaml", "DriftRule"),
        ("model-build.yaml", "PushRule"),
    ):
        pattern, target = rule(template, name)
        valid("events", "PutRule", {"Name": name, "EventPattern": json.dumps(pattern)})
        valid("events", "PutTargets", {"Rule": name, "Targets": [target]})


# --------------------------------------------------------------------------- drift retraining


ALARMS = {
    "drift": alarm_event(f"{names.monitoring_schedule_name(PROD)}-drift"),
    "drift-ok-again": alarm_event(f"{names.monitoring_schedule_name(PROD)}-drift", "OK", "ALARM"),
    "drift-insufficient": alarm_event(
        f"{names.monitoring_schedule_name(PROD)}-drift", "INSUFFICIENT_DATA"
    ),
    "rollback-alarm": alarm_event(names.alarm_name(f"{PROD}-v3-0123abcd", "errors-5xx")),
    "staging-drift": alarm_event(
        f"{names.monitoring_schedule_name(CFG.deploy.stage('staging').endpoint_name)}-drift"
    ),
}


def test_a_prod_data_quality_alarm_alone_retrains_with_a_fresh_data_version(
    session: boto3.Session,
) -> None:
    pattern, target = rule("drift-retraining.yaml", "DriftRule")
    reached = deliveries(session, pattern, target, ALARMS)
    assert set(reached) == {"drift"}
    started = reached["drift"]
    assert started["DataVersion"] == "drift-2026-03-02T09:00:00.000+0000"  # when it fired
    assert started["Reason"] == f"{PROD}-data-quality-drift"
    assert started["Token"].startswith("drift-") and 32 <= len(started["Token"]) <= 128
    valid("stepfunctions", "StartExecution",
          {"stateMachineArn": target["Arn"], "input": json.dumps(started)})  # fmt: skip


def state_machine(session: boto3.Session) -> str:
    template = load_template(INFRA / "drift-retraining.yaml")
    resolver = Resolver(template, ACCOUNT, REGION)
    properties = template["Resources"]["RetrainingStarter"]["Properties"]
    text = json.dumps(properties["Definition"])
    for key, value in properties["DefinitionSubstitutions"].items():
        text = text.replace(f"${{{key}}}", resolver.value(value))
    client = session.client("stepfunctions")
    created = client.create_state_machine(
        name=resolver.value(properties["StateMachineName"]),
        definition=text,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/{CFG.pipeline.name}-retraining-start",
    )
    return str(created["stateMachineArn"])


def run(session: boto3.Session, machine: str, payload: dict[str, Any]) -> dict[str, Any]:
    client = session.client("stepfunctions")
    execution = client.start_execution(  # named as EventBridge names them (moto needs one)
        stateMachineArn=machine, name=payload["Token"], input=json.dumps(payload)
    )
    for _ in range(200):  # bounded: 10 s
        described = client.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.05)
    raise AssertionError("the state machine did not finish within 10 s")


def published_pipeline(session: boto3.Session, cfg: Config) -> None:
    definition = {"Version": "2020-12-01", "Steps": [],
                  "Parameters": [{"Name": DATA_VERSION_PARAMETER, "Type": "String",
                                  "DefaultValue": "initial"}]}  # fmt: skip
    session.client("sagemaker").create_pipeline(
        PipelineName=cfg.pipeline.name,
        PipelineDefinition=json.dumps(definition),
        RoleArn=cfg.aws.role_arn,
    )


def executions(sagemaker: Any) -> int:
    listed = sagemaker.list_pipeline_executions(PipelineName=CFG.pipeline.name)
    return len(listed["PipelineExecutionSummaries"])


def set_status(execution_arn: str, status: str) -> None:
    """moto finishes executions at once; SageMaker's would run for a while."""
    backend = sagemaker_backends[ACCOUNT][REGION].pipelines[CFG.pipeline.name]
    backend.pipeline_executions[execution_arn].pipeline_execution_status = status


def test_the_state_machine_starts_one_retraining_with_the_events_data_version(
    session: boto3.Session,
) -> None:
    published_pipeline(session, CFG)
    machine = state_machine(session)
    pattern, target = rule("drift-retraining.yaml", "DriftRule")
    started = deliveries(session, pattern, target, {"drift": ALARMS["drift"]})["drift"]

    first = run(session, machine, started)
    assert first["status"] == "SUCCEEDED", first
    sagemaker = session.client("sagemaker")
    (execution,) = sagemaker.list_pipeline_executions(PipelineName=CFG.pipeline.name)[
        "PipelineExecutionSummaries"
    ]
    parameters = sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution["PipelineExecutionArn"]
    )["PipelineParameters"]
    assert parameters == [{"Name": DATA_VERSION_PARAMETER, "Value": started["DataVersion"]}]
    assert f"alarm {started['Reason']}" in execution["PipelineExecutionDescription"]

    # The execution still runs (moto finishes them at once: SageMaker's would be Executing):
    # the next alarm, or a scheduled run's, starts nothing.
    for status, token, expected in (("Executing", "f", 1), ("Succeeded", "e", 2)):
        set_status(execution["PipelineExecutionArn"], status)
        done = run(session, machine, {**started, "Token": "drift-" + token * 36})
        assert done["status"] == "SUCCEEDED", done
        assert executions(sagemaker) == expected, status


def test_the_state_machines_start_request_is_valid() -> None:
    """What StartRetraining sends, its input substituted, against SageMaker's service model."""
    template = load_template(INFRA / "drift-retraining.yaml")
    states = template["Resources"]["RetrainingStarter"]["Properties"]["Definition"]["States"]
    parameters = states["StartRetraining"]["Parameters"]
    payload = {
        "DataVersion": "drift-2026-03-02T09:00:00Z",
        "Reason": "a",
        "Token": "drift-" + "a" * 36,
    }
    request = {
        "PipelineName": CFG.pipeline.name,
        "PipelineParameters": [{"Name": p["Name"], "Value": payload["DataVersion"]}
                               for p in parameters["PipelineParameters"]],
        "PipelineExecutionDescription": "Drift retraining, alarm a",
        "ClientRequestToken": payload["Token"],
    }  # fmt: skip
    assert parameters["PipelineParameters"] == [
        {"Name": DATA_VERSION_PARAMETER, "Value.$": "$.DataVersion"}
    ]
    valid("sagemaker", "StartPipelineExecution", request)
    listing = dict(states["LatestExecution"]["Parameters"], PipelineName=CFG.pipeline.name)
    valid("sagemaker", "ListPipelineExecutions", listing)


def test_scheduled_retraining_through_the_state_machine_waits_for_a_running_one(
    session: boto3.Session,
) -> None:
    """The template's optional schedule: its Input, once Scheduler substituted its context
    attributes, is a valid start of the state machine, which starts nothing while a drift
    retraining runs and starts the scheduled one after."""
    template = load_template(INFRA / "drift-retraining.yaml")
    resolver = Resolver(template, ACCOUNT, REGION, {"ScheduleExpression": "cron(0 3 ? * MON *)"})
    schedule = resolved(resolver, template["Resources"]["RetrainingSchedule"]["Properties"])
    schedule["Target"]["RoleArn"] = f"arn:aws:iam::{ACCOUNT}:role/{CFG.pipeline.name}-schedule"
    valid("scheduler", "CreateSchedule", schedule)
    arn = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{schedule['Name']}"
    payload = json.loads(
        schedule["Target"]["Input"]
        .replace("<aws.scheduler.scheduled-time>", "2026-03-02T03:00:00Z")
        .replace("<aws.scheduler.schedule-arn>", arn)
    )
    assert payload["DataVersion"] == "scheduled-2026-03-02T03:00:00Z"
    assert 32 <= len(payload["Token"]) <= 128

    published_pipeline(session, CFG)
    machine = state_machine(session)
    assert run(session, machine, {**payload, "Token": "drift-" + "d" * 36})["status"] == "SUCCEEDED"
    sagemaker = session.client("sagemaker")
    (drift,) = sagemaker.list_pipeline_executions(PipelineName=CFG.pipeline.name)[
        "PipelineExecutionSummaries"
    ]
    backend = sagemaker_backends[ACCOUNT][REGION].pipelines[CFG.pipeline.name]
    backend.pipeline_executions[
        drift["PipelineExecutionArn"]
    ].pipeline_execution_status = "Executing"
    assert run(session, machine, payload)["status"] == "SUCCEEDED"
    assert executions(sagemaker) == 1  # the scheduled run waited for the drift one


# --------------------------------------------------------------------------- make schedule


def with_starter(cfg: Config, arn: str, **schedule: Any) -> Config:
    update = {"starter_arn": arn, **schedule}
    return cfg.model_copy(update={"schedule": cfg.schedule.model_copy(update=update)})


def test_make_schedule_through_the_starter_never_overlaps_a_running_execution(
    session: boto3.Session,
) -> None:
    """With schedule.starter_arn, `make schedule` targets the retraining state machine with the
    template's own schedule Input; resolved as Scheduler resolves it, the machine starts the
    pipeline once, and starts nothing while that execution runs."""
    published_pipeline(session, CFG)
    machine = state_machine(session)
    cfg = with_starter(CFG, machine)
    result = put_schedule(cfg, session)
    described = session.client("scheduler").get_schedule(Name=result.name)
    target = described["Target"]
    assert target["Arn"] == machine
    valid("scheduler", "CreateSchedule", {**schedule_request(cfg, machine), "Name": result.name})

    template = load_template(INFRA / "drift-retraining.yaml")
    own = template["Resources"]["RetrainingSchedule"]["Properties"]["Target"]["Input"]
    assert json.loads(target["Input"]) == json.loads(own) == starter_input()

    arn = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{result.name}"
    payload = json.loads(
        target["Input"].replace(SCHEDULED_TIME, "2026-03-02T03:00:00Z").replace(SCHEDULE_ARN, arn)
    )
    assert run(session, machine, payload)["status"] == "SUCCEEDED"
    sagemaker = session.client("sagemaker")
    (started,) = sagemaker.list_pipeline_executions(PipelineName=CFG.pipeline.name)[
        "PipelineExecutionSummaries"
    ]
    set_status(started["PipelineExecutionArn"], "Executing")
    later = json.loads(json.dumps(payload).replace("2026-03-02", "2026-03-09"))
    assert run(session, machine, later)["status"] == "SUCCEEDED"
    assert executions(sagemaker) == 1  # the next scheduled run waited


def test_make_schedule_refuses_a_starter_it_cannot_use(session: boto3.Session) -> None:
    published_pipeline(session, CFG)
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{CFG.pipeline.name}-retraining-start"
    with pytest.raises(ScheduleError, match="does not exist; deploy infra/drift-retraining.yaml"):
        put_schedule(with_starter(CFG, missing), session)
    elsewhere = missing.replace(f":{REGION}:", ":ap-south-1:")
    with pytest.raises(ScheduleError, match=f"is in ap-south-1, but the pipeline runs in {REGION}"):
        put_schedule(with_starter(CFG, elsewhere), session)
    assert session.client("scheduler").list_schedules()["Schedules"] == []


def test_a_starter_with_fixed_parameters_is_a_config_error(tmp_path: Any) -> None:
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{CFG.pipeline.name}-retraining-start"
    path = tmp_path / "c.yaml"
    path.write_text(
        f"extends: {PIPELINE_CONFIG}\n"
        f"schedule: {{starter_arn: '{arn}', parameters: {{TrainInstanceCount: 2}}}}\n"
    )
    with pytest.raises(ConfigError, match=r"passes only DataVersion.*TrainInstanceCount"):
        load_config(path, env={})
    path.write_text(f"extends: {PIPELINE_CONFIG}\nschedule: {{starter_arn: 'arn:aws:states:x'}}\n")
    with pytest.raises(ConfigError, match="starter_arn"):
        load_config(path, env={})
