"""`make upsert`: publish the definition exactly as built, with the code it names.

Order matters for a consistent published state: the code objects and the model package group
exist before the pipeline refers to them, and the pipeline itself changes in one API call, so a
failure part-way leaves either the old definition or the new one, never a mix.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from config import Config
from pipelines import aws
from pipelines.document import BuiltPipeline, canonical_json
from pipelines.errors import UsageError
from tabular.contract import definition_steps

SHA256_METADATA = "sha256"


class PublishError(UsageError):
    """The pipeline cannot be published as configured; the message says what to change."""


@dataclass
class PublishResult:
    action: str  # created | updated | unchanged
    diff: str
    changes: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    group_created: bool = False


def summarize_changes(old: str | None, new: str) -> list[str]:
    """One line per added, removed or changed step and parameter."""
    if old is None:
        return ["new pipeline"]
    before, after = json.loads(old), json.loads(new)
    lines = []
    for kind, get in (
        ("step", lambda d: definition_steps(d)[0]),
        ("parameter", lambda d: {p["Name"]: p for p in d.get("Parameters", [])}),
    ):
        a, b = get(before), get(after)
        lines += [f"+ {kind} {name}" for name in sorted(b.keys() - a.keys())]
        lines += [f"- {kind} {name}" for name in sorted(a.keys() - b.keys())]
        lines += [f"~ {kind} {name}" for name in sorted(a.keys() & b.keys()) if a[name] != b[name]]
    return lines


def definition_diff(old: str | None, new: str) -> str:
    """A unified diff of the canonical JSON, empty when nothing changed."""
    old_lines = [] if old is None else old.splitlines(keepends=True)
    return "".join(
        difflib.unified_diff(old_lines, new.splitlines(keepends=True), "published", "built", n=3)
    )


def check_publishable(cfg: Config) -> None:
    """SageMaker reads data from S3 only: refuse a definition whose defaults point elsewhere."""
    for name, uri in (
        ("data.input_uri", cfg.data.input_uri),
        ("data.scoring_uri", cfg.data.scoring_uri),
    ):
        if uri is not None and not uri.startswith("s3://"):
            raise PublishError(
                f"{name} is {uri!r}, but SageMaker jobs read from S3 only; upload the file and "
                f"set {name} to its s3:// URI (or pass a config whose data lives in S3)"
            )


def _upload_code(s3: Any, built: BuiltPipeline) -> list[str]:
    uploaded = []
    for artifact in built.code:
        bucket, key = artifact.s3_uri.removeprefix("s3://").split("/", 1)
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            if head.get("Metadata", {}).get(SHA256_METADATA) == artifact.sha256:
                continue
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=artifact.payload,
            Metadata={SHA256_METADATA: artifact.sha256},
        )
        uploaded.append(artifact.s3_uri)
    return uploaded


def _ensure_group(sagemaker: Any, cfg: Config) -> bool:
    group = cfg.registry.model_package_group
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return False
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("ValidationException", "ResourceNotFound"):
            raise
    sagemaker.create_model_package_group(
        ModelPackageGroupName=group,
        ModelPackageGroupDescription=f"Models trained by pipeline {cfg.pipeline.name}",
    )
    return True


def _published_definition(sagemaker: Any, name: str) -> str | None:
    try:
        described = sagemaker.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ResourceNotFound", "ValidationException"):
            return None
        raise
    return canonical_json(described["PipelineDefinition"])


def upsert(
    cfg: Config, built: BuiltPipeline, session: boto3.Session | None = None
) -> PublishResult:
    """Create or update the pipeline so that SageMaker holds exactly `built.definition`."""
    check_publishable(cfg)
    session = session or aws.session(cfg)
    s3 = aws.client(session, "s3")
    sagemaker = aws.client(session, "sagemaker")

    uploaded = _upload_code(s3, built)
    group_created = _ensure_group(sagemaker, cfg)
    published = _published_definition(sagemaker, cfg.pipeline.name)
    diff = definition_diff(published, built.definition)
    request = {
        "PipelineName": cfg.pipeline.name,
        "PipelineDefinition": built.definition,
        "PipelineDescription": cfg.pipeline.description,
        "RoleArn": cfg.aws.role_arn,
    }
    if published is None:
        sagemaker.create_pipeline(**request, PipelineDisplayName=cfg.pipeline.name)
        action = "created"
    elif diff:
        sagemaker.update_pipeline(**request)
        action = "updated"
    else:
        action = "unchanged"
    return PublishResult(
        action=action,
        diff=diff,
        changes=summarize_changes(published, built.definition),
        uploaded=uploaded,
        group_created=group_created,
    )
