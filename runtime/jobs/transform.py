"""CreateTransformJob, locally: a script-mode model's batch transform."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.jobs.contract import (
    CLIENT_ERROR,
    DEFAULT_MAX_PAYLOAD_MB,
    PROJECT_ROOT,
    TRANSFORM_MODULE,
    VALIDATION,
    JobKind,
    JobOutcome,
    JobSetupError,
)
from runtime.jobs.launcher import (
    Launch,
    describe_job,
    launch,
    outcome,
)
from runtime.jobs.sandbox import (
    check_s3_data_type,
    check_uncompressed,
    check_uri,
    container_path,
    fetch_code,
    job_env,
    note,
    required,
    safe_extract,
    sandbox_path,
    stage_objects,
)
from runtime.store import LocalS3, StoreError
from tabular.contract import (
    ANY,
    CODE_DIR,
    FAILURE_FILE,
    FAILURE_REASON_FILE_ENV,
    INFERENCE_CODE_DIR,
    MODEL_DIR,
    OCTET_STREAM,
    OUTPUT_DIR,
    SERVING_PROGRAM,
    SERVING_SUBMIT_DIRECTORY,
)


def _primary_container(model: Mapping[str, Any]) -> Mapping[str, Any]:
    if model.get("PrimaryContainer"):
        return model["PrimaryContainer"]
    containers = model.get("Containers") or []
    if len(containers) == 1:
        return containers[0]
    found = f"{len(containers)} Containers (an inference pipeline)" if containers else "nothing"
    raise JobSetupError(
        CLIENT_ERROR,
        f"model {model.get('ModelName')!r} has no PrimaryContainer but {found}; the local "
        "runtime serves a single script-mode container.",
    )


def _stage_inference_code(
    store: LocalS3, submit_directory: str | None, sandbox: Path, log_path: Path
) -> Path:
    """Where the inference toolkit finds the user's module (default ``/opt/ml/model/code``)."""
    field = f"model Environment.{SERVING_SUBMIT_DIRECTORY}"
    if not submit_directory:
        return container_path(sandbox, INFERENCE_CODE_DIR)
    if submit_directory.startswith("/"):
        return sandbox_path(sandbox, submit_directory, field)
    code_dir = container_path(sandbox, CODE_DIR)
    fetch_code(store, submit_directory, code_dir, field)
    note(log_path, f"code: {submit_directory} -> {CODE_DIR}")
    return code_dir


