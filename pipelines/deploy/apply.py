"""The only module of deploy that talks to AWS: read what is live, apply, wait, verify, undo.

It is long on purpose: every AWS call of deploy is here and nowhere else (the rest of
pipelines/deploy builds requests and plans as data, tested without AWS).

Clients come from pipelines/aws.py (the config's region, standard retries for throttling and
transient faults). On top of those retries, calls that SageMaker or Application Auto Scaling may
refuse for a short while after the resource they name was created (eventual consistency: a new
endpoint config "could not be found", a new scalable target is "not registered") are retried
with a bounded wait. The verdict on an update is the endpoint as DescribeEndpoint shows it once
it settles, never the API's answer: InService on another config means SageMaker rolled the
update back.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from config import Config
from pipelines import aws
from pipelines.deploy import history, names, release, requests, show
from pipelines.deploy.deployment import (
    AUTOSCALING,
    CREATE,
    IN_SERVICE,
    TIME_FORMAT,
    UNCHANGED,
    UPDATE,
    Call,
    DeployFailed,
    Deployment,
    DeployRefused,
    Live,
)
from pipelines.deploy.package import Package, PackageRefused, package_arn
from pipelines.deploy.plan import ALARM, RolloutPlan
from pipelines.deploy.release import LoadResult
from pipelines.deploy.requests import Target
from pipelines.deploy.smoke import SmokeResult, SmokeSample, SmokeSampleError, compare
from tabular.contract import (
    ApprovalStatus,
    EndpointStatus,
    InferenceExperimentStatus,
    ScheduleStatus,
)

SETTLED = frozenset(
    {
        IN_SERVICE,
        EndpointStatus.FAILED,
        EndpointStatus.UPDATE_ROLLBACK_FAILED,
        EndpointStatus.OUT_OF_SERVICE,
    }
)
MONITOR_SETTLED = frozenset(
    {ScheduleStatus.SCHEDULED, ScheduleStatus.STOPPED, ScheduleStatus.FAILED}
)
EXPERIMENT_ENDED = (InferenceExperimentStatus.COMPLETED, InferenceExperimentStatus.CANCELLED)
EXPERIMENT_SETTLED = frozenset(
    {InferenceExperimentStatus.RUNNING, InferenceExperimentStatus.CREATED, *EXPERIMENT_ENDED}
)
NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException", "NoSuchKey",
                             "404", "NotFound", "ObjectNotFoundException"})  # fmt: skip
EVENTUAL_ATTEMPTS = 8
EVENTUAL_FIRST_DELAY = 2.0
CONFIRM_POLLS = 3  # InService on the old config right after UpdateEndpoint: look again first
ASYNC_POLL_SECONDS = 5.0
LIVE_TAGS = (names.PACKAGE_TAG, names.VERSION_TAG, names.CONFIG_TAG, names.BY_TAG, names.AT_TAG)
MONITORING_MARKER = f"{names.TAG_PREFIX}monitoring-schedule"
EXPERIMENT_MARKER = f"{names.TAG_PREFIX}shadow-experiment"
Out = Callable[[str], None]


@dataclass(frozen=True)
class Clients:
    """The AWS clients deploy uses, all from one session in the config's region."""

    sagemaker: Any
    runtime: Any
    cloudwatch: Any
    autoscaling: Any
    s3: Any
    sts: Any
    sns: Any = None

    @classmethod
    def for_session(cls, session: boto3.Session) -> Clients:
        return cls(
            sagemaker=aws.client(session, "sagemaker"),
            runtime=aws.client(session, "sagemaker-runtime"),
            cloudwatch=aws.client(session, "cloudwatch"),
            autoscaling=aws.client(session, "application-autoscaling"),
            s3=aws.client(session, "s3"),
            sts=aws.client(session, "sts"),
            sns=aws.client(session, "sns"),
        )

    @classmethod
    def for_config(cls, cfg: Config) -> Clients:
        return cls.for_session(aws.session(cfg))

    def of(self, service: str) -> Any:
        return {
            "sagemaker": self.sagemaker,
            "cloudwatch": self.cloudwatch,
            "application-autoscaling": self.autoscaling,
        }[service]


