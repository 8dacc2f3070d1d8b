"""CreateProcessingJob, locally: inputs staged, the entrypoint run, outputs uploaded."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from runtime.jobs.contract import CLIENT_ERROR, PYTHON_COMMAND, JobKind, JobOutcome, JobSetupError
from runtime.jobs.launcher import (
    Launch,
    add_host_env,
    describe_job,
    host_addresses,
    job_arn,
    launch,
    max_runtime,
    outcome,
    read_message,
    stage_hosts,
)
from runtime.jobs.sandbox import (
    check_s3_data_type,
    check_uncompressed,
    check_uri,
    container_path,
    describe_share,
    host_share,
    job_env,
    map_container_value,
    note,
    required,
    sandbox_path,
    stage_objects,
)
from runtime.store import LocalS3
from tabular.contract import (
    CURRENT_HOST_KEY,
    FAILURE_REASON_LIMIT,
    HOSTS_KEY,
    MESSAGE_FILE,
    OUTPUT_DIR,
    PROCESSING_CONFIG_DIR,
    PROCESSING_JOB_CONFIG_FILE,
    RESOURCE_CONFIG_FILE,
)


@dataclass(frozen=True)
class _Upload:
    local: Path
    uri: str


@dataclass(frozen=True)
class _ProcessingSetup:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    uploads: list[_Upload]


def _python_argv(command: Sequence[str], python: str) -> list[str]:
    first, *rest = command
    if PYTHON_COMMAND.fullmatch(PurePosixPath(first).name):
        return [python, *rest]
    return [first, *rest]


JOB_CONFIG_KEYS = (
    "AppSpecification", "Environment", "NetworkConfig", "ProcessingInputs",
    "ProcessingOutputConfig", "ProcessingResources", "RoleArn", "StoppingCondition",
)  # fmt: skip
"""The parts of the request SageMaker writes to a processing container's
processingjobconfig.json, beside the job's name and ARN ("How Amazon SageMaker Processing
Configures Your Processing Container": docs.aws.amazon.com/sagemaker/latest/dg/
build-your-own-processing-container.html)."""


def job_config(name: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """What a processing container finds in ``/opt/ml/config/processingjobconfig.json``."""
    return {
        "ProcessingJobArn": job_arn(JobKind.PROCESSING, name),
        "ProcessingJobName": name,
        **{key: request[key] for key in JOB_CONFIG_KEYS if key in request},
    }


def _stage_processing(
    job_name: str,
    request: Mapping[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str,
    log_path: Path,
    image_environment: Mapping[str, str] | None,
    addresses: Mapping[str, str],
    host: int,
) -> _ProcessingSetup:
    """Stage host ``host`` (an index into ``addresses``) of a processing job in ``sandbox``."""
    app = required(request, "AppSpecification", "CreateProcessingJob")
    entrypoint = app.get("ContainerEntrypoint")
    if not entrypoint:
        raise JobSetupError(
            CLIENT_ERROR,
            f"AppSpecification.ContainerEntrypoint is not set; the local runtime cannot run the "
            f"built-in entrypoint of {app.get('ImageUri')!r}. Give the job an entrypoint, e.g. "
            "['python3', '/opt/ml/processing/input/code/<script>.py'].",
        )
    for index, item in enumerate(request.get("ProcessingInputs") or []):
        where = f"ProcessingInputs[{index}]"
        name = item.get("InputName", index)
        if item.get("DatasetDefinition"):
            raise JobSetupError(
                CLIENT_ERROR,
                f"{where} ({name}): DatasetDefinition inputs are not supported "
                "by the local runtime; use an S3Input.",
            )
        s3 = required(item, "S3Input", where)
        uri = required(s3, "S3Uri", f"{where}.S3Input")
        local = required(s3, "LocalPath", f"{where}.S3Input")
        check_s3_data_type(s3.get("S3DataType"), f"{where}.S3Input.S3DataType")
        check_uncompressed(s3.get("S3CompressionType"), f"{where}.S3Input.S3CompressionType")
        if s3.get("S3InputMode") not in (None, "File"):
            raise JobSetupError(
                CLIENT_ERROR,
                f"{where}.S3Input.S3InputMode={s3['S3InputMode']!r} is not "
                "supported by the local runtime; use 'File'.",
            )
        target = sandbox_path(sandbox, local, f"{where}.S3Input.LocalPath")
        field = f"{where}.S3Input.S3DataDistributionType"
        distribution, place = s3.get("S3DataDistributionType"), (host, len(addresses))
        staged = stage_objects(
            store, uri, target, f"{where} ({name})", host_share(distribution, field, place)
        )
        shown = describe_share(distribution, place)
        note(log_path, f"input {name}: {len(staged)} object(s) from {uri} -> {local}{shown}")
    container_path(sandbox, OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    uploads = []
    outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    for index, item in enumerate(outputs):
        where = f"ProcessingOutputConfig.Outputs[{index}]"
        s3 = required(item, "S3Output", where)
        uri = check_uri(
            store, required(s3, "S3Uri", f"{where}.S3Output"), f"{where}.S3Output.S3Uri"
        )
        local = required(s3, "LocalPath", f"{where}.S3Output")
        target = sandbox_path(sandbox, local, f"{where}.S3Output.LocalPath")
        target.mkdir(parents=True, exist_ok=True)
        uploads.append(_Upload(target, uri))
    hosts = list(addresses)
    config_dir = container_path(sandbox, PROCESSING_CONFIG_DIR)
    config_dir.mkdir(parents=True, exist_ok=True)
    resource_config = {CURRENT_HOST_KEY: hosts[host], HOSTS_KEY: hosts}
    (config_dir / RESOURCE_CONFIG_FILE).write_text(json.dumps(resource_config), encoding="utf-8")
    (config_dir / PROCESSING_JOB_CONFIG_FILE).write_text(
        json.dumps(job_config(job_name, request)), encoding="utf-8"
    )
    command = [*entrypoint, *(app.get("ContainerArguments") or [])]
    argv = [map_container_value(sandbox, str(part)) for part in _python_argv(command, python)]
    env = job_env(sandbox, image_environment, request.get("Environment"))
    add_host_env(env, addresses)
    return _ProcessingSetup(argv, env, sandbox, uploads)


def run_processing_job(
    name: str,
    request: dict[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str = sys.executable,
    image_environment: Mapping[str, str] | None = None,
) -> JobOutcome:
    """Run a CreateProcessingJob request (values resolved to plain JSON) in ``sandbox``.

    Inputs are staged from ``store``, the entrypoint (``python3``/``python`` replaced by
    ``python``) runs with its arguments, and on success every output dir is uploaded to its
    ``S3Uri``. ``image_environment`` is what the image itself would set (under the request's
    Environment), for a local stand-in of an image. The FailureReason is what the job wrote to
    ``/opt/ml/output/message`` (the file SageMaker returns as a processing job's ExitMessage, its
    documented way of telling why it failed; ``/opt/ml/output/failure`` is the training jobs'
    file), else the job's last ``ERROR:`` line, else its last stderr line.

    ``ProcessingResources.ClusterConfig.InstanceCount`` = N runs N host processes at once, as
    training jobs do (:func:`runtime.jobs.launcher.stage_hosts`): each in its own sandbox, with
    its own ``/opt/ml/config/resourceconfig.json`` (``current_host``, ``hosts``) and its share
    of every ShardedByS3Key input; when all succeed, each host's output folders are uploaded
    to the output's S3Uri in host order.
    """

    def stage(log_path: Path) -> Launch:
        cluster = (request.get("ProcessingResources") or {}).get("ClusterConfig") or {}
        addresses = host_addresses(
            cluster.get("InstanceCount", 1), "ProcessingResources.ClusterConfig.InstanceCount"
        )
        setups: list[_ProcessingSetup] = []

        def stage_host(root: Path, log: Path, index: int) -> _ProcessingSetup:
            setups.append(
                _stage_processing(
                    name, request, store, root, python, log, image_environment, addresses, index
                )
            )
            return setups[-1]

        first, others = stage_hosts(sandbox, log_path, addresses, stage_host)

        def publish() -> None:
            # Every instance uploads its output folders to the same S3Uri, host by host (an
            # object two hosts both write is the last host's, as S3 keeps the last put).
            for setup in setups:
                for upload in setup.uploads:
                    store.upload(upload.local, upload.uri)

        return Launch(first.argv, first.env, first.cwd, publish, next(iter(addresses)), others)

    run, log_path = launch(sandbox, max_runtime(request), MESSAGE_FILE, stage)
    describe = describe_job(
        JobKind.PROCESSING,
        name,
        run,
        request,
        "ProcessingInputs",
        "ProcessingOutputConfig",
        "ProcessingResources",
        "StoppingCondition",
        "AppSpecification",
        "Environment",
        "NetworkConfig",
        "RoleArn",
    )
    exit_message = read_message(container_path(sandbox, MESSAGE_FILE))
    if exit_message:
        describe["ExitMessage"] = exit_message[:FAILURE_REASON_LIMIT]
    return outcome(run, describe, log_path)
