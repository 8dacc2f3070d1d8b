"""The Approval step's answer, locally and on AWS: `approve|reject <execution> [--aws]`.

A reviewer's Decision maps to the same things on both sides: the callback's output parameters
(or its failure reason) and the model package's approval status. Locally `pipelines.local`
applies it to the local registry and queue; on AWS `answer_on_aws` reads the pending callback
message from the SQS queue the CallbackStep sends to, shows the evidence (package, evaluation
report, data-quality result), answers the step, sets the package's status and only then deletes
the message.

Messages that cannot be parsed or that belong to another execution are never deleted here: they
become visible again at once, and the queue's redrive policy moves a message that keeps failing
to the dead-letter queue (infra/template.yaml).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from config import Config
from config.queue_url import parse_queue_url
from pipelines.errors import UsageError
from steps import names as approval_message
from tabular import names as report_layout
from tabular.contract import (
    CALLBACK_ARGUMENTS,
    CALLBACK_EXECUTION_ARN,
    CALLBACK_STATUS,
    CALLBACK_TOKEN,
    VIOLATIONS_FILE,
    ApprovalStatus,
    StepStatus,
)

# SageMaker's limits (API reference): FailureReason 256, ApprovalDescription 1024 characters.
FAILURE_REASON_MAX = 256
APPROVAL_DESCRIPTION_MAX = 1024
SQS_BATCH = 10
# How long a scan holds the messages it received before answering or releasing them.
VISIBILITY_SECONDS = 120
MAX_RECEIVES = 100  # receive calls per scan: at most 1000 messages looked at
VIOLATIONS_SHOWN = 10


class ApprovalError(UsageError):
    """The answer cannot be given; the message names the execution, the queue and the fix."""


@dataclass(frozen=True)
class Decision:
    """A reviewer's answer, and what it sets on the Approval step and the model package."""

    approved: bool
    reviewer: str
    reason: str

    @property
    def output_parameters(self) -> dict[str, str]:
        """The CallbackStep outputs an approval sets (steps/approval.py names them)."""
        return {
            approval_message.DECISION: approval_message.APPROVED,
            approval_message.REVIEWER: self.reviewer,
            approval_message.REASON: self.reason,
        }

    @property
    def failure_reason(self) -> str:
        """Why the Approval step, and so the run, failed."""
        return f"Rejected by {self.reviewer}: {self.reason}"[:FAILURE_REASON_MAX]

    @property
    def package_status(self) -> str:
        return ApprovalStatus.APPROVED if self.approved else ApprovalStatus.REJECTED

    @property
    def approval_description(self) -> str:
        return f"{self.reviewer}: {self.reason}"[:APPROVAL_DESCRIPTION_MAX]

    @property
    def verb(self) -> str:
        return "approved" if self.approved else "rejected"


