"""What deploy needs from a model package, read from its DescribeModelPackage answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.errors import UsageError
from tabular.contract import ApprovalStatus
from tabular.names import SMOKE_SAMPLE_PROPERTY

APPROVED = ApprovalStatus.APPROVED


class PackageRefused(UsageError):
    """The package cannot be deployed; the message says why and what to do."""


@dataclass(frozen=True)
class Package:
    arn: str
    group: str
    version: int
    status: str
    approval_description: str
    realtime_instance_types: tuple[str, ...]
    baseline_statistics: str | None  # the package's data-quality baseline (Model Monitor)
    baseline_constraints: str | None
    smoke_sample: str | None  # s3 URI of the test rows and predictions the pipeline recorded
    evaluation_report: str | None = None  # s3 URI of the Evaluate step's metrics

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> Package:
        metrics = described.get("ModelMetrics") or {}
        quality = metrics.get("ModelDataQuality") or {}
        statistics = (metrics.get("ModelQuality") or {}).get("Statistics") or {}
        inference = described.get("InferenceSpecification") or {}
        return cls(
            arn=described["ModelPackageArn"],
            group=described.get("ModelPackageGroupName", ""),
            version=int(described.get("ModelPackageVersion", 0)),
            status=described.get("ModelApprovalStatus", ""),
            approval_description=described.get("ApprovalDescription") or "",
            realtime_instance_types=tuple(
                inference.get("SupportedRealtimeInferenceInstanceTypes") or ()
            ),
            baseline_statistics=(quality.get("Statistics") or {}).get("S3Uri"),
            baseline_constraints=(quality.get("Constraints") or {}).get("S3Uri"),
            smoke_sample=(described.get("CustomerMetadataProperties") or {}).get(
                SMOKE_SAMPLE_PROPERTY
            ),
            evaluation_report=statistics.get("S3Uri"),
        )

    @property
    def label(self) -> str:
        return f"{self.group} v{self.version}"

    def check_approved(self) -> None:
        """Only an Approved package deploys."""
        if self.status != APPROVED:
            why = f" ({self.approval_description})" if self.approval_description else ""
            raise PackageRefused(
                f"model package {self.label} is {self.status}{why}, not {APPROVED}: only an "
                f"approved package deploys; approve it (`python -m pipelines approve "
                "<execution> --aws`) or choose an approved version with --version"
            )


def package_arn(group_arn: str, version: int) -> str:
    """The ARN of version `version` in the group whose ARN is `group_arn`."""
    return f"{group_arn.replace(':model-package-group/', ':model-package/', 1)}/{version}"
