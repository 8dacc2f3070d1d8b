"""A job's sandbox: its ``/opt/ml``, its environment, and what is staged into it."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from runtime.jobs.contract import (
    CLIENT_ERROR,
    JOB_HOME,
    LOG_NAME,
    LOG_PREFIX,
    RUNTIME_PREFIXES,
    RUNTIME_VARIABLES,
    SHARED_HOST_DEFAULTS,
    VALIDATION,
    JobSetupError,
)
from runtime.store import LocalS3, StoreError
from tabular.contract import OPT_ML, S3DataDistribution, S3DataType
from tabular.files import UnsafeMember, extract_tar


def container_path(sandbox: Path, path: str) -> Path:
    """The sandbox path behind a container path under ``/opt/ml`` (``<sandbox>/opt/ml/...``)."""
    pure = PurePosixPath(path)
    root = PurePosixPath(OPT_ML)
    if not pure.is_absolute() or ".." in pure.parts or not pure.is_relative_to(root):
        raise ValueError(
            f"{path!r} is not a container path under {OPT_ML}; SageMaker jobs read and write "
            f"under {OPT_ML}/ (e.g. /opt/ml/processing/input)."
        )
    return Path(sandbox, "opt", "ml", *pure.relative_to(root).parts)


def map_container_value(sandbox: Path, value: str) -> str:
    """An argument or environment value with a leading ``/opt/ml/`` path mapped to the sandbox.

    Other values (``--flag``, ``0.3``, ``s3://...``, ``/tmp/x``) are returned as they are.
    """
    if value == OPT_ML or value.startswith(OPT_ML + "/"):
        mapped = str(container_path(sandbox, value))
        return mapped + "/" if value.endswith("/") and not mapped.endswith("/") else mapped
    return value


def map_tree(sandbox: Path, value: Any) -> Any:
    """:func:`map_container_value` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return map_container_value(sandbox, value)
    if isinstance(value, list):
        return [map_tree(sandbox, item) for item in value]
    if isinstance(value, dict):
        return {key: map_tree(sandbox, item) for key, item in value.items()}
    return value


def sandbox_path(sandbox: Path, path: str, field: str) -> Path:
    try:
        return container_path(sandbox, path)
    except ValueError as error:
        raise JobSetupError(VALIDATION, f"{field}: {error}") from None


def required(mapping: Any, key: str, where: str) -> Any:
    """A required request field; a missing one fails the job as SageMaker's validation would."""
    if not isinstance(mapping, Mapping):
        raise JobSetupError(VALIDATION, f"{where} must be an object, got {mapping!r}.")
    value = mapping.get(key)
    if value is None or value == "":
        raise JobSetupError(VALIDATION, f"{where}.{key} is required but missing from the request.")
    return value


def host_env() -> dict[str, str]:
    """The runtime's share of the host environment (what every job starts from)."""
    env = dict(SHARED_HOST_DEFAULTS)
    env.update(
        (key, value)
        for key, value in os.environ.items()
        if key in RUNTIME_VARIABLES or key.startswith(RUNTIME_PREFIXES)
    )
    return env


def _base_env(sandbox: Path) -> dict[str, str]:
    """:func:`host_env`, and a HOME inside the sandbox."""
    env = host_env()
    home = Path(sandbox, JOB_HOME)
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    return env


def job_env(sandbox: Path, *layers: Mapping[str, Any] | None) -> dict[str, str]:
    """:func:`_base_env` plus each layer in order (``/opt/ml/`` values mapped to the sandbox)."""
    env = _base_env(sandbox)
    for layer in layers:
        for key, value in (layer or {}).items():
            env[str(key)] = map_container_value(sandbox, str(value))
    return env


def prepare_sandbox(sandbox: Path) -> Path:
    """Create ``<sandbox>/opt/ml``; refuse a sandbox another job already used."""
    opt_ml = Path(sandbox, "opt", "ml")
    if opt_ml.exists() and any(opt_ml.iterdir()):
        raise ValueError(
            f"sandbox {sandbox} already holds a job's /opt/ml; give every job a fresh sandbox "
            "(or remove it before re-running the job)."
        )
    opt_ml.mkdir(parents=True, exist_ok=True)
    log_path = Path(sandbox, LOG_NAME)
    log_path.touch()
    return log_path


def note(log_path: Path, text: str) -> None:
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"{LOG_PREFIX}{text}\n")


