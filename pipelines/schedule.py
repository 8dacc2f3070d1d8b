"""`make schedule` / `make unschedule` / `python -m pipelines delete`: retraining on a schedule.

The schedule lives on EventBridge Scheduler and calls SageMaker's StartPipelineExecution through
the universal target (`arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution`), because
only a universal target's Input is a payload in which Scheduler substitutes its context
attributes: each run passes `DataVersion=scheduled-<aws.scheduler.scheduled-time>`, which is part
of Preprocess's cache key, so a run never reuses an earlier run's preprocessing of the same
input URI. The templated SageMaker target (SageMakerPipelineParameters, which the SDK's
PipelineSchedule also uses) only passes fixed values. The same scheduled time is the start's
ClientRequestToken, so Scheduler's retries of one invocation start at most one execution.

With `schedule.starter_arn` (infra/drift-retraining.yaml's RetrainingStarterArn), the schedule
targets that state machine instead, with the same Input as the template's own schedule
(:func:`starter_input`): it starts the pipeline with the same DataVersion, but never while an
execution of the pipeline runs, so scheduled and drift retraining do not overlap.

`schedule.enabled: false` keeps the schedule, DISABLED (it fires again when re-enabled);
`unschedule` removes it; `delete` removes the schedule first and then the pipeline, so no
schedule is left pointing at a pipeline that no longer exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from config import Config
from config.parameters import DATA_VERSION
from pipelines import aws
from pipelines.errors import UsageError

SCHEDULE_SUFFIX = "-retraining"
SCHEDULE_NAME_MAX = 64
UNIVERSAL_TARGET = "arn:{partition}:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # e.g. 2026-03-02T03:00:00Z
SCHEDULE_ARN = "<aws.scheduler.schedule-arn>"
DATA_VERSION_PREFIX = "scheduled-"
TOKEN_PREFIX = "scheduled-"
STARTER_TOKEN_PREFIX = "scheduled-retraining-"
TOKEN_MAX = 128
SCHEDULED_TIME_LENGTH = len("2026-03-02T03:00:00Z")
ENABLED, DISABLED = "ENABLED", "DISABLED"
NO_FLEXIBLE_WINDOW = {"Mode": "OFF"}
# A failed start (throttling, a transient fault) is retried for up to six hours.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 6 * 3600, "MaximumRetryAttempts": 20}
NOT_FOUND = ("ResourceNotFoundException", "ResourceNotFound")


def _not_found(exc: ClientError) -> bool:
    """SageMaker reports a missing pipeline as ValidationException ("Could not find ...")."""
    error = exc.response["Error"]
    if error["Code"] in NOT_FOUND:
        return True
    message = str(error.get("Message", "")).lower()
    missing = "not find" in message or "not exist" in message
    return error["Code"] == "ValidationException" and missing


class ScheduleError(UsageError):
    """The schedule cannot be set as configured; the message names the field and the fix."""


@dataclass(frozen=True)
class ScheduleResult:
    name: str
    action: str  # created | updated | unchanged
    state: str
    arn: str


@dataclass(frozen=True)
class DeleteResult:
    schedule_removed: bool
    pipeline_deleted: bool


def schedule_name(cfg: Config) -> str:
    name = f"{cfg.pipeline.name}{SCHEDULE_SUFFIX}"
    if len(name) > SCHEDULE_NAME_MAX:
        raise ScheduleError(
            f"pipeline.name {cfg.pipeline.name!r} is too long for a schedule name "
            f"({name!r} > {SCHEDULE_NAME_MAX} characters); shorten pipeline.name"
        )
    return name


def _parameter_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):  # SageMaker's Boolean parameters take "true" / "false"
        return str(value).lower()
    return str(value)


def start_request(cfg: Config) -> dict[str, Any]:
    """The StartPipelineExecution request each invocation sends (context attributes unresolved)."""
    pipeline = cfg.pipeline.name
    fixed = [
        {"Name": name, "Value": _parameter_value(value)}
        for name, value in sorted(cfg.schedule.parameters.items())
    ]
    token_room = TOKEN_MAX - len(TOKEN_PREFIX) - 1 - SCHEDULED_TIME_LENGTH
    return {
        "PipelineName": pipeline,
        "PipelineParameters": [
            {"Name": DATA_VERSION, "Value": f"{DATA_VERSION_PREFIX}{SCHEDULED_TIME}"},
            *fixed,
        ],
        "PipelineExecutionDescription": f"Scheduled retraining at {SCHEDULED_TIME} by "
        f"{SCHEDULE_ARN}",
        # At least 32 characters once resolved: prefix (10) + name (>= 1) + "-" + time (20).
        "ClientRequestToken": f"{TOKEN_PREFIX}{pipeline[:token_room]}-{SCHEDULED_TIME}",
    }


def starter_input() -> dict[str, str]:
    """The retraining starter's execution input (context attributes unresolved).

    The same document as infra/drift-retraining.yaml's RetrainingSchedule Input (a test holds
    them equal): one scheduled time gives one token, whichever of the two schedules fired.
    """
    return {
        "DataVersion": f"{DATA_VERSION_PREFIX}{SCHEDULED_TIME}",
        "Reason": SCHEDULE_ARN,
        "Token": f"{STARTER_TOKEN_PREFIX}{SCHEDULED_TIME}",
    }


def schedule_target(cfg: Config, pipeline_arn: str) -> dict[str, Any]:
    """The schedule's target: the retraining starter when configured, else SageMaker itself."""
    starter = cfg.schedule.starter_arn
    if starter:
        arn, payload = starter, starter_input()
    else:
        partition = pipeline_arn.split(":")[1]
        arn, payload = UNIVERSAL_TARGET.format(partition=partition), start_request(cfg)
    return {
        "Arn": arn,
        "RoleArn": cfg.schedule.role_arn,
        "Input": json.dumps(payload, sort_keys=True),
        "RetryPolicy": RETRY_POLICY,
    }