@dataclass
class Clock:
    """Time as deploy sees it; tests pass one that does not sleep."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def not_found(error: ClientError) -> bool:
    """SageMaker answers a missing endpoint, config, model or package with ValidationException
    ("Could not find ...", "... does not exist", "... not found")."""
    if _code(error) in NOT_FOUND_CODES:
        return True
    text = _message(error).lower()
    missing = ("could not find", "does not exist", "not found")
    return _code(error) == "ValidationException" and any(m in text for m in missing)


def failed(what: str, error: ClientError) -> DeployFailed:
    """An AWS error, with the resource it concerns and what to do about it."""
    code, message = _code(error), _message(error)
    if code in aws.EXPIRED | aws.UNRECOGNISED:  # credentials, not the resource
        return DeployFailed(f"{what}: {aws.explain(error)}")
    fixes = {
        "ResourceLimitExceeded": "raise the quota in Service Quotas (SageMaker endpoint "
        "usage for the instance type) or choose a smaller fleet",
        "ResourceInUse": "another operation is running on it; wait and run deploy again",
        "AccessDeniedException": "use credentials allowed to deploy (infra/deploy-role.yaml)",
        "AccessDenied": "use credentials allowed to deploy (infra/deploy-role.yaml)",
        "ValidationException": "SageMaker refused the request as sent; the message says why",
    }
    fix = fixes.get(code, "see the message; `python -m pipelines status` shows what is live")
    return DeployFailed(f"{what}: {code}: {message}; {fix}")


@contextmanager
def context(what: str) -> Iterator[None]:
    """AWS errors inside become a DeployFailed that says what was being done."""
    try:
        yield
    except ClientError as error:
        raise failed(what, error) from None


def call(what: str, function: Callable[..., Any], /, **request: Any) -> Any:
    """One AWS call whose failure is a DeployFailed naming `what`."""
    try:
        return function(**request)
    except ClientError as error:
        raise failed(what, error) from None


def eventually(
    what: str,
    function: Callable[..., Any],
    clock: Clock,
    retry_if: Callable[[ClientError], bool],
    /,
    **request: Any,
) -> Any:
    """`function(**request)`, retried with a growing wait while `retry_if` says the error
    is the service catching up with a resource created a moment ago."""
    delay = EVENTUAL_FIRST_DELAY
    for attempt in range(EVENTUAL_ATTEMPTS):
        try:
            return function(**request)
        except ClientError as error:
            if attempt + 1 == EVENTUAL_ATTEMPTS or not retry_if(error):
                raise failed(what, error) from None
        clock.sleep(delay)
        delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


def _absent(function: Callable[..., Any], **request: Any) -> Any:
    """`function(**request)`, or None when what it describes does not exist."""
    try:
        return function(**request)
    except ClientError as error:
        if not_found(error):
            return None
        raise


def _pages(client: Any, operation: str, key: str, **request: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**request):
        yield from page.get(key, [])


def sagemaker_tags(clients: Clients, arn: str) -> dict[str, str]:
    return names.as_dict(list(_pages(clients.sagemaker, "list_tags", "Tags", ResourceArn=arn)))


# --------------------------------------------------------------------------- reading


def read_live(clients: Clients, target: Target) -> Live:
    """The endpoint, its config, tags, autoscaling and monitoring schedule as they are now."""
    with context(f"reading what is live for endpoint {target.endpoint}"):
        return _read_live(clients, target)


def _read_live(clients: Clients, target: Target) -> Live:
    sagemaker = clients.sagemaker
    endpoint = _absent(sagemaker.describe_endpoint, EndpointName=target.endpoint)
    if endpoint is None:
        return Live(target.endpoint)
    config = _absent(
        sagemaker.describe_endpoint_config, EndpointConfigName=endpoint["EndpointConfigName"]
    )
    tags = sagemaker_tags(clients, endpoint["EndpointArn"])
    key = {"ServiceNamespace": requests.SAGEMAKER, "ResourceId": target.scaling_resource}
    scalable = clients.autoscaling.describe_scalable_targets(
        ResourceIds=[target.scaling_resource], ServiceNamespace=requests.SAGEMAKER
    ).get("ScalableTargets", [])
    policies = clients.autoscaling.describe_scaling_policies(**key).get("ScalingPolicies", [])
    schedule = None
    if MONITORING_MARKER in tags:
        schedule = _absent(sagemaker.describe_monitoring_schedule,
                           MonitoringScheduleName=tags[MONITORING_MARKER])  # fmt: skip
    return Live(
        endpoint_name=target.endpoint,
        endpoint=endpoint,
        config=config,
        tags=tags,
        scalable_target=scalable[0] if scalable else None,
        scaling_policies=tuple(policies),
        schedule=schedule,
    )


def resolve_package(clients: Clients, cfg: Config, version: int | None) -> Package:
    """Version `version` of the group, or its latest Approved version."""
    with context(f"reading model package group {cfg.registry.model_package_group}"):
        return _resolve_package(clients, cfg, version)


def _resolve_package(clients: Clients, cfg: Config, version: int | None) -> Package:
    group = cfg.registry.model_package_group
    sagemaker = clients.sagemaker
    if version is None:
        listed = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus=ApprovalStatus.APPROVED,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        ).get("ModelPackageSummaryList", [])
        if not listed:
            raise PackageRefused(
                f"model package group {group} has no Approved package in "
                f"{cfg.aws.region}; approve one (`python -m pipelines approve <execution> "
                "--aws`) or pass --version"
            )
        arn = listed[0]["ModelPackageArn"]
    else:
        described_group = _absent(sagemaker.describe_model_package_group,
                                  ModelPackageGroupName=group)  # fmt: skip
        if described_group is None:
            raise PackageRefused(
                f"model package group {group} does not exist in {cfg.aws.region}; check "
                "registry.model_package_group and aws.region, or publish and run the pipeline"
            )
        arn = package_arn(described_group["ModelPackageGroupArn"], version)
    described = _absent(sagemaker.describe_model_package, ModelPackageName=arn)
    if described is None:
        raise PackageRefused(
            f"model package {arn} does not exist; `aws sagemaker list-model-packages "
            f"--model-package-group-name {group}` lists the versions"
        )
    return Package.from_description(described)


def caller(clients: Clients) -> str:
    """Who is deploying: the caller's ARN after the account (user/alice, assumed-role/...)."""
    arn = str(clients.sts.get_caller_identity()["Arn"])
    return arn.split(":", 5)[-1]


def load_smoke_sample(clients: Clients, package: Package) -> SmokeSample:
    uri = package.smoke_sample or ""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        raise failed(f"reading the smoke sample {uri} of {package.label}", error) from None
    try:
        return SmokeSample.parse(json.loads(body), uri)
    except json.JSONDecodeError as error:
        raise SmokeSampleError(f"{uri}: not JSON ({error}); re-run the pipeline") from None