def stage_objects(
    store: LocalS3, uri: str, destination: Path, field: str, share: tuple[int, int] = (0, 1)
) -> list[Path]:
    """Copy the objects an S3Prefix data source selects (``share``: a host's share of them, see
    :meth:`LocalS3.download`); no objects at all fails as on SageMaker; a host whose share is
    empty gets an empty folder (its job decides whether it can work without)."""
    try:
        staged = store.download(uri, destination, share)
    except StoreError as error:
        raise JobSetupError(CLIENT_ERROR, f"{field}: {error}") from None
    if not staged and share[1] > 1 and store.objects(uri):
        destination.mkdir(parents=True, exist_ok=True)
        return staged
    if not staged:
        raise JobSetupError(
            CLIENT_ERROR,
            f"{field}: no objects found under {uri!r} (local store: {store.path(uri)}): fix the "
            "URI, or run the pipeline again if they were removed (a step whose published "
            "outputs are gone is not reused from the cache: it runs again and writes them).",
        )
    return staged


def host_share(value: Any, field: str, host: tuple[int, int]) -> tuple[int, int]:
    """The share of an S3 data source's objects that host ``host=(i, n)`` stages: all of them
    when ``value`` (its S3DataDistributionType, FullyReplicated when unset) is FullyReplicated,
    objects ``i, i + n, ...`` when it is ShardedByS3Key (:meth:`LocalS3.download`)."""
    distribution = value or S3DataDistribution.FULLY_REPLICATED
    if distribution not in tuple(S3DataDistribution):
        raise JobSetupError(
            VALIDATION,
            f"{field}={distribution!r} is not one of {[d.value for d in S3DataDistribution]}.",
        )
    return host if distribution == S3DataDistribution.SHARDED_BY_S3_KEY else (0, 1)


def describe_share(value: Any, host: tuple[int, int]) -> str:
    """How a staging note names host ``host=(i, n)``'s share of a source whose
    S3DataDistributionType is ``value``: nothing unless it is ShardedByS3Key."""
    if value != S3DataDistribution.SHARDED_BY_S3_KEY:
        return ""
    return f" ({S3DataDistribution.SHARDED_BY_S3_KEY.value}: host {host[0] + 1} of {host[1]})"


def check_uri(store: LocalS3, uri: str, field: str) -> str:
    try:
        store.path(uri)
    except StoreError as error:
        raise JobSetupError(VALIDATION, f"{field}: {error}") from None
    return uri


def check_s3_data_type(value: Any, field: str) -> None:
    if value not in (None, S3DataType.S3_PREFIX):
        raise JobSetupError(
            CLIENT_ERROR,
            f"{field}={value!r} is not supported by the local runtime; use "
            f"{S3DataType.S3_PREFIX.value!r}.",
        )


def check_uncompressed(value: Any, field: str) -> None:
    if value not in (None, "None"):
        raise JobSetupError(
            CLIENT_ERROR,
            f"{field}={value!r} is not supported by the local runtime; stage uncompressed "
            "objects ('None').",
        )


def safe_extract(archive: Path, destination: Path, field: str) -> None:
    """Extract a tar archive, refusing members that would land outside ``destination``."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            extract_tar(tar, destination)
    except UnsafeMember as error:
        raise JobSetupError(
            CLIENT_ERROR,
            f"{field}: {archive.name} holds an unsafe {error}; rebuild the archive with relative "
            "paths and regular files only.",
        ) from None
    except tarfile.TarError as error:
        raise JobSetupError(
            CLIENT_ERROR, f"{field}: {archive} is not a readable tar archive: {error}"
        ) from None


def fetch_code(store: LocalS3, uri: str, destination: Path, field: str) -> None:
    """Code from a ``sourcedir.tar.gz`` object (extracted) or a prefix of loose files."""
    try:
        source = store.path(uri)
    except StoreError as error:
        raise JobSetupError(VALIDATION, f"{field}: {error}") from None
    if source.is_file() and tarfile.is_tarfile(source):
        safe_extract(source, destination, field)
    else:
        stage_objects(store, uri, destination, field)


def write_tar_gz(source: Path, archive: Path) -> None:
    """Archive a directory's contents, members in sorted order (parents before children)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)