def _stage_transform(
    request: Mapping[str, Any],
    model: Mapping[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str,
    log_path: Path,
) -> tuple[list[str], dict[str, str], Path, str]:
    container = _primary_container(model)
    model_env = container.get("Environment") or {}
    program = model_env.get(SERVING_PROGRAM)
    if not program:
        raise JobSetupError(
            CLIENT_ERROR,
            f"model {model.get('ModelName')!r} has no {SERVING_PROGRAM} in its container "
            "Environment; the local runtime serves script-mode models only (give the model an "
            "entry_point).",
        )
    model_dir = container_path(sandbox, MODEL_DIR)
    model_dir.mkdir(parents=True, exist_ok=True)
    model_data = container.get("ModelDataUrl")
    if model_data:
        try:
            archive = store.path(model_data)
        except StoreError as error:
            raise JobSetupError(VALIDATION, f"ModelDataUrl: {error}") from None
        if not archive.is_file():
            raise JobSetupError(
                CLIENT_ERROR,
                f"ModelDataUrl {model_data!r} does not exist (local store: {archive}): the "
                "model archive was removed after the model was created. Run the pipeline again: "
                "training runs again when its cached archive is gone, and a new model is "
                "created from what it writes.",
            )
        safe_extract(archive, model_dir, "ModelDataUrl")
        note(log_path, f"model: {model_data} -> {MODEL_DIR}")
    code_dir = _stage_inference_code(
        store, model_env.get(SERVING_SUBMIT_DIRECTORY), sandbox, log_path
    )
    if not (code_dir / program).is_file():
        raise JobSetupError(
            CLIENT_ERROR,
            f"{SERVING_PROGRAM}={program!r} is not in the inference code directory "
            f"{model_env.get(SERVING_SUBMIT_DIRECTORY) or INFERENCE_CODE_DIR}; package it with the "
            "model (code/ inside model.tar.gz) or set SAGEMAKER_SUBMIT_DIRECTORY.",
        )

    transform_input = required(request, "TransformInput", "CreateTransformJob")
    s3 = required(
        required(transform_input, "DataSource", "TransformInput"),
        "S3DataSource",
        "TransformInput.DataSource",
    )
    check_s3_data_type(s3.get("S3DataType"), "TransformInput.DataSource.S3DataSource.S3DataType")
    check_uncompressed(transform_input.get("CompressionType"), "TransformInput.CompressionType")
    uri = required(s3, "S3Uri", "TransformInput.DataSource.S3DataSource")
    input_root = Path(sandbox, "transform", "input")
    input_files = stage_objects(store, uri, input_root, "TransformInput")
    note(log_path, f"input: {len(input_files)} object(s) from {uri}")
    transform_output = required(request, "TransformOutput", "CreateTransformJob")
    output_uri = check_uri(
        store,
        required(transform_output, "S3OutputPath", "TransformOutput"),
        "TransformOutput.S3OutputPath",
    )
    output_dir = Path(sandbox, "transform", "output")
    output_dir.mkdir(parents=True, exist_ok=True)
    processing = request.get("DataProcessing") or {}
    max_payload_mb = request.get("MaxPayloadInMB")
    spec: dict[str, Any] = {
        "model_dir": str(model_dir),
        "code_dir": str(code_dir),
        "program": program,
        "input_files": [str(path) for path in input_files],
        "input_root": str(input_root),
        "output_dir": str(output_dir),
        "content_type": transform_input.get("ContentType") or OCTET_STREAM,
        "accept": transform_output.get("Accept") or ANY,
        "split_type": transform_input.get("SplitType") or "None",
        "batch_strategy": request.get("BatchStrategy") or "MultiRecord",
        "max_payload_bytes": int(
            (DEFAULT_MAX_PAYLOAD_MB if max_payload_mb is None else max_payload_mb) * 1024 * 1024
        ),
        "assemble_with": transform_output.get("AssembleWith") or "None",
        "join_source": processing.get("JoinSource") or "None",
    }
    for key, field in (("input_filter", "InputFilter"), ("output_filter", "OutputFilter")):
        if processing.get(field) is not None:
            spec[key] = processing[field]
    request_path = Path(sandbox, "transform", "request.json")
    request_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")

    env = job_env(sandbox, model_env, request.get("Environment"))
    env[FAILURE_REASON_FILE_ENV] = str(container_path(sandbox, FAILURE_FILE))
    container_path(sandbox, OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    argv = [python, "-m", TRANSFORM_MODULE, "--request", str(request_path)]
    return argv, env, output_dir, output_uri


def run_transform_job(
    name: str,
    request: dict[str, Any],
    model: dict[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str = sys.executable,
) -> JobOutcome:
    """Run a CreateTransformJob request against ``model`` (the CreateModel request it names).

    The model archive is extracted into ``/opt/ml/model``, the inference code found as the
    inference toolkit does, the input objects staged, and ``python -m runtime.serving.batch`` runs
    the job; on success ``<relative key>.out`` files are uploaded under ``S3OutputPath``.
    """

    def stage(log_path: Path) -> Launch:
        argv, env, output_dir, output_uri = _stage_transform(
            request, model, store, sandbox, python, log_path
        )
        return Launch(argv, env, sandbox, lambda: store.upload(output_dir, output_uri))

    run, log_path = launch(sandbox, None, FAILURE_FILE, stage)
    describe = describe_job(
        JobKind.TRANSFORM,
        name,
        run,
        request,
        "ModelName",
        "MaxConcurrentTransforms",
        "MaxPayloadInMB",
        "BatchStrategy",
        "Environment",
        "TransformInput",
        "TransformOutput",
        "TransformResources",
        "DataProcessing",
    )
    return outcome(run, describe, log_path)