# --------------------------------------------------------------------------- waiting


def alarm_states(clients: Clients, alarm_names: list[str]) -> dict[str, dict[str, Any]]:
    if not alarm_names:
        return {}
    found = clients.cloudwatch.describe_alarms(AlarmNames=alarm_names).get("MetricAlarms", [])
    return {alarm["AlarmName"]: alarm for alarm in found}


def wait_for_endpoint(
    clients: Clients,
    target: Target,
    expected_config: str,
    watched: list[str],
    out: Out,
    clock: Clock,
) -> dict[str, Any]:
    """Poll DescribeEndpoint until the endpoint settles; print what changes on the way."""
    stage = target.stage
    deadline = clock.monotonic() + stage.wait_timeout_seconds
    last, looks, moved = "", 0, False
    while True:
        described = call(
            f"describing endpoint {target.endpoint}",
            clients.sagemaker.describe_endpoint,
            EndpointName=target.endpoint,
        )
        states = alarm_states(clients, watched)
        short = {name.removeprefix(f"{expected_config}-"): a for name, a in states.items()}
        line = show.progress(described, short)
        if line != last:
            out(line)
            last = line
        status = described["EndpointStatus"]
        moved = moved or status != IN_SERVICE
        looks += 1
        settled = status in SETTLED
        if settled and status == IN_SERVICE and described["EndpointConfigName"] != expected_config:
            # UpdateEndpoint sets Updating as it answers; until the endpoint was seen moving,
            # InService on the old config may be an older view: look a few times more.
            settled = moved or looks > CONFIRM_POLLS
        if settled:
            return dict(described)
        if clock.monotonic() > deadline:
            raise DeployFailed(
                f"endpoint {target.endpoint} is still {status} after "
                f"{stage.wait_timeout_seconds} s (deploy.stages.{target.stage_name}."
                "wait_timeout_seconds); SageMaker carries on: follow it with `python -m "
                f"pipelines status --stage {target.stage_name}`"
            )
        clock.sleep(stage.poll_seconds)


def tripped_alarms(clients: Clients, watched: list[str], since: datetime) -> list[tuple[str, str]]:
    """The rollback alarms in ALARM, with CloudWatch's reason; when none is any more (the new
    fleet is gone, its metrics with it), those whose history went to ALARM since `since`."""
    states = alarm_states(clients, watched)
    now = [(name, str(a.get("StateReason", ""))) for name, a in states.items()
           if a.get("StateValue") == ALARM]  # fmt: skip
    if now:
        return now
    found = []
    for name in states:
        items = clients.cloudwatch.describe_alarm_history(
            AlarmName=name, HistoryItemType="StateUpdate", StartDate=since
        ).get("AlarmHistoryItems", [])
        for item in items:
            data = json.loads(item.get("HistoryData") or "{}")
            if (data.get("newState") or {}).get("stateValue") == ALARM:
                found.append((name, str(item.get("HistorySummary", ""))))
                break
    return found


def verify(
    clients: Clients,
    deployment: Deployment,
    described: dict[str, Any],
    since: datetime,
) -> None:
    """The new config is live and in service, or the deploy failed and says what is live."""
    endpoint = deployment.target.endpoint
    status = described["EndpointStatus"]
    live_config = described.get("EndpointConfigName")
    if status == IN_SERVICE and live_config == deployment.config_name:
        return
    reason = described.get("FailureReason") or ""
    if status == IN_SERVICE:
        tripped = tripped_alarms(clients, deployment.rollback_alarms, since)
        alarms = "; ".join(f"{name}: {why}" for name, why in tripped) or "none found in ALARM"
        raise DeployFailed(
            f"SageMaker rolled the update back: endpoint {endpoint} is InService on "
            f"{live_config}, not on {deployment.config_name}, so {deployment.package.label} "
            f"is not live. Alarm(s) that tripped: {alarms}."
            + (f" SageMaker says: {reason}." if reason else "")
            + " The previous deployment still serves; look at the new fleet's metrics and "
            "logs before deploying again"
        )
    raise DeployFailed(
        f"endpoint {endpoint} is {status} (config {live_config}): {reason or 'no reason given'}; "
        f"`python -m pipelines status --stage {deployment.target.stage_name}` shows it"
    )


# --------------------------------------------------------------------------- applying


def _ensure(
    what: str, describe: Callable[..., Any], key: dict[str, str],
    create: Callable[..., Any], request: dict[str, Any], clock: Clock, out: Out,
) -> bool:  # fmt: skip
    """Create a content-named resource unless it exists (a re-run, a rollback); True when
    this call created it."""
    name = next(iter(key.values()))
    if _absent(describe, **key) is not None:
        out(f"{what} {name}: exists")
        return False
    eventually(f"creating {what} {name}", create, clock, not_found, **request)
    out(f"{what} {name}: created")
    return True


def _is_not_registered(error: ClientError) -> bool:
    text = _message(error).lower()
    return not_found(error) or "not registered" in text or "not in service" in text


