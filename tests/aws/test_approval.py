"""`approve|reject --aws`: the Approval callback answered from SQS, against moto.

moto 5.2.5 has SQS, S3 and model packages but not SendPipelineExecutionStepSuccess/Failure, so
the callback answers go to a botocore Stubber, which checks each request against SageMaker's
API model and the exact parameters we expect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from config import Config
from config.paths import ROOT
from pipelines import approval, cli
from pipelines.approval import (
    ApprovalError,
    CallbackMessage,
    Clients,
    Decision,
    answer_on_aws,
    request_token,
)
from steps import names as approval_message

PIPELINE_YAML = ROOT / "configs" / "pipeline.yaml"
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/tabular-xgboost/execution/abc123"
OTHER = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/tabular-xgboost/execution/zzz999"
TOKEN, OTHER_TOKEN = "Tok0123456", "Tok9876543"
RUNS = "s3://tabular-xgboost-artifacts-123456789012/tabular-xgboost/runs/abc123"
REPORT = {
    "binary_classification_metrics": {
        "auc": {"value": 0.912, "standard_deviation": 0.01},
        "accuracy": {"value": 0.85, "standard_deviation": 0.02},
    },
    "evaluation_rows": 1500,
}
VIOLATIONS = {
    "violations": [
        {
            "feature_name": "x1",
            "constraint_check_type": "data_type_check",
            "description": "Data type mismatch",
        }
    ]
}


@dataclass
class World:
    session: boto3.Session
    clients: Clients
    stub: Stubber
    package_arn: str
    queue_url: str
    dlq_url: str


def callback_body(execution: str, token: str, package: str, status: str = "Executing") -> str:
    return json.dumps(
        {
            "token": token,
            "pipelineExecutionArn": execution,
            "arguments": {
                approval_message.MODEL_PACKAGE_ARN: package,
                approval_message.METRIC_NAME: "auc",
                approval_message.METRIC_VALUE: 0.912,
                approval_message.METRIC_THRESHOLD: 0.7,
            },
            "status": status,
        }
    )


def put_json(s3: Any, uri: str, document: dict[str, Any]) -> None:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())


@pytest.fixture
def world(aws_credentials: None, base_config: Config) -> Iterator[World]:
    with mock_aws():
        session = boto3.Session(region_name=base_config.aws.region)
        s3, sqs = session.client("s3"), session.client("sqs")
        sagemaker = session.client("sagemaker")
        s3.create_bucket(Bucket=base_config.aws.bucket)
        put_json(s3, f"{RUNS}/Evaluate/evaluation/evaluation.json", REPORT)
        put_json(s3, f"{RUNS}/DataQuality/results/constraint_violations.json", VIOLATIONS)

        name = base_config.approval.queue_url.rsplit("/", 1)[-1]
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
        queue_url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})[
            "QueueUrl"
        ]
        assert queue_url == base_config.approval.queue_url

        group = base_config.registry.model_package_group
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
        package_arn = sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"{RUNS}/Evaluate/evaluation/evaluation.json",
                    }
                },
                "ModelDataQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"{RUNS}/DataQuality/results/statistics.json",
                    },
                    "Constraints": {
                        "ContentType": "application/json",
                        "S3Uri": f"{RUNS}/DataQuality/results/constraints.json",
                    },
                },
            },
        )["ModelPackageArn"]

        callbacks = session.client("sagemaker")
        stub = Stubber(callbacks)
        clients = Clients(sqs=sqs, s3=s3, registry=sagemaker, callbacks=callbacks)
        with stub:
            yield World(session, clients, stub, package_arn, queue_url, dlq_url)


def send(world: World, body: str) -> None:
    world.clients.sqs.send_message(QueueUrl=world.queue_url, MessageBody=body)


def bodies(world: World, url: str | None = None) -> list[str]:
    """Every message body now visible on the queue (made visible again afterwards)."""
    sqs = world.clients.sqs
    found = sqs.receive_message(
        QueueUrl=url or world.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", [])
    return sorted(m["Body"] for m in found)


def package(world: World) -> dict[str, Any]:
    described: dict[str, Any] = world.clients.registry.describe_model_package(
        ModelPackageName=world.package_arn
    )
    return described


def test_approve_answers_the_step_sets_the_package_and_deletes_only_its_message(
    world: World, base_config: Config
) -> None:
    mine = callback_body(EXECUTION, TOKEN, world.package_arn)
    others = callback_body(OTHER, OTHER_TOKEN, world.package_arn)
    for body in (mine, others, "not json at all"):
        send(world, body)
    decision = Decision(approved=True, reviewer="alice", reason="metrics and drift look fine")
    world.stub.add_response(
        "send_pipeline_execution_step_success",
        {"PipelineExecutionArn": EXECUTION},
        {
            "CallbackToken": TOKEN,
            "OutputParameters": [
                {"Name": approval_message.DECISION, "Value": approval_message.APPROVED},
                {"Name": approval_message.REVIEWER, "Value": "alice"},
                {"Name": approval_message.REASON, "Value": "metrics and drift look fine"},
            ],
            "ClientRequestToken": request_token(TOKEN, decision),
        },
    )

    result = answer_on_aws(base_config, "abc123", decision, world.clients, wait_seconds=0)

    world.stub.assert_no_pending_responses()
    assert (result.answered, result.messages_deleted, result.left_on_queue) == (True, 1, 2)
    assert result.unparseable == 1
    described = package(world)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "alice: metrics and drift look fine"
    assert bodies(world) == sorted([others, "not json at all"])
    shown = "\n".join(result.evidence)
    assert "auc        0.9120 ± 0.0100" in shown and "on 1500 test rows" in shown
    assert "1 constraint violation(s)" in shown and "x1: data_type_check" in shown


def test_reject_fails_the_step_with_the_reviewers_reason(world: World, base_config: Config) -> None:
    send(world, callback_body(EXECUTION, TOKEN, world.package_arn))
    decision = Decision(approved=False, reviewer="bob", reason="drift on x1")
    world.stub.add_response(
        "send_pipeline_execution_step_failure",
        {"PipelineExecutionArn": EXECUTION},
        {
            "CallbackToken": TOKEN,
            "FailureReason": "Rejected by bob: drift on x1",
            "ClientRequestToken": request_token(TOKEN, decision),
        },
    )

    result = answer_on_aws(base_config, EXECUTION, decision, world.clients, wait_seconds=0)

    world.stub.assert_no_pending_responses()
    assert result.messages_deleted == 1 and bodies(world) == []
    described = package(world)
    assert described["ModelApprovalStatus"] == "Rejected"
    assert described["ApprovalDescription"] == "bob: drift on x1"


def test_unknown_execution_answers_nothing_and_deletes_nothing(
    world: World, base_config: Config
) -> None:
    others = callback_body(OTHER, OTHER_TOKEN, world.package_arn)
    send(world, others)
    send(world, '{"token": "x"}')
    decision = Decision(approved=True, reviewer="alice", reason="ok")
    with pytest.raises(ApprovalError, match=r"no pending approval for execution abc123 .*1 unp"):
        answer_on_aws(base_config, "abc123", decision, world.clients, wait_seconds=0)
    world.stub.assert_no_pending_responses()  # nothing was sent to SageMaker
    assert bodies(world) == sorted([others, '{"token": "x"}'])
    assert package(world)["ModelApprovalStatus"] == "PendingManualApproval"


def test_unparseable_message_stays_until_the_redrive_policy_moves_it(
    world: World, base_config: Config
) -> None:
    send(world, "garbage")
    decision = Decision(approved=True, reviewer="alice", reason="ok")
    for _ in range(3):  # maxReceiveCount 3: every scan receives it once and lets it go
        with pytest.raises(ApprovalError):
            answer_on_aws(base_config, "abc123", decision, world.clients, wait_seconds=0)
    assert bodies(world) == []
    assert bodies(world, world.dlq_url) == ["garbage"]


def test_dry_run_shows_the_evidence_and_answers_nothing(world: World, base_config: Config) -> None:
    mine = callback_body(EXECUTION, TOKEN, world.package_arn)
    send(world, mine)
    decision = Decision(approved=True, reviewer="alice", reason="ok")
    result = answer_on_aws(
        base_config, "abc123", decision, world.clients, wait_seconds=0, dry_run=True
    )
    assert not result.answered and result.messages_deleted == 0
    assert any("model package" in line for line in result.evidence)
    assert bodies(world) == [mine]
    assert package(world)["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_stopping_execution_can_be_rejected_but_not_approved(
    world: World, base_config: Config
) -> None:
    send(world, callback_body(EXECUTION, TOKEN, world.package_arn))
    send(world, callback_body(EXECUTION, TOKEN, world.package_arn, status="Stopping"))
    approve = Decision(approved=True, reviewer="alice", reason="ok")
    with pytest.raises(ApprovalError, match="being stopped"):
        answer_on_aws(base_config, "abc123", approve, world.clients, wait_seconds=0)
    reject = Decision(approved=False, reviewer="alice", reason="stopped")
    world.stub.add_response(
        "send_pipeline_execution_step_failure",
        {"PipelineExecutionArn": EXECUTION},
        {
            "CallbackToken": TOKEN,
            "FailureReason": "Rejected by alice: stopped",
            "ClientRequestToken": request_token(TOKEN, reject),
        },
    )
    result = answer_on_aws(base_config, "abc123", reject, world.clients, wait_seconds=0)
    assert result.messages_deleted == 2 and bodies(world) == []


def test_cli_approve_aws(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(approval.Clients, "for_config", classmethod(lambda cls, cfg: world.clients))
    send(world, callback_body(EXECUTION, TOKEN, world.package_arn))
    world.stub.add_response(
        "send_pipeline_execution_step_success", {"PipelineExecutionArn": EXECUTION}
    )
    argv = ["approve", "abc123", "--aws", "--reviewer", "carol", "--reason", "good"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "approved the Approval step" in out and "Approved" in out and "auc" in out
    assert cli.main(argv) == 2  # answered: nothing pending any more
    assert "no pending approval" in capsys.readouterr().err


def test_parse_refuses_what_is_not_an_approval_callback() -> None:
    for body in ("", "[]", '{"token": "t"}', '{"token": "t", "pipelineExecutionArn": "x"}'):
        with pytest.raises(ApprovalError):
            CallbackMessage.parse(body)
    parsed = CallbackMessage.parse(callback_body(EXECUTION, TOKEN, "arn:p"))
    assert parsed.is_for("abc123") and parsed.is_for(EXECUTION) and not parsed.is_for("abc")


def test_decision_fits_sagemakers_limits() -> None:
    decision = Decision(approved=False, reviewer="r", reason="x" * 2000)
    assert len(decision.failure_reason) == 256
    assert len(decision.approval_description) == 1024
    assert 32 <= len(request_token(TOKEN, decision)) <= 128