@dataclass(frozen=True)
class CallbackMessage:
    """The body SageMaker sends to the CallbackStep's queue."""

    token: str
    execution_arn: str
    arguments: dict[str, Any]
    status: str

    @property
    def execution_id(self) -> str:
        return self.execution_arn.rsplit("/", 1)[-1]

    @property
    def model_package_arn(self) -> str:
        return str(self.arguments[approval_message.MODEL_PACKAGE_ARN])

    def is_for(self, execution: str) -> bool:
        """`execution` is the execution's ARN or its id (the ARN's last part)."""
        return execution in (self.execution_arn, self.execution_id)

    @classmethod
    def parse(cls, body: str) -> CallbackMessage:
        """Parse an SQS message body; raise ApprovalError if it is not an Approval callback."""
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ApprovalError(f"not JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise ApprovalError("not a JSON object")
        token, arn = payload.get(CALLBACK_TOKEN), payload.get(CALLBACK_EXECUTION_ARN)
        # A callback waiting for its answer is Executing; Stopping when its run is being stopped.
        arguments = payload.get(CALLBACK_ARGUMENTS)
        status = payload.get(CALLBACK_STATUS, StepStatus.EXECUTING)
        if not isinstance(token, str) or not token:
            raise ApprovalError("no callback token")
        if not isinstance(arn, str) or "/execution/" not in arn:
            raise ApprovalError("no pipelineExecutionArn")
        if not isinstance(arguments, dict) or approval_message.MODEL_PACKAGE_ARN not in arguments:
            raise ApprovalError(f"no {approval_message.MODEL_PACKAGE_ARN} in its arguments")
        return cls(token=token, execution_arn=arn, arguments=arguments, status=str(status))


@dataclass
class _Received:
    receipt_handle: str
    message: CallbackMessage | None  # None: could not be parsed


@dataclass(frozen=True)
class Clients:
    """The AWS clients the loop uses. `callbacks` answers the step; it is the same SageMaker
    client as `registry` on AWS (tests stub it: moto has no SendPipelineExecutionStep*)."""

    sqs: Any
    s3: Any
    registry: Any
    callbacks: Any

    @classmethod
    def for_config(cls, cfg: Config) -> Clients:
        from pipelines import aws

        session = aws.session(cfg)
        sagemaker = aws.client(session, "sagemaker")
        # The queue's own region and, for a VPC or local endpoint, its host: a client of another
        # region's (or the public) endpoint would not find it.
        queue = parse_queue_url(cfg.approval.queue_url)
        return cls(
            sqs=aws.client(session, "sqs", region=queue.region, endpoint=queue.endpoint),
            s3=aws.client(session, "s3"),
            registry=sagemaker,
            callbacks=sagemaker,
        )


@dataclass
class AwsAnswer:
    execution_arn: str
    model_package_arn: str
    evidence: list[str]
    messages_deleted: int
    left_on_queue: int
    unparseable: int
    answered: bool


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ApprovalError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def _read_json(s3: Any, uri: str, missing_ok: bool = False) -> dict[str, Any] | None:
    bucket, key = _split_s3(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if missing_ok and exc.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
            return None
        raise ApprovalError(f"cannot read {uri}: {exc}") from None
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ApprovalError(f"{uri} is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ApprovalError(f"{uri} is not a JSON object")
    return document


def format_report(report: dict[str, Any]) -> list[str]:
    """evaluation.json (SageMaker's model-quality layout) as `metric value ± sd` lines."""
    lines = []
    for key in report_layout.REPORT_KEYS.values():
        for name, entry in sorted((report.get(key) or {}).items()):
            value = entry.get(report_layout.VALUE_KEY)
            deviation = entry.get(report_layout.STANDARD_DEVIATION_KEY)
            spread = f" ± {deviation:.4f}" if isinstance(deviation, int | float) else ""
            shown = f"{value:.4f}" if isinstance(value, int | float) else str(value)
            lines.append(f"    {name:<10} {shown}{spread}")
    if report_layout.ROWS_KEY in report:
        lines.append(f"    on {report[report_layout.ROWS_KEY]} test rows")
    return lines or ["    (the report holds no metrics)"]


def format_violations(violations: dict[str, Any] | None, statistics_uri: str) -> list[str]:
    """The DataQuality step's drift result, from constraint_violations.json beside its baseline."""
    if violations is None:
        return [
            "    no drift check in this run (first baseline of the group, or skipped); "
            f"baseline statistics {statistics_uri}"
        ]
    found = violations.get("violations") or []
    if not found:
        return ["    drift check passed: no constraint violations"]
    lines = [f"    {len(found)} constraint violation(s):"]
    for item in found[:VIOLATIONS_SHOWN]:
        lines.append(
            f"      {item.get('feature_name', '?')}: {item.get('constraint_check_type', '?')}: "
            f"{item.get('description', '')}"
        )
    if len(found) > VIOLATIONS_SHOWN:
        lines.append(f"      ... and {len(found) - VIOLATIONS_SHOWN} more")
    return lines


def evidence(clients: Clients, message: CallbackMessage) -> list[str]:
    """What the reviewer sees: the package, its metrics and its data-quality result."""
    arn = message.model_package_arn
    try:
        package = clients.registry.describe_model_package(ModelPackageName=arn)
    except ClientError as exc:
        raise ApprovalError(f"cannot describe model package {arn}: {exc}") from None
    args = message.arguments
    lines = [
        f"execution      {message.execution_arn}",
        f"model package  {arn}",
        f"  status       {package.get('ModelApprovalStatus')}",
        f"  gate         {args.get(approval_message.METRIC_NAME)} = "
        f"{args.get(approval_message.METRIC_VALUE)} (threshold "
        f"{args.get(approval_message.METRIC_THRESHOLD)})",
    ]
    metrics = package.get("ModelMetrics") or {}
    report_uri = ((metrics.get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri")
    if not report_uri:
        raise ApprovalError(
            f"model package {arn} has no evaluation report (ModelMetrics.ModelQuality."
            "Statistics); it was not registered by this pipeline's Register step"
        )
    report = _read_json(clients.s3, report_uri)
    assert report is not None  # missing_ok is False
    lines += [f"  evaluation   {report_uri}", *format_report(report)]
    statistics_uri = ((metrics.get("ModelDataQuality") or {}).get("Statistics") or {}).get("S3Uri")
    if statistics_uri:
        violations_uri = f"{statistics_uri.rsplit('/', 1)[0]}/{VIOLATIONS_FILE}"
        violations = _read_json(clients.s3, violations_uri, missing_ok=True)
        lines += ["  data quality", *format_violations(violations, statistics_uri)]
    else:
        lines.append("  data quality (no data-quality report on the package)")
    return lines


def request_token(token: str, decision: Decision) -> str:
    """A ClientRequestToken (32-128 characters) that makes a repeated answer idempotent."""
    return hashlib.sha256(f"{token}:{decision.verb}".encode()).hexdigest()


def answer_callback(callbacks: Any, token: str, decision: Decision) -> None:
    """SendPipelineExecutionStepSuccess with the outputs, or ...Failure with the reason."""
    if decision.approved:
        callbacks.send_pipeline_execution_step_success(
            CallbackToken=token,
            OutputParameters=[
                {"Name": name, "Value": value} for name, value in decision.output_parameters.items()
            ],
            ClientRequestToken=request_token(token, decision),
        )
    else:
        callbacks.send_pipeline_execution_step_failure(
            CallbackToken=token,
            FailureReason=decision.failure_reason,
            ClientRequestToken=request_token(token, decision),
        )


def set_package_status(registry: Any, arn: str, decision: Decision) -> None:
    registry.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus=decision.package_status,
        ApprovalDescription=decision.approval_description,
    )


def _receive_all(sqs: Any, queue_url: str, wait_seconds: int) -> list[_Received]:
    """Receive every visible message (each stays invisible while this scan holds it)."""
    held: list[_Received] = []
    for _ in range(MAX_RECEIVES):
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=SQS_BATCH,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=VISIBILITY_SECONDS,
        )
        batch = response.get("Messages", [])
        if not batch:
            break
        for raw in batch:
            try:
                parsed: CallbackMessage | None = CallbackMessage.parse(raw.get("Body", ""))
            except ApprovalError:
                parsed = None
            held.append(_Received(raw["ReceiptHandle"], parsed))
    return held


def _release(sqs: Any, queue_url: str, received: list[_Received]) -> None:
    """Make messages visible again now, for other reviewers (and, if they keep failing, for
    the redrive policy that moves them to the dead-letter queue)."""
    for start in range(0, len(received), SQS_BATCH):
        chunk = received[start : start + SQS_BATCH]
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r.receipt_handle, "VisibilityTimeout": 0}
                for i, r in enumerate(chunk)
            ],
        )