def apply_scaling(clients: Clients, calls: tuple[Call, ...], out: Out, clock: Clock) -> None:
    """Register the scalable target and put its policies (idempotent), in order."""
    policy_arn = ""
    for item in calls:
        request = dict(item.request)
        if item.operation == "PutMetricAlarm":  # the alarm that runs the policy above
            request["AlarmActions"] = [policy_arn]
            call(f"alarm {request['AlarmName']}", clients.cloudwatch.put_metric_alarm, **request)
            continue
        answer = eventually(
            f"{item.operation} on {request['ResourceId']}",
            getattr(clients.autoscaling, _snake(item.operation)),
            clock,
            _is_not_registered,
            **request,
        )
        policy_arn = answer.get("PolicyARN", policy_arn)
        out(f"autoscaling: {item.operation} {request.get('PolicyName', request['ResourceId'])}")


def release_scaling(clients: Clients, calls: list[Call], out: Out) -> None:
    for item in calls:
        try:
            getattr(clients.autoscaling, _snake(item.operation))(**item.request)
        except ClientError as error:
            if not not_found(error):
                raise failed(f"{item.operation} on {item.request['ResourceId']}", error) from None
        out(f"autoscaling: {item.operation} {item.request.get('PolicyName', '')}".rstrip())


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def execute(
    clients: Clients, deployment: Deployment, who: str, out: Out, clock: Clock
) -> SmokeResult | None:
    """Apply a prepared deployment, verify it live, smoke-test it, record it, clean up."""
    d = deployment
    target = d.target
    sagemaker = clients.sagemaker
    created = []
    if _ensure("model", sagemaker.describe_model, {"ModelName": d.model_name},
               sagemaker.create_model, d.model, clock, out):  # fmt: skip
        created.append(Call("sagemaker", "DeleteModel", {"ModelName": d.model_name}))
    if _ensure("endpoint config", sagemaker.describe_endpoint_config,
               {"EndpointConfigName": d.config_name}, sagemaker.create_endpoint_config, d.config,
               clock, out):  # fmt: skip
        created.append(
            Call("sagemaker", "DeleteEndpointConfig", {"EndpointConfigName": d.config_name})
        )
    for alarm in d.alarms:
        call(f"alarm {alarm['AlarmName']}", clients.cloudwatch.put_metric_alarm, **alarm)
        out(f"alarm {alarm['AlarmName']}: put")
    if d.kind != UNCHANGED:
        created.append(Call("cloudwatch", "DeleteAlarms", {"AlarmNames": d.alarm_names}))
    since = clock.now()
    described: dict[str, Any] | None = None
    released = False
    try:
        if d.rescale:
            out("autoscaling: released while the instance type changes")
            release_scaling(clients, d.release_scaling(), out)
            released = True
        try:
            start_endpoint(clients, d, out, clock)
        except DeployFailed:
            discard(clients, reversed(created), out)  # nothing changed: leave nothing behind
            raise
        described = wait_for_endpoint(clients, target, d.config_name, d.rollback_alarms, out, clock)
    finally:
        serving = described is not None and described["EndpointStatus"] == IN_SERVICE
        if serving or (released and described is None):
            _settle_scaling(clients, d, out, clock)  # as configured, whatever config is live
    verify(clients, d, described, since)
    result = None
    if target.stage.smoke.enabled:
        result = smoke_test(clients, target, d.package, out, clock)
        out(result.summary())
        if not result.passed:
            restored = restore(clients, d, out, clock)
            raise DeployFailed(f"{result.summary()}; {restored}")
    with context(f"finishing the deploy of {d.package.label} to {target.endpoint}"):
        if d.monitoring is not None:
            apply_monitoring(clients, d, out, clock)
        record(clients, d, described, who, clock)
        cleanup(clients, d, out)
    return result


def start_endpoint(clients: Clients, d: Deployment, out: Out, clock: Clock) -> None:
    """CreateEndpoint or UpdateEndpoint (retried while the new config is not visible yet)."""
    endpoint = d.target.endpoint
    sagemaker = clients.sagemaker
    if d.kind == CREATE:
        assert d.endpoint is not None
        eventually(f"creating endpoint {endpoint}", sagemaker.create_endpoint, clock,
                   not_found, **d.endpoint)  # fmt: skip
        out(f"endpoint {endpoint}: creating on {d.config_name}")
    elif d.kind == UPDATE:
        assert d.endpoint is not None
        eventually(f"updating endpoint {endpoint}", sagemaker.update_endpoint, clock,
                   not_found, **d.endpoint)  # fmt: skip
        out(f"endpoint {endpoint}: updating to {d.config_name} ({d.plan.mode})")
    else:
        out(f"endpoint {endpoint}: already on {d.config_name}, nothing to update")


def discard(clients: Clients, calls: Iterator[Call] | list[Call], out: Out) -> None:
    """Delete what this run created and no endpoint uses."""
    for item in calls:
        _delete(getattr(clients.of(item.service), _snake(item.operation)), **item.request)
        out(f"{item.operation.removeprefix('Delete')} {next(iter(item.request.values()))}: "
            "removed (not used)")  # fmt: skip


def _settle_scaling(clients: Clients, d: Deployment, out: Out, clock: Clock) -> None:
    """Autoscaling as configured, whatever config ended up live."""
    if d.scaling:
        apply_scaling(clients, d.scaling, out, clock)
    elif not d.rescale and d.live.scalable_target is not None:
        release_scaling(clients, d.release_scaling(), out)


