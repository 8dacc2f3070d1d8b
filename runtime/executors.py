"""One executor per step type, behind one table: what a step of each type does on this machine.

The engine (runtime.engine) schedules, retries and caches; for the work itself it looks the
step's ``Type`` up in :data:`EXECUTORS` and calls the executor with a :class:`StepCall` (the
step's resolved arguments and where to run). Job steps (Processing, Training, Transform and
QualityCheck, whose processing job runs runtime.monitor in place of the Model Monitor analyzer
image) go through the one job launcher (runtime.jobs); the steps SageMaker's own local mode
refuses have executors of their own: RegisterModel and CreateModel (runtime.state) and
Callback (a local queue answered through runtime.state). Each returns the step's properties,
as the service's Describe* call would.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runtime import jobs
from runtime.state import CallbackStatus, LocalState
from runtime.store import LocalS3
from tabular.contract import (
    CALLBACK_ARGUMENTS,
    CALLBACK_EXECUTION_ARN,
    CALLBACK_STATUS,
    CALLBACK_TOKEN,
    CONSTRAINTS_FILE,
    DATA_QUALITY_CHECK,
    STATISTICS_FILE,
    VIOLATIONS_FILE,
    ApprovalStatus,
    ExecutionStatus,
    S3DataType,
    StepType,
)

QUALITY_FLAGS = ("CheckType", "SkipCheck", "RegisterNewBaseline", "FailOnViolation",
                 "SuppliedBaselineStatistics", "SuppliedBaselineConstraints",
                 "ModelPackageGroupName")  # fmt: skip
"""A QualityCheck step's own fields (beside its processing request), part of its cache key."""
# The Model Monitor analyzer image, locally: runtime.monitor run as that image's entrypoint, with
# the image's contract variables (dataset_source, output_path, dataset_format) as its arguments
# and the drift-check baseline staged where Model Monitor's own jobs put it.
ANALYZER_ENTRYPOINT = ["python3", "-m", "runtime.monitor"]
ANALYZER_IMAGE_ENVIRONMENT = {"PYTHONPATH": str(jobs.PROJECT_ROOT)}
BASELINE_DIR = "/opt/ml/processing/baseline"
CALLBACK_POLL_SECONDS = 0.2
ACCOUNT_ID = "000000000000"


class StepFailure(RuntimeError):
    """A step failed; the message is its FailureReason as the service would report it."""


class JobRecord(Protocol):
    """What an executor notes on the step's record: the job's peak memory and its log."""

    peak_rss_bytes: int | None
    log: str | None


class CallbackHooks(Protocol):
    """How the caller answers a callback (runtime.engine.Hooks)."""

    @property
    def on_callback(self) -> Callable[[LocalState, str, dict[str, Any]], None] | None: ...

    @property
    def callback_timeout_seconds(self) -> float: ...


@dataclass(frozen=True)
class StepCall:
    """One attempt of one step: its definition, resolved arguments, and where it runs."""

    name: str
    step: dict[str, Any]
    arguments: dict[str, Any]
    extras: dict[str, Any]
    record: JobRecord
    job_name: str
    sandbox: Path
    """A fresh directory per attempt: an interrupted attempt's leftovers are never reused."""
    store: LocalS3
    state: LocalState
    region: str
    execution_id: str
    execution_arn: str
    hooks: CallbackHooks
    stopping: threading.Event
    """Set when the run is being stopped: a step that waits gives up."""


Executor = Callable[[StepCall], dict[str, Any]]


def finished(outcome: jobs.JobOutcome, call: StepCall) -> dict[str, Any]:
    """A job's Describe* response, or its FailureReason as the step's failure."""
    call.record.peak_rss_bytes, call.record.log = outcome.peak_rss_bytes, str(outcome.log_path)
    if not outcome.succeeded:
        raise StepFailure(outcome.failure_reason or "the job failed without a reason")
    return outcome.describe