def schedule_request(cfg: Config, pipeline_arn: str) -> dict[str, Any]:
    """The whole CreateSchedule / UpdateSchedule request (UpdateSchedule replaces every field)."""
    return {
        "Name": schedule_name(cfg),
        "Description": f"Retraining of SageMaker pipeline {cfg.pipeline.name} "
        "(python -m pipelines schedule)",
        "ScheduleExpression": cfg.schedule.expression,
        "ScheduleExpressionTimezone": cfg.schedule.timezone,
        "FlexibleTimeWindow": NO_FLEXIBLE_WINDOW,
        "State": ENABLED if cfg.schedule.enabled else DISABLED,
        "Target": schedule_target(cfg, pipeline_arn),
    }


def _published(sagemaker: Any, cfg: Config) -> tuple[str, set[str]] | None:
    """The published pipeline's ARN and parameter names, or None if it does not exist."""
    try:
        described = sagemaker.describe_pipeline(PipelineName=cfg.pipeline.name)
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise
    definition = json.loads(described["PipelineDefinition"])
    return described["PipelineArn"], {p["Name"] for p in definition.get("Parameters", [])}


def check_parameters(cfg: Config, published: set[str]) -> None:
    """Every parameter a scheduled run passes must exist in the published definition."""
    if DATA_VERSION not in published:
        raise ScheduleError(
            f"the published pipeline {cfg.pipeline.name} has no {DATA_VERSION} "
            "parameter, so scheduled runs could reuse cached preprocessing of the same input; "
            "publish the current definition first (make upsert)"
        )
    unknown = sorted(set(cfg.schedule.parameters) - published)
    if unknown:
        raise ScheduleError(
            f"schedule.parameters names {unknown}, which the published pipeline "
            f"{cfg.pipeline.name} does not have (it has {sorted(published)}); fix the names"
        )


def check_starter(cfg: Config, stepfunctions: Any) -> None:
    """schedule.starter_arn must name a state machine of this region that exists."""
    arn = str(cfg.schedule.starter_arn)
    region = arn.split(":")[3]
    fix = (
        "deploy infra/drift-retraining.yaml in that region and set schedule.starter_arn to its "
        "RetrainingStarterArn output, or remove starter_arn"
    )
    if region != cfg.aws.region:
        raise ScheduleError(
            f"schedule.starter_arn {arn} is in {region}, but the pipeline runs in "
            f"{cfg.aws.region}; {fix}"
        )
    try:
        stepfunctions.describe_state_machine(stateMachineArn=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "StateMachineDoesNotExist":
            raise ScheduleError(f"schedule.starter_arn {arn} does not exist; {fix}") from exc
        raise


def _existing(scheduler: Any, name: str) -> dict[str, Any] | None:
    try:
        described: dict[str, Any] = scheduler.get_schedule(Name=name)
        return described
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise


def _same(existing: dict[str, Any], request: dict[str, Any]) -> bool:
    return all(existing.get(key) == value for key, value in request.items() if key != "Name")


def put_schedule(cfg: Config, session: boto3.Session | None = None) -> ScheduleResult:
    """Create or update the schedule so that it matches `cfg.schedule`: one schedule, always."""
    session = session or aws.session(cfg)
    published = _published(aws.client(session, "sagemaker"), cfg)
    if published is None:
        raise ScheduleError(
            f"pipeline {cfg.pipeline.name} is not published in {cfg.aws.region}; run "
            "`make upsert` first"
        )
    pipeline_arn, parameters = published
    check_parameters(cfg, parameters)
    if cfg.schedule.starter_arn:
        check_starter(cfg, aws.client(session, "stepfunctions"))
    scheduler = aws.client(session, "scheduler")
    request = schedule_request(cfg, pipeline_arn)
    existing = _existing(scheduler, request["Name"])
    if existing is None:
        arn = scheduler.create_schedule(**request)["ScheduleArn"]
        action = "created"
    elif _same(existing, request):
        arn, action = existing["Arn"], "unchanged"
    else:
        arn = scheduler.update_schedule(**request)["ScheduleArn"]
        action = "updated"
    return ScheduleResult(name=request["Name"], action=action, state=request["State"], arn=arn)


def remove_schedule(cfg: Config, session: boto3.Session | None = None) -> bool:
    """Delete the schedule; False if there was none."""
    session = session or aws.session(cfg)
    scheduler = aws.client(session, "scheduler")
    try:
        scheduler.delete_schedule(Name=schedule_name(cfg))
    except ClientError as exc:
        if _not_found(exc):
            return False
        raise
    return True


def delete_pipeline(cfg: Config, session: boto3.Session | None = None) -> DeleteResult:
    """Remove the schedule, then the pipeline: never a schedule without its pipeline."""
    session = session or aws.session(cfg)
    removed = remove_schedule(cfg, session)
    sagemaker = aws.client(session, "sagemaker")
    try:
        sagemaker.delete_pipeline(PipelineName=cfg.pipeline.name)
    except ClientError as exc:
        if _not_found(exc):
            return DeleteResult(schedule_removed=removed, pipeline_deleted=False)
        raise
    return DeleteResult(schedule_removed=removed, pipeline_deleted=True)
