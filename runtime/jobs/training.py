"""CreateTrainingJob, locally, in the framework containers' script mode."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runtime.jobs.contract import (
    CLIENT_ERROR,
    DEFAULT_LOG_LEVEL,
    INSTANCE_GROUP,
    NETWORK_INTERFACE,
    VALIDATION,
    JobKind,
    JobOutcome,
    JobSetupError,
    JobStatus,
)
from runtime.jobs.launcher import (
    Attempt,
    Launch,
    add_host_env,
    cpu_share,
    describe_job,
    host_addresses,
    job_arn,
    launch,
    max_runtime,
    outcome,
    stage_hosts,
)
from runtime.jobs.sandbox import (
    check_s3_data_type,
    check_uncompressed,
    check_uri,
    container_path,
    describe_share,
    fetch_code,
    host_share,
    job_env,
    map_container_value,
    map_tree,
    note,
    required,
    stage_objects,
    write_tar_gz,
)
from runtime.store import LocalS3
from tabular.contract import (
    CODE_DIR,
    FAILURE_FILE,
    HP_LOG_LEVEL,
    HP_PREFIX,
    HP_PROGRAM,
    HP_SUBMIT_DIRECTORY,
    HYPERPARAMETERS_FILE,
    INPUT_CONFIG_DIR,
    INPUT_DATA_CONFIG_FILE,
    INPUT_DATA_DIR,
    INPUT_DIR,
    MODEL_ARCHIVE,
    MODEL_DIR,
    OUTPUT_ARCHIVE,
    OUTPUT_DATA_DIR,
    OUTPUT_DIR,
    OUTPUT_INTERMEDIATE_DIR,
    RESOURCE_CONFIG_FILE,
    TOOLKIT_HYPERPARAMETERS,
    S3DataDistribution,
)


def _decode_hyperparameter(value: str) -> Any:
    """The toolkit's reading of a hyperparameters.json value: JSON if it parses, else the text."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _hyperparameter_text(value: Any) -> str:
    """HyperParameters values are strings in the API; a resolved non-string is JSON-encoded."""
    return value if isinstance(value, str) else json.dumps(value)