def processing(call: StepCall) -> dict[str, Any]:
    outcome = jobs.run_processing_job(call.job_name, call.arguments, call.store, call.sandbox)
    return finished(outcome, call)


def training(call: StepCall) -> dict[str, Any]:
    outcome = jobs.run_training_job(call.job_name, call.arguments, call.store, call.sandbox)
    return finished(outcome, call)


def transform(call: StepCall) -> dict[str, Any]:
    model = call.state.model(call.arguments["ModelName"])
    outcome = jobs.run_transform_job(call.job_name, call.arguments, model, call.store, call.sandbox)
    return finished(outcome, call)


def model(call: StepCall) -> dict[str, Any]:
    model_name = call.arguments.get("ModelName") or call.job_name
    call.state.create_model(model_name, call.arguments, call.execution_id)
    arn = f"arn:aws:sagemaker:{call.region}:{ACCOUNT_ID}:model/{model_name}"
    return {**call.arguments, "ModelName": model_name, "ModelArn": arn}


def register_model(call: StepCall) -> dict[str, Any]:
    return call.state.register_package(call.arguments, call.execution_id)


def callback(call: StepCall) -> dict[str, Any]:
    """Queue the callback's message, then wait for its answer (or the hooks' timeout)."""
    token = uuid.uuid4().hex
    message = {
        CALLBACK_TOKEN: token,
        CALLBACK_EXECUTION_ARN: call.execution_arn,
        CALLBACK_ARGUMENTS: call.arguments,
        CALLBACK_STATUS: ExecutionStatus.EXECUTING,
    }
    queue_url = call.step.get("SqsQueueUrl", "")
    call.state.open_callback(token, call.execution_id, call.name, queue_url, message)
    if call.hooks.on_callback:
        call.hooks.on_callback(call.state, token, message)
    deadline = time.monotonic() + call.hooks.callback_timeout_seconds
    while True:
        (answer,) = [c for c in call.state.callbacks(call.execution_id) if c.token == token]
        if answer.status == CallbackStatus.SUCCEEDED:
            declared = [o["OutputName"] for o in call.step.get("OutputParameters", [])]
            return {
                "OutputParameters": [
                    {"Name": n, "Value": answer.outputs.get(n, "")} for n in declared
                ]
            }
        if answer.status == CallbackStatus.FAILED:
            raise StepFailure(answer.failure_reason or "the callback reported a failure")
        if time.monotonic() > deadline:
            raise StepFailure(
                f"no answer to callback {token} within {call.hooks.callback_timeout_seconds:.0f} s"
            )
        if call.stopping.wait(CALLBACK_POLL_SECONDS):
            raise StepFailure(f"no answer to callback {token}: the run was stopped")


