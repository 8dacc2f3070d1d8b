"""The approved package of the local registry that a local server or endpoint serves."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Config
from pipelines.deploy.smoke import SmokeSample, SmokeSampleError
from pipelines.errors import UsageError
from pipelines.local import runner_for
from runtime.engine import LocalPipelineRunner
from runtime.jobs.contract import JobSetupError
from runtime.jobs.sandbox import fetch_code, safe_extract
from runtime.serving.server import ENV_PROGRAM, ENV_SUBMIT_DIRECTORY
from runtime.state import StateError
from runtime.store import LocalS3, StoreError
from tabular.contract import ApprovalStatus
from tabular.names import SMOKE_SAMPLE_PROPERTY


class LocalPackageError(UsageError):
    """No approved package to serve, or one that cannot be staged; the message says the fix."""


@dataclass(frozen=True)
class LocalPackage:
    arn: str
    group: str
    version: int
    description: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.group} v{self.version}"

    @property
    def container(self) -> dict[str, Any]:
        containers = self.description["InferenceSpecification"]["Containers"]
        return dict(containers[0])

    def baseline(self) -> tuple[str | None, str | None]:
        """The package's data-quality baseline: statistics and constraints URIs."""
        quality = (self.description.get("DriftCheckBaselines") or {}).get("ModelDataQuality")
        quality = quality or (self.description.get("ModelMetrics") or {}).get("ModelDataQuality")
        quality = quality or {}
        return (
            (quality.get("Statistics") or {}).get("S3Uri"),
            (quality.get("Constraints") or {}).get("S3Uri"),
        )


def approved_package(
    cfg: Config, version: int | None, runner: LocalPipelineRunner | None = None
) -> LocalPackage:
    """The latest Approved package of the configured group, or version `version` (Approved)."""
    runner = runner or runner_for(cfg)
    group = cfg.registry.model_package_group
    packages = runner.state.packages(group)
    hint = "run `make run-local` (its approval policy approves a model that passes the gate)"
    if version is not None:
        found = [p for p in packages if int(p["ModelPackageVersion"]) == version]
        if not found:
            known = ", ".join(f"v{p['ModelPackageVersion']}" for p in packages) or "none"
            raise LocalPackageError(
                f"--version {version}: the local registry has no such version of {group} "
                f"(it has: {known}); pick one of them or {hint}"
            )
        package = found[0]
        if package["ModelApprovalStatus"] != ApprovalStatus.APPROVED:
            raise LocalPackageError(
                f"model package {group} v{version} is {package['ModelApprovalStatus']}, not "
                f"{ApprovalStatus.APPROVED.value}: only an approved package is served; approve "
                "it (`python -m pipelines approve <execution>`) or choose an approved version "
                "with --version"
            )
    else:
        approved = [p for p in packages if p["ModelApprovalStatus"] == ApprovalStatus.APPROVED]
        if not approved:
            raise LocalPackageError(
                f"the local registry ({runner.workspace}) has no Approved package in group "
                f"{group}; {hint}, or approve one with `python -m pipelines approve <execution>`"
            )
        package = approved[0]
    return LocalPackage(
        package["ModelPackageArn"], group, int(package["ModelPackageVersion"]), package
    )


def stage(runner: LocalPipelineRunner, package: LocalPackage, destination: Path) -> StagedContainer:
    """The package's model and code, extracted for a model server."""
    try:
        return stage_container(runner.store, package.container, destination)
    except LocalPackageError as error:
        raise LocalPackageError(f"model package {package.label}: {error}") from None


# SageMaker downloads ModelDataUrl into /opt/ml/model and fetches the inference code from
# SAGEMAKER_SUBMIT_DIRECTORY (a sourcedir.tar.gz or a prefix) before it starts the container;
# the local server gets the same from the local store, by batch transform's staging rules.
MODEL_SUBDIR = "model"
CODE_SUBDIR = "code"


@dataclass(frozen=True)
class StagedContainer:
    """A container's model folder and the environment its server starts with."""

    model_dir: Path
    environment: dict[str, str]


def stage_container(
    store: LocalS3, container: Mapping[str, Any], destination: Path
) -> StagedContainer:
    """Extract the model archive and fetch the code of ``container`` into ``destination``.

    ``destination`` is replaced as a whole once everything is staged, so a failure leaves what
    was there before. Raises :class:`ServingError` naming the field and the fix.
    """
    environment = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
    if not environment.get(ENV_PROGRAM):
        raise LocalPackageError(
            f"the model's container has no {ENV_PROGRAM} in its Environment; the local server "
            "serves script-mode models (inference code named by SAGEMAKER_PROGRAM)."
        )
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        model_dir = partial / MODEL_SUBDIR
        model_dir.mkdir()
        model_data = container.get("ModelDataUrl")
        if model_data:
            try:
                archive = store.path(model_data)
            except StoreError as error:
                raise LocalPackageError(f"ModelDataUrl: {error}") from None
            if not archive.is_file():
                raise LocalPackageError(
                    f"ModelDataUrl {model_data!r} does not exist (local store: {archive}); run "
                    "the pipeline again to register a package whose model is in the store."
                )
            safe_extract(archive, model_dir, "ModelDataUrl")
        submit = environment.get(ENV_SUBMIT_DIRECTORY)
        if submit and "://" in submit:
            fetch_code(store, submit, partial / CODE_SUBDIR, f"Environment.{ENV_SUBMIT_DIRECTORY}")
        if destination.exists():
            shutil.rmtree(destination)
        partial.rename(destination)
    except JobSetupError as error:
        raise LocalPackageError(str(error).split(": ", 1)[-1]) from None
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    if submit and "://" in submit:
        environment[ENV_SUBMIT_DIRECTORY] = str(destination / CODE_SUBDIR)
    return StagedContainer(destination / MODEL_SUBDIR, environment)


def smoke_sample(runner: LocalPipelineRunner, package: LocalPackage) -> SmokeSample | None:
    """The test rows and predictions the pipeline recorded for the package, if it names them."""
    uri = (package.description.get("CustomerMetadataProperties") or {}).get(SMOKE_SAMPLE_PROPERTY)
    if not uri:
        return None
    try:
        text = runner.store.path(uri).read_text(encoding="utf-8")
        return SmokeSample.parse(json.loads(text), uri)
    except (OSError, ValueError, StoreError, StateError) as error:
        if isinstance(error, SmokeSampleError):
            raise
        raise SmokeSampleError(f"{uri}: cannot be read ({error}); re-run the pipeline") from None