def _cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``--key value`` per hyperparameter, sorted by key (the toolkit's ``to_cmd_args``)."""
    args = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        args.append(f"--{key}" if len(key) > 1 else f"-{key}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append("" if value is None else str(value))
    return args


def _env_value(value: Any) -> str:
    """The toolkit's ``to_env_vars`` value format: strings as they are, the rest compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class _TrainingSetup:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    metrics: list[tuple[str, re.Pattern[str]]]


def _metric_definitions(algorithm: Mapping[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    metrics = []
    for index, item in enumerate(algorithm.get("MetricDefinitions") or []):
        where = f"AlgorithmSpecification.MetricDefinitions[{index}]"
        name = required(item, "Name", where)
        try:
            metrics.append((name, re.compile(required(item, "Regex", where))))
        except re.error as error:
            raise JobSetupError(
                VALIDATION, f"{where}.Regex is not a valid regex: {error}"
            ) from None
    return metrics


def _stage_channels(
    request: Mapping[str, Any], store: LocalS3, sandbox: Path, log_path: Path, host: tuple[int, int]
) -> dict[str, dict[str, str]]:
    """Copy each channel to /opt/ml/input/data/<channel>; return inputdataconfig.json.

    ``host=(i, n)``: host ``i`` of ``n``; a ShardedByS3Key channel gets its share of objects.
    """
    input_mode = (request.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    config = {}
    for index, channel in enumerate(request.get("InputDataConfig") or []):
        where = f"InputDataConfig[{index}]"
        name = required(channel, "ChannelName", where)
        source = required(channel, "DataSource", where)
        if "S3DataSource" not in source:
            raise JobSetupError(
                CLIENT_ERROR,
                f"{where} ({name}): only S3DataSource channels are supported by the local runtime.",
            )
        s3 = source["S3DataSource"]
        check_s3_data_type(s3.get("S3DataType"), f"{where}.DataSource.S3DataSource.S3DataType")
        check_uncompressed(channel.get("CompressionType"), f"{where}.CompressionType")
        mode = channel.get("InputMode") or input_mode
        if mode != "File":
            raise JobSetupError(
                CLIENT_ERROR,
                f"{where} ({name}): input mode {mode!r} is not supported by the "
                "local runtime; use 'File'.",
            )
        uri = required(s3, "S3Uri", f"{where}.DataSource.S3DataSource")
        distribution = s3.get("S3DataDistributionType") or S3DataDistribution.FULLY_REPLICATED
        share = host_share(
            distribution, f"{where}.DataSource.S3DataSource.S3DataDistributionType", host
        )
        target = container_path(sandbox, f"{INPUT_DATA_DIR}/{name}")
        staged = stage_objects(store, uri, target, f"{where} ({name})", share)
        shown = describe_share(distribution, host)
        note(log_path, f"channel {name}: {len(staged)} object(s) from {uri}{shown}")
        entry = {
            "TrainingInputMode": mode,
            "S3DistributionType": str(distribution),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        config[name] = entry
    return config


def _toolkit_env(
    name: str,
    hyperparameters: Mapping[str, Any],
    input_data_config: Mapping[str, Any],
    resource_config: Mapping[str, Any],
    program: str,
    submit_directory: str,
    sandbox: Path,
) -> dict[str, str]:
    """The ``SM_*`` variables sagemaker-training-toolkit sets for the user's script."""
    user = {k: v for k, v in hyperparameters.items() if not k.startswith(HP_PREFIX)}
    framework = {
        k: v
        for k, v in hyperparameters.items()
        if k.startswith(HP_PREFIX) and k not in TOOLKIT_HYPERPARAMETERS
    }
    channels = {channel: f"{INPUT_DATA_DIR}/{channel}" for channel in input_data_config}
    module_name = program[:-3] if program.endswith(".py") else program
    values: dict[str, Any] = {
        "additional_framework_parameters": framework,
        "channel_input_dirs": channels,
        "current_host": resource_config["current_host"],
        "current_instance_type": resource_config["current_instance_type"],
        "current_instance_group": INSTANCE_GROUP,
        "framework_module": None,
        "hosts": resource_config["hosts"],
        "hyperparameters": user,
        "input_config_dir": INPUT_CONFIG_DIR,
        "input_data_config": dict(input_data_config),
        "input_dir": INPUT_DIR,
        "is_master": resource_config["current_host"] == resource_config["hosts"][0],
        "job_name": name,
        "log_level": hyperparameters.get(HP_LOG_LEVEL, DEFAULT_LOG_LEVEL),
        "model_dir": MODEL_DIR,
        "module_dir": submit_directory,
        "module_name": module_name,
        "network_interface_name": resource_config["network_interface_name"],
        "num_cpus": cpu_share(len(resource_config["hosts"])),
        "num_gpus": 0,
        "output_data_dir": OUTPUT_DATA_DIR,
        "output_dir": OUTPUT_DIR,
        "output_intermediate_dir": OUTPUT_INTERMEDIATE_DIR,
        "resource_config": dict(resource_config),
        "user_entry_point": program,
    }
    env = {
        key: values[key]
        for key in (
            "hosts",
            "network_interface_name",
            "user_entry_point",
            "resource_config",
            "input_data_config",
            "output_data_dir",
            "current_host",
            "current_instance_type",
            "current_instance_group",
            "module_name",
            "log_level",
            "framework_module",
            "input_dir",
            "input_config_dir",
            "output_dir",
            "num_cpus",
            "num_gpus",
            "model_dir",
            "module_dir",
            "output_intermediate_dir",
        )
    }
    env["hps"] = user
    env["framework_params"] = framework
    env["channels"] = sorted(channels)
    env["training_env"] = values
    env["user_args"] = _cmd_args(user)
    for channel, path in channels.items():
        env[f"channel_{channel}"] = path
    for key, value in user.items():
        env[f"hp_{key}"] = value
    mapped = map_tree(sandbox, env)
    return {f"SM_{key.upper()}": _env_value(value) for key, value in mapped.items()}


def _stage_training(
    name: str,
    request: Mapping[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str,
    log_path: Path,
    addresses: Mapping[str, str],
    host: int,
) -> _TrainingSetup:
    algorithm = required(request, "AlgorithmSpecification", "CreateTrainingJob")
    metrics = _metric_definitions(algorithm)
    raw = {
        str(k): _hyperparameter_text(v) for k, v in (request.get("HyperParameters") or {}).items()
    }
    hyperparameters = {k: _decode_hyperparameter(v) for k, v in raw.items()}
    program = hyperparameters.get(HP_PROGRAM)
    if not program:
        raise JobSetupError(
            CLIENT_ERROR,
            f"HyperParameters has no {HP_PROGRAM}: the job would run the built-in algorithm of "
            f"{algorithm.get('TrainingImage')!r}, and built-in algorithm mode is not supported "
            "by the local runtime. Run the image in script mode (an estimator with entry_point).",
        )
    program = str(program)
    output_path = required(
        required(request, "OutputDataConfig", "CreateTrainingJob"),
        "S3OutputPath",
        "OutputDataConfig",
    )
    check_uri(store, output_path, "OutputDataConfig.S3OutputPath")
    for directory in (
        MODEL_DIR,
        CODE_DIR,
        INPUT_CONFIG_DIR,
        OUTPUT_DATA_DIR,
        OUTPUT_INTERMEDIATE_DIR,
    ):
        container_path(sandbox, directory).mkdir(parents=True, exist_ok=True)
    code_dir = container_path(sandbox, CODE_DIR)
    submit_directory = hyperparameters.get(HP_SUBMIT_DIRECTORY)
    if submit_directory:
        fetch_code(store, str(submit_directory), code_dir, f"HyperParameters.{HP_SUBMIT_DIRECTORY}")
        note(log_path, f"code: {submit_directory} -> {CODE_DIR}")
    entry = code_dir / program
    if not entry.is_file():
        raise JobSetupError(
            CLIENT_ERROR,
            f"entry point {program!r} ({HP_PROGRAM}) is not in the code from "
            f"{HP_SUBMIT_DIRECTORY}={submit_directory!r}; files there: "
            f"{sorted(p.relative_to(code_dir).as_posix() for p in code_dir.rglob('*'))[:20]}.",
        )
    hosts = list(addresses)
    input_data_config = _stage_channels(request, store, sandbox, log_path, (host, len(hosts)))
    resources = request.get("ResourceConfig") or {}
    instance_type = resources.get("InstanceType", "local")
    resource_config = {
        "current_host": hosts[host],
        "current_instance_type": instance_type,
        "current_group_name": INSTANCE_GROUP,
        "hosts": hosts,
        "instance_groups": [
            {
                "instance_group_name": INSTANCE_GROUP,
                "instance_type": instance_type,
                "hosts": hosts,
            }
        ],
        "network_interface_name": NETWORK_INTERFACE,
    }
    config_dir = container_path(sandbox, INPUT_CONFIG_DIR)
    for file_name, content in (
        (HYPERPARAMETERS_FILE, raw),
        (RESOURCE_CONFIG_FILE, resource_config),
        (INPUT_DATA_CONFIG_FILE, input_data_config),
    ):
        (config_dir / file_name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    toolkit = _toolkit_env(
        name,
        hyperparameters,
        input_data_config,
        resource_config,
        program,
        str(submit_directory or CODE_DIR),
        sandbox,
    )
    env = job_env(sandbox, request.get("Environment"))
    env.update(toolkit)
    env["TRAINING_JOB_NAME"] = name
    env["TRAINING_JOB_ARN"] = job_arn(JobKind.TRAINING, name)
    add_host_env(env, addresses)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), env.get("PYTHONPATH")]))
    user = {k: v for k, v in hyperparameters.items() if not k.startswith(HP_PREFIX)}
    args = [map_container_value(sandbox, arg) for arg in _cmd_args(user)]
    if program.endswith(".py"):
        argv = [python, program, *args]
    elif program.endswith(".sh"):
        argv = ["/bin/sh", program, *args]
    else:
        raise JobSetupError(
            CLIENT_ERROR,
            f"{HP_PROGRAM}={program!r}: the local runtime runs Python (.py) or shell (.sh) entry "
            "points only.",
        )
    return _TrainingSetup(argv, env, code_dir, metrics)