def quality_check(call: StepCall) -> dict[str, Any]:
    """The DataQuality check as SageMaker documents its flags and baselines."""
    args, extras, store = call.arguments, call.extras, call.store
    if extras.get("CheckType") != DATA_QUALITY_CHECK:
        raise StepFailure(f"QualityCheck type {extras.get('CheckType')} is not supported locally")
    output_uri = args["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/")
    group = extras.get("ModelPackageGroupName")
    supplied = (
        extras.get("SuppliedBaselineStatistics"),
        extras.get("SuppliedBaselineConstraints"),
    )
    if supplied[0] and supplied[1]:
        previous: tuple[str, str] | None = (str(supplied[0]), str(supplied[1]))
    else:
        previous = approved_baseline(call.state, group)
    skip, register_new = bool(extras.get("SkipCheck")), bool(extras.get("RegisterNewBaseline"))
    if previous is None and not (skip and register_new):
        raise StepFailure(
            f"no drift-check baseline: model package group {group!r} has no approved package "
            "with DriftCheckBaselines and none was supplied. For a first run set "
            "SkipDataQualityCheck=true and RegisterNewBaseline=true."
        )
    if previous is not None and not skip:
        for uri in previous:
            if not store.path(uri).is_file():
                raise StepFailure(
                    f"ClientError: the drift-check baseline {uri} is gone (local store: "
                    f"{store.path(uri)}). Check against another baseline "
                    "(SuppliedBaseline* parameters), or compute a new one: "
                    "SkipDataQualityCheck=true RegisterNewBaseline=true."
                )
    outcome = jobs.run_processing_job(
        call.job_name,
        analyzer_request(args, None if skip else previous),
        store,
        call.sandbox,
        image_environment=ANALYZER_IMAGE_ENVIRONMENT,
    )
    finished(outcome, call)
    violations_file = store.path(f"{output_uri}/{VIOLATIONS_FILE}")
    violations = (
        json.loads(violations_file.read_text())["violations"] if violations_file.is_file() else []
    )
    calculated = (f"{output_uri}/{STATISTICS_FILE}", f"{output_uri}/{CONSTRAINTS_FILE}")
    used = calculated if register_new else previous
    assert used is not None
    properties = {
        "CalculatedBaselineStatistics": calculated[0],
        "CalculatedBaselineConstraints": calculated[1],
        "BaselineUsedForDriftCheckStatistics": used[0],
        "BaselineUsedForDriftCheckConstraints": used[1],
        "ViolationReport": f"{output_uri}/{VIOLATIONS_FILE}" if violations else None,
    }
    if violations and extras.get("FailOnViolation", True):
        summary = "; ".join(
            f"{v['feature_name']}: {v['constraint_check_type']} ({v['description']})"
            for v in violations[:5]
        )
        raise StepFailure(
            f"ClientError: {len(violations)} data-quality violation(s) against the baseline: "
            f"{summary}. Report: {properties['ViolationReport']}"
        )
    return properties


def analyzer_request(request: dict[str, Any], baseline: tuple[str, str] | None) -> dict[str, Any]:
    """A QualityCheck's CreateProcessingJob request, its entrypoint the local analyzer.

    `baseline`: the statistics and constraints objects to check against (None: baseline only).
    """
    environment = request["Environment"]
    header = json.loads(environment["dataset_format"]).get("csv", {}).get("header", True)
    arguments = ["--dataset", environment["dataset_source"]]
    arguments += ["--output-dir", environment["output_path"]]
    if not header:
        arguments.append("--no-header")
    inputs = list(request["ProcessingInputs"])
    for kind, uri in zip(("statistics", "constraints"), baseline or (), strict=False):
        local = f"{BASELINE_DIR}/{kind}"
        inputs.append(
            {
                "InputName": f"baseline_{kind}",
                "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": S3DataType.S3_PREFIX},
            }
        )
        arguments += [f"--baseline-{kind}", f"{local}/{uri.rsplit('/', 1)[-1]}"]
    app = {**request["AppSpecification"], "ContainerEntrypoint": ANALYZER_ENTRYPOINT}
    app["ContainerArguments"] = arguments
    return {**request, "AppSpecification": app, "ProcessingInputs": inputs}


def approved_baseline(state: LocalState, group: str | None) -> tuple[str, str] | None:
    """The drift-check baseline of the group's latest approved package that has one."""
    if not group:
        return None
    for package in state.packages(group):
        if package["ModelApprovalStatus"] != ApprovalStatus.APPROVED:
            continue
        quality = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
        stats, constraints = quality.get("Statistics"), quality.get("Constraints")
        if stats and constraints:
            return stats["S3Uri"], constraints["S3Uri"]
    return None


EXECUTORS: dict[str, Executor] = {
    StepType.PROCESSING: processing,
    StepType.TRAINING: training,
    StepType.TRANSFORM: transform,
    StepType.QUALITY_CHECK: quality_check,
    StepType.MODEL: model,
    StepType.REGISTER_MODEL: register_model,
    StepType.CALLBACK: callback,
}
"""The step types with work of their own (Condition and Fail are the engine's: no work)."""
