"""The approved package of the local registry that a local server or endpoint serves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.deploy.package import APPROVED
from pipelines.deploy.smoke import SmokeSample, SmokeSampleError
from pipelines.errors import UsageError
from pipelines.local import runner_for
from runtime.engine import LocalPipelineRunner
from runtime.serving.container import StagedContainer, stage_container
from runtime.serving.server import ServingError
from runtime.state import StateError
from runtime.store import StoreError
from steps.config import Config
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
        if package["ModelApprovalStatus"] != APPROVED:
            raise LocalPackageError(
                f"model package {group} v{version} is {package['ModelApprovalStatus']}, not "
                f"{APPROVED}: only an approved package is served; approve it (`python -m "
                f"pipelines approve <execution>`) or choose an approved version with --version"
            )
    else:
        approved = [p for p in packages if p["ModelApprovalStatus"] == APPROVED]
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
    except ServingError as error:
        raise LocalPackageError(f"model package {package.label}: {error}") from None


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