def _final_metrics(
    log_path: Path, metrics: Sequence[tuple[str, re.Pattern[str]]], timestamp: datetime
) -> list[dict[str, Any]]:
    """The last value each MetricDefinitions regex captured in the job's log, line by line."""
    if not metrics or not log_path.is_file():
        return []
    last: dict[str, float] = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        for metric, pattern in metrics:
            match = pattern.search(line)
            if match is None:
                continue
            try:
                last[metric] = float(match.group(1) if match.groups() else match.group(0))
            except ValueError:
                continue
    return [
        {"MetricName": metric, "Value": last[metric], "Timestamp": timestamp.isoformat()}
        for metric, _ in metrics
        if metric in last
    ]


def run_training_job(
    name: str,
    request: dict[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str = sys.executable,
) -> JobOutcome:
    """Run a CreateTrainingJob request in the framework containers' script mode, in ``sandbox``.

    ``ResourceConfig.InstanceCount`` = N runs N host processes at once, each with its own
    sandbox (the first in ``sandbox``, ``algo-k`` in ``sandbox/hosts/algo-k``), its own
    resourceconfig.json (``current_host``, ``hosts``) and its share of every ShardedByS3Key
    channel; they reach each other on loopback addresses (``SM_LOCAL_HOST_ADDRESSES``, the
    runtime's stand-in for the cluster's DNS). On success the first host's ``/opt/ml/model`` is
    published as ``<S3OutputPath>/<name>/output/model.tar.gz`` and its non-empty
    ``/opt/ml/output/data`` as ``.../output/output.tar.gz``. The FailureReason is the
    ``/opt/ml/output/failure`` of the first host that failed when it wrote one, else as for
    processing jobs; the other hosts are then stopped. ``peak_rss_bytes`` is the largest of
    any one host's.
    """
    metrics: list[tuple[str, re.Pattern[str]]] = []
    output_path = str((request.get("OutputDataConfig") or {}).get("S3OutputPath", "")).rstrip("/")
    job_output = f"{output_path}/{name}/output"

    def stage(log_path: Path) -> Launch:
        count = (request.get("ResourceConfig") or {}).get("InstanceCount", 1)
        addresses = host_addresses(count, "ResourceConfig.InstanceCount")
        setup, others = stage_hosts(
            sandbox,
            log_path,
            addresses,
            lambda root, log, index: _stage_training(
                name, request, store, root, python, log, addresses, index
            ),
        )
        metrics.extend(setup.metrics)
        return Launch(
            setup.argv,
            setup.env,
            setup.cwd,
            lambda: _publish_training_outputs(store, sandbox, job_output),
            next(iter(addresses)),
            others,
        )

    run, log_path = launch(sandbox, max_runtime(request), FAILURE_FILE, stage)
    describe = describe_job(
        JobKind.TRAINING,
        name,
        run,
        request,
        "AlgorithmSpecification",
        "HyperParameters",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
        "Environment",
        "RoleArn",
    )
    describe.update(
        {
            "SecondaryStatus": _secondary_status(run),
            "ModelArtifacts": {"S3ModelArtifacts": f"{job_output}/{MODEL_ARCHIVE}"},
            "TrainingTimeInSeconds": int(run.result.seconds) if run.result else 0,
        }
    )
    final_metrics = _final_metrics(log_path, metrics, run.ended)
    if final_metrics:
        describe["FinalMetricDataList"] = final_metrics
    return outcome(run, describe, log_path)


def _secondary_status(run: Attempt) -> str:
    if run.status is JobStatus.COMPLETED:
        return "Completed"
    return "MaxRuntimeExceeded" if run.result and run.result.timed_out else "Failed"


def _publish_training_outputs(store: LocalS3, sandbox: Path, job_output: str) -> None:
    artifacts = Path(sandbox, "artifacts")
    model_archive = artifacts / MODEL_ARCHIVE
    write_tar_gz(container_path(sandbox, MODEL_DIR), model_archive)
    store.upload(model_archive, f"{job_output}/{MODEL_ARCHIVE}")
    output_data = container_path(sandbox, OUTPUT_DATA_DIR)
    if any(output_data.iterdir()):
        output_archive = artifacts / OUTPUT_ARCHIVE
        write_tar_gz(output_data, output_archive)
        store.upload(output_archive, f"{job_output}/{OUTPUT_ARCHIVE}")