@contextmanager
def _holding(sqs: Any, queue_url: str, wait_seconds: int) -> Iterator[list[_Received]]:
    held = _receive_all(sqs, queue_url, wait_seconds)
    try:
        yield held
    finally:
        _release(sqs, queue_url, held)


def answer_on_aws(
    cfg: Config,
    execution: str,
    decision: Decision,
    clients: Clients | None = None,
    wait_seconds: int = 1,
    dry_run: bool = False,
) -> AwsAnswer:
    """Answer the Approval step of `execution` (ARN or id) from the SQS queue.

    With `dry_run` only the evidence is gathered: nothing is answered or deleted.
    """
    clients = clients or Clients.for_config(cfg)
    queue_url = cfg.approval.queue_url
    with _holding(clients.sqs, queue_url, wait_seconds) as held:
        mine = [r for r in held if r.message is not None and r.message.is_for(execution)]
        unparseable = sum(1 for r in held if r.message is None)
        if not mine:
            raise ApprovalError(
                f"no pending approval for execution {execution} on {queue_url} "
                f"({len(held)} other message(s) left on the queue, {unparseable} unparseable); "
                "check the execution id (`aws sagemaker list-pipeline-executions`) and that its "
                "Approval step is running"
            )
        message = mine[0].message
        assert message is not None
        tokens = {r.message.token for r in mine if r.message is not None}
        if len(tokens) > 1:
            raise ApprovalError(
                f"execution {execution} has {len(tokens)} different pending callbacks on "
                f"{queue_url}; answer each with `aws sagemaker "
                "send-pipeline-execution-step-success|failure --callback-token ...`"
            )
        stopping = any(
            r.message is not None and r.message.status != StepStatus.EXECUTING for r in mine
        )
        if stopping and decision.approved and not dry_run:
            raise ApprovalError(
                f"execution {execution} is being stopped; it cannot be approved (reject it to "
                "let the stop finish)"
            )
        shown = evidence(clients, message)
        if dry_run:
            return AwsAnswer(
                execution_arn=message.execution_arn,
                model_package_arn=message.model_package_arn,
                evidence=shown,
                messages_deleted=0,
                left_on_queue=len(held),
                unparseable=unparseable,
                answered=False,
            )
        answer_callback(clients.callbacks, message.token, decision)
        set_package_status(clients.registry, message.model_package_arn, decision)
        for received in mine:  # the answered token's messages, duplicates included
            clients.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=received.receipt_handle)
            held.remove(received)
        return AwsAnswer(
            execution_arn=message.execution_arn,
            model_package_arn=message.model_package_arn,
            evidence=shown,
            messages_deleted=len(mine),
            left_on_queue=len(held),
            unparseable=unparseable,
            answered=True,
        )