def restore(clients: Clients, d: Deployment, out: Out, clock: Clock) -> str:
    """Undo a deploy that went live but failed its smoke test: the previous config back, all
    traffic at once; a new endpoint is deleted. Returns what was done."""
    target = d.target
    previous = d.live.config_name
    sagemaker = clients.sagemaker
    if previous is None or d.kind == UNCHANGED:
        if d.kind == CREATE:
            _delete_scaling(clients, target, out)
            call(f"deleting endpoint {target.endpoint}", sagemaker.delete_endpoint,
                 EndpointName=target.endpoint)  # fmt: skip
            wait_deleted(clients, target, clock)
            discard(clients, [
                Call("cloudwatch", "DeleteAlarms", {"AlarmNames": d.alarm_names}),
                Call("sagemaker", "DeleteEndpointConfig", {"EndpointConfigName": d.config_name}),
                Call("sagemaker", "DeleteModel", {"ModelName": d.model_name}),
            ], out)  # fmt: skip
            return f"the new endpoint {target.endpoint} was deleted: nothing is deployed"
        return f"{d.package.label} stays live (it was already); roll back with `rollback`"
    previous_type = d.live.variant.get("InstanceType")
    rescale = previous_type != target.stage.instance_type and bool(d.scaling)
    if rescale:
        _delete_scaling(clients, target, out)
    immediate = RolloutPlan.immediate(d.plan.fleet_size)
    request = requests.update_endpoint_request(
        target,
        previous,
        requests.deployment_config(immediate, target.stage.rollout, []),
        retain_capacity=False,
    )
    out(f"endpoint {target.endpoint}: restoring {previous}")
    call(f"restoring endpoint {target.endpoint}", sagemaker.update_endpoint, **request)
    described = wait_for_endpoint(clients, target, previous, [], out, clock)
    if described["EndpointStatus"] == IN_SERVICE and d.scaling:
        apply_scaling(clients, d.scaling, out, clock)
    if described.get("EndpointConfigName") != previous:
        return (
            f"restoring {previous} did not complete: the endpoint is "
            f"{described['EndpointStatus']} on {described.get('EndpointConfigName')}"
        )
    return f"the previous config {previous} serves again"


def _delete_scaling(clients: Clients, target: Target, out: Out) -> None:
    key = {"ServiceNamespace": requests.SAGEMAKER, "ResourceId": target.scaling_resource}
    policies = clients.autoscaling.describe_scaling_policies(**key).get("ScalingPolicies", [])
    targets = clients.autoscaling.describe_scalable_targets(
        ServiceNamespace=requests.SAGEMAKER, ResourceIds=[target.scaling_resource]
    ).get("ScalableTargets", [])
    calls = [
        Call(AUTOSCALING, "DeleteScalingPolicy",
             {**key, "PolicyName": p["PolicyName"], "ScalableDimension": p["ScalableDimension"]})
        for p in policies
    ] + [
        Call(AUTOSCALING, "DeregisterScalableTarget",
             {**key, "ScalableDimension": t["ScalableDimension"]})
        for t in targets
    ]  # fmt: skip
    release_scaling(clients, calls, out)


def smoke_test(
    clients: Clients, target: Target, package: Package, out: Out, clock: Clock
) -> SmokeResult:
    """Invoke the endpoint with the package's recorded test rows; compare the answers."""
    stage = target.stage
    sample = load_smoke_sample(clients, package)
    rows = min(stage.smoke.rows, len(sample.records))
    body = sample.body(rows)
    out(f"smoke test: {rows} row(s) of {package.label}'s test data to {target.endpoint}")
    try:
        if stage.endpoint_type == "async":
            answer = _invoke_async(clients, target, package, sample, body, clock)
        else:
            answer = _invoke(clients, target, sample, body)
    except ClientError as error:
        return SmokeResult(rows, (f"invoking {target.endpoint}: {_code(error)}: "
                                  f"{_message(error)}",))  # fmt: skip
    except _AsyncFailure as failure:
        return SmokeResult(rows, (str(failure),))
    return compare(sample, answer, stage.smoke, rows)


def _invoke(clients: Clients, target: Target, sample: SmokeSample, body: bytes) -> bytes:
    """One real-time request of the sample's rows; the answer's body."""
    response = clients.runtime.invoke_endpoint(
        EndpointName=target.endpoint,
        Body=body,
        ContentType=sample.content_type,
        Accept=sample.content_type,
    )
    return bytes(response["Body"].read())


class _AsyncFailure(Exception):
    pass


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _invoke_async(
    clients: Clients,
    target: Target,
    package: Package,
    sample: SmokeSample,
    body: bytes,
    clock: Clock,
) -> bytes:
    """Put the body in S3, invoke asynchronously, wait for the output (or failure) object."""
    bucket, key = _split(target.s3(f"smoke/v{package.version}-{uuid.uuid4().hex}.csv"))
    clients.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=sample.content_type)
    response = clients.runtime.invoke_endpoint_async(
        EndpointName=target.endpoint,
        InputLocation=f"s3://{bucket}/{key}",
        ContentType=sample.content_type,
        Accept=sample.content_type,
    )
    output, failure = response["OutputLocation"], response.get("FailureLocation")
    deadline = clock.monotonic() + target.stage.smoke.timeout_seconds
    try:
        while True:
            for uri, is_failure in ((output, False), (failure, True)):
                if not uri:
                    continue
                found = _absent(clients.s3.get_object, Bucket=_split(uri)[0], Key=_split(uri)[1])
                if found is not None:
                    content = found["Body"].read()
                    if is_failure:
                        raise _AsyncFailure(f"the endpoint failed the request: {content[:300]!r}")
                    return bytes(content)
            if clock.monotonic() > deadline:
                raise _AsyncFailure(
                    f"no output at {output} within {target.stage.smoke.timeout_seconds} s "
                    "(deploy.stages.<stage>.smoke.timeout_seconds)"
                )
            clock.sleep(ASYNC_POLL_SECONDS)
    finally:
        clients.s3.delete_object(Bucket=bucket, Key=key)


def apply_monitoring(clients: Clients, d: Deployment, out: Out, clock: Clock) -> None:
    """The data-quality schedule on the new package's baseline; the old definition goes."""
    assert d.monitoring is not None
    job, create = d.monitoring
    sagemaker = clients.sagemaker
    name = job["JobDefinitionName"]
    _ensure("data-quality job definition", sagemaker.describe_data_quality_job_definition,
            {"JobDefinitionName": name}, sagemaker.create_data_quality_job_definition, job,
            clock, out)  # fmt: skip
    schedule_name = create["MonitoringScheduleName"]
    _tag_endpoint(clients, d, {MONITORING_MARKER: schedule_name})
    live = _absent(sagemaker.describe_monitoring_schedule, MonitoringScheduleName=schedule_name)
    if live is None:
        call(f"creating monitoring schedule {schedule_name}",
             sagemaker.create_monitoring_schedule, **create)  # fmt: skip
        out(f"monitoring schedule {schedule_name}: created")
        return
    old = live.get("MonitoringScheduleConfig", {}).get("MonitoringJobDefinitionName")
    if old == name:
        out(f"monitoring schedule {schedule_name}: unchanged")
        return
    update = {k: v for k, v in create.items() if k != "Tags"}
    call(f"updating monitoring schedule {schedule_name}",
         sagemaker.update_monitoring_schedule, **update)  # fmt: skip
    _wait_schedule(clients, schedule_name, clock)
    out(f"monitoring schedule {schedule_name}: now on {name}")
    if old:
        _delete_owned_job_definition(clients, d.target, old)


def _wait_schedule(clients: Clients, name: str, clock: Clock) -> None:
    for _ in range(60):
        described = clients.sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
        if described.get("MonitoringScheduleStatus") in MONITOR_SETTLED:
            return
        clock.sleep(5)


def _delete_owned_job_definition(clients: Clients, target: Target, name: str) -> None:
    described = _absent(clients.sagemaker.describe_data_quality_job_definition,
                        JobDefinitionName=name)  # fmt: skip
    if described is None:
        return
    if sagemaker_tags(clients, described["JobDefinitionArn"]).get(names.OWNER_TAG) == (
        target.endpoint
    ):
        clients.sagemaker.delete_data_quality_job_definition(JobDefinitionName=name)


def _endpoint_arn(clients: Clients, target: Target) -> str:
    described = clients.sagemaker.describe_endpoint(EndpointName=target.endpoint)
    return str(described["EndpointArn"])


def _tag_endpoint(
    clients: Clients, d: Deployment, add: dict[str, str], remove: list[str] | None = None
) -> None:
    """Set tags on the endpoint: keys to replace or drop are deleted first, then added."""
    arn = _endpoint_arn(clients, d.target)
    current = sagemaker_tags(clients, arn)
    stale = [k for k in [*(remove or []), *add] if k in current and current.get(k) != add.get(k)]
    if stale:
        clients.sagemaker.delete_tags(ResourceArn=arn, TagKeys=sorted(set(stale)))
    fresh = [{"Key": k, "Value": v} for k, v in add.items() if current.get(k) != v]
    if fresh:
        clients.sagemaker.add_tags(ResourceArn=arn, Tags=fresh)


def record(
    clients: Clients, d: Deployment, described: dict[str, Any], who: str, clock: Clock
) -> None:
    """The live package and a history entry in the endpoint's tags."""
    live = {
        names.PACKAGE_TAG: d.package.arn,
        names.VERSION_TAG: str(d.package.version),
        names.CONFIG_TAG: d.config_name,
    }
    added: dict[str, str] = {}
    removed: list[str] = []
    if d.kind != UNCHANGED or d.live.tags.get(names.CONFIG_TAG) != d.config_name:
        at = clock.now().strftime(TIME_FORMAT)
        live |= {names.BY_TAG: history.tag_safe(who), names.AT_TAG: at}
        added, removed = history.append(
            history.read(d.live.tags), d.package.arn, d.package.version, d.config_name, who, at,
            d.action,
        )  # fmt: skip
    _tag_endpoint(clients, d, {**live, **added}, removed)


def cleanup(clients: Clients, d: Deployment, out: Out) -> None:
    """Remove what older deploys of this endpoint left: alarms of fleets that are gone, and
    configs and models but the live and the previous one (kept for a quick rollback)."""
    target = d.target
    keep_configs = {d.config_name, d.live.config_name}
    keep_models = {d.model_name, d.live.variant.get("ModelName")}
    keep_alarms = set(d.alarm_names) | {f"{target.endpoint}{names.BACKLOG_ALARM_SUFFIX}"}
    for alarm in owned_alarms(clients, target):
        if alarm not in keep_alarms:
            clients.cloudwatch.delete_alarms(AlarmNames=[alarm])
            out(f"alarm {alarm}: deleted (its fleet is gone)")
    for config in owned_configs(clients, target):
        if config not in keep_configs:
            _delete(clients.sagemaker.delete_endpoint_config, EndpointConfigName=config)
            out(f"endpoint config {config}: deleted")
    for model in owned_models(clients, target):
        if model not in keep_models:
            _delete(clients.sagemaker.delete_model, ModelName=model)
            out(f"model {model}: deleted")


def _delete(function: Callable[..., Any], **request: Any) -> None:
    try:
        function(**request)
    except ClientError as error:
        if not not_found(error):
            raise


def owned_alarms(clients: Clients, target: Target) -> list[str]:
    found = []
    for alarm in _pages(clients.cloudwatch, "describe_alarms", "MetricAlarms",
                        AlarmNamePrefix=names.alarm_prefix(target.endpoint)):  # fmt: skip
        tags = clients.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])
        if names.as_dict(tags.get("Tags")).get(names.OWNER_TAG) == target.endpoint:
            found.append(str(alarm["AlarmName"]))
    return found


def _owned(clients: Clients, target: Target, listing: str, key: str, name_key: str,
           arn_key: str) -> list[str]:  # fmt: skip
    found = []
    for item in _pages(clients.sagemaker, listing, key, NameContains=target.endpoint):
        name = str(item[name_key])
        if names.version_of(name, target.endpoint) is None:
            continue
        if sagemaker_tags(clients, item[arn_key]).get(names.OWNER_TAG) == target.endpoint:
            found.append(name)
    return found


def owned_configs(clients: Clients, target: Target) -> list[str]:
    return _owned(clients, target, "list_endpoint_configs", "EndpointConfigs",
                  "EndpointConfigName", "EndpointConfigArn")  # fmt: skip


def owned_models(clients: Clients, target: Target) -> list[str]:
    return _owned(clients, target, "list_models", "Models", "ModelName", "ModelArn")


# --------------------------------------------------------------------------- undeploy


def wait_deleted(clients: Clients, target: Target, clock: Clock) -> None:
    deadline = clock.monotonic() + target.stage.wait_timeout_seconds
    while _absent(clients.sagemaker.describe_endpoint, EndpointName=target.endpoint):
        if clock.monotonic() > deadline:
            raise DeployFailed(f"endpoint {target.endpoint} is still being deleted")
        clock.sleep(target.stage.poll_seconds)


def undeploy(clients: Clients, target: Target, out: Out, clock: Clock) -> list[str]:
    """Remove what deploy created for the stage, in dependency order; return what went."""
    with context(f"undeploying endpoint {target.endpoint}"):
        return _undeploy(clients, target, out, clock)


def _undeploy(clients: Clients, target: Target, out: Out, clock: Clock) -> list[str]:
    live = read_live(clients, target)
    if live.exists and not live.owned:
        raise DeployRefused(
            f"endpoint {target.endpoint} was not created by this tool (no {names.OWNER_TAG} "
            "tag naming it); undeploy touches nothing it did not create"
        )
    removed: list[str] = []
    sagemaker = clients.sagemaker

    def done(what: str) -> None:
        removed.append(what)
        out(f"removed {what}")

    experiment = live.tags.get(EXPERIMENT_MARKER)
    if experiment and stop_experiment(clients, target, experiment, clock):
        done(f"shadow test {experiment}")
    schedule = live.tags.get(MONITORING_MARKER)
    if schedule and _absent(sagemaker.describe_monitoring_schedule,
                            MonitoringScheduleName=schedule):  # fmt: skip
        call(f"deleting monitoring schedule {schedule}", sagemaker.delete_monitoring_schedule,
             MonitoringScheduleName=schedule)  # fmt: skip
        while _absent(sagemaker.describe_monitoring_schedule, MonitoringScheduleName=schedule):
            clock.sleep(5)
        done(f"monitoring schedule {schedule}")
    for definition in _pages(sagemaker, "list_data_quality_job_definitions",
                             "JobDefinitionSummaries", EndpointName=target.endpoint):  # fmt: skip
        arn = definition["MonitoringJobDefinitionArn"]
        if sagemaker_tags(clients, arn).get(names.OWNER_TAG) == target.endpoint:
            name = definition["MonitoringJobDefinitionName"]
            _delete(sagemaker.delete_data_quality_job_definition, JobDefinitionName=name)
            done(f"data-quality job definition {name}")
    if live.scalable_target is not None:
        _delete_scaling(clients, target, out)
        done(f"autoscaling of {target.scaling_resource}")
    for alarm in owned_alarms(clients, target):
        clients.cloudwatch.delete_alarms(AlarmNames=[alarm])
        done(f"alarm {alarm}")
    if live.exists:
        call(f"deleting endpoint {target.endpoint}", sagemaker.delete_endpoint,
             EndpointName=target.endpoint)  # fmt: skip
        wait_deleted(clients, target, clock)
        done(f"endpoint {target.endpoint}")
    for config in owned_configs(clients, target):
        _delete(sagemaker.delete_endpoint_config, EndpointConfigName=config)
        done(f"endpoint config {config}")
    for model in owned_models(clients, target):
        _delete(sagemaker.delete_model, ModelName=model)
        done(f"model {model}")
    return removed


# --------------------------------------------------------------------------- shadow test


def start_shadow(clients: Clients, d: Deployment, out: Out, clock: Clock) -> dict[str, Any]:
    """Mirror a share of the live endpoint's traffic to `d.package` (a candidate)."""
    target = d.target
    live = d.live
    if not live.exists or live.status != IN_SERVICE:
        raise DeployRefused(
            f"a shadow test needs the live endpoint {target.endpoint} in service; deploy a "
            f"package first (`python -m pipelines deploy --stage {target.stage_name}`)"
        )
    if live.tags.get(EXPERIMENT_MARKER):
        running = _absent(clients.sagemaker.describe_inference_experiment,
                          Name=live.tags[EXPERIMENT_MARKER])  # fmt: skip
        if running and running.get("Status") not in EXPERIMENT_ENDED:
            raise DeployRefused(
                f"shadow test {running['Name']} is {running['Status']} on {target.endpoint}; "
                "one runs at a time: wait for it or undeploy"
            )
    sagemaker = clients.sagemaker
    _ensure("model", sagemaker.describe_model, {"ModelName": d.model_name},
            sagemaker.create_model, d.model, clock, out)  # fmt: skip
    start = clock.now()
    request = d.shadow_request(start)
    _tag_endpoint(clients, d, {EXPERIMENT_MARKER: request["Name"]})
    call(f"creating shadow test {request['Name']}", sagemaker.create_inference_experiment,
         **request)  # fmt: skip
    out(f"shadow test {request['Name']}: created")
    for _ in range(120):
        described = sagemaker.describe_inference_experiment(Name=request["Name"])
        if described.get("Status") in EXPERIMENT_SETTLED:
            out(f"shadow test {request['Name']}: {described['Status']}")
            return dict(described)
        clock.sleep(target.stage.poll_seconds)
    raise DeployFailed(f"shadow test {request['Name']} did not start; see `status`")


def stop_experiment(clients: Clients, target: Target, name: str, clock: Clock) -> bool:
    """Stop a running shadow test (its shadow variant removed) and delete it."""
    sagemaker = clients.sagemaker
    described = _absent(sagemaker.describe_inference_experiment, Name=name)
    if described is None:
        return False
    shadow = names.shadow_variant_name(target.variant)
    if described.get("Status") not in (*EXPERIMENT_ENDED, InferenceExperimentStatus.STOPPING):
        call(f"stopping shadow test {name}", sagemaker.stop_inference_experiment, Name=name,
             ModelVariantActions={target.variant: "Retain", shadow: "Remove"})  # fmt: skip
    for _ in range(120):
        described = sagemaker.describe_inference_experiment(Name=name)
        if described.get("Status") in EXPERIMENT_ENDED:
            break
        clock.sleep(target.stage.poll_seconds)
    call(f"deleting shadow test {name}", sagemaker.delete_inference_experiment, Name=name)
    return True


# --------------------------------------------------------------------------- release


def load_run(
    clients: Clients, target: Target, package: Package, out: Out, clock: Clock
) -> LoadResult:
    """A bounded run of real requests: the package's test rows, `load_test.concurrency` at a
    time, until `requests` were sent or `max_seconds` passed. An answer that differs from the
    pipeline's predictions counts as a failed request, as a refused one does."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Lock

    stage = target.stage
    settings = stage.load_test
    if stage.endpoint_type == "async":
        raise DeployRefused(
            f"stage {target.stage_name} serves asynchronously: a load run measures real-time "
            "answers; test it with `make smoke` (its requests go through S3)"
        )
    sample = load_smoke_sample(clients, package)
    rows = min(settings.rows_per_request, len(sample.records))
    body = sample.body(rows)
    out(
        f"load run: up to {settings.requests} request(s) of {rows} row(s), {settings.concurrency}"
        f" at a time, for at most {settings.max_seconds} s, to {target.endpoint}"
    )
    lock = Lock()
    tickets = iter(range(settings.requests))
    latencies: list[float] = []
    errors: list[str] = []
    stopped = {"by": "requests"}
    start = clock.monotonic()
    deadline = start + settings.max_seconds

    def take() -> bool:
        with lock:
            if clock.monotonic() >= deadline:
                stopped["by"] = "time"
                return False
            return next(tickets, None) is not None

    def worker() -> None:
        while take():
            began = time.perf_counter()
            try:
                answer = _invoke(clients, target, sample, body)
            except ClientError as error:
                problem = f"{_code(error)}: {_message(error)}"
            else:
                verdict = compare(sample, answer, stage.smoke, rows)
                problem = "" if verdict.passed else "wrong answer: " + "; ".join(verdict.problems)
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                if problem:
                    errors.append(problem)
                else:
                    latencies.append(elapsed)

    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        for running in [pool.submit(worker) for _ in range(settings.concurrency)]:
            running.result()
    distinct = tuple(dict.fromkeys(errors))[: release.SHOWN_ERRORS]
    return LoadResult(
        endpoint=target.endpoint,
        rows_per_request=rows,
        sent=len(latencies) + len(errors),
        failed=len(errors),
        seconds=max(clock.monotonic() - start, 0.0),
        latencies_ms=tuple(latencies),
        errors=distinct,
        stopped_by=stopped["by"],
    )


def evaluation_report(clients: Clients, package: Package) -> dict[str, Any] | None:
    """The Evaluate step's metrics the package points to (None: it names none)."""
    if not package.evaluation_report:
        return None
    bucket, key = _split(package.evaluation_report)
    try:
        body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        raise failed(f"reading the evaluation report {package.evaluation_report}", error) from None
    try:
        report = json.loads(body)
    except json.JSONDecodeError as error:
        raise DeployFailed(f"{package.evaluation_report}: not JSON ({error})") from None
    return report if isinstance(report, dict) else None


def publish(clients: Clients, topic_arn: str, subject: str, message: str) -> str:
    """Send the message to the SNS topic; its message id."""
    with context(f"publishing to SNS topic {topic_arn}"):
        sent = clients.sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)
    return str(sent["MessageId"])
