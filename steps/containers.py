"""Small constructors shared by the job-step builders: processors, processing inputs and outputs."""

from __future__ import annotations

from functools import cache

from sagemaker.core import image_uris
from sagemaker.core.helper.pipeline_variable import PipelineVariable
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import (
    ProcessingInput,
    ProcessingOutput,
    ProcessingS3Input,
    ProcessingS3Output,
)

from steps.context import BuildContext
from steps.security import processing_network
from tabular.contract import (
    OUTPUT_DIR,
    PROCESSING_CODE_DIR,
    SM_OUTPUT_DIR,
    InputMode,
    S3DataDistribution,
    S3DataType,
)

SKLEARN = "sklearn"
XGBOOST = "xgboost"
CODE_INPUT = "code"


def image_uri(ctx: BuildContext, framework: str, scope: str) -> str:
    """The framework image for the configured region and version (resolved offline by the SDK)."""
    images = ctx.cfg.images
    version = images.sklearn_version if framework == SKLEARN else images.xgboost_version
    return _retrieve(framework, ctx.cfg.aws.region, version, images.python_version, scope)


@cache
def _retrieve(framework: str, region: str, version: str, py_version: str, scope: str) -> str:
    """One lookup per image: the SDK re-reads its endpoint data on every call."""
    uri: str = image_uris.retrieve(
        framework,
        region=region,
        version=version,
        py_version=py_version,
        image_scope=scope,
        instance_type="ml.m5.xlarge",
    )
    return uri


def job_processor(
    ctx: BuildContext,
    job_key: str,
    framework: str,
    instance_type: PipelineVariable,
    script: str,
    instance_count: int | PipelineVariable | None = None,
    name: str | None = None,
) -> Processor:
    """A processor that runs one of our scripts with `python3` on a framework image.

    Its code comes from :func:`code_input`, a prefix holding the script and the shared job
    package: the SDK's ScriptProcessor mounts one file, and its FrameworkProcessor uploads a
    sourcedir.tar.gz plus a generated runproc.sh that unpacks it, both while the definition is
    built. An S3Prefix input keeps the key paths below the prefix, so the package lands beside
    the script with no unpacking step (the same `code` input and path FrameworkProcessor uses).
    The environment names the container's output directory, where the job writes why it failed.
    ``instance_count`` (default: the job's config) and ``name`` (the job names' part, default
    ``job_key``) serve the passes of one job section that run as steps of their own.
    """
    job = ctx.job(job_key)
    return Processor(
        role=ctx.cfg.aws.role_arn,
        image_uri=image_uri(ctx, framework, "training"),
        entrypoint=["python3", f"{PROCESSING_CODE_DIR}/{script}"],
        instance_count=job.instance_count if instance_count is None else instance_count,
        instance_type=instance_type,
        volume_size_in_gb=job.volume_size_gb,
        max_runtime_in_seconds=job.max_runtime_seconds,
        base_job_name=f"{ctx.cfg.pipeline.name}-{(name or job_key).replace('_', '-')}",
        sagemaker_session=ctx.session,
        env={SM_OUTPUT_DIR: OUTPUT_DIR},
        network_config=processing_network(ctx.cfg.security),
        volume_kms_key=ctx.cfg.security.volume_kms_key_id,
        output_kms_key=ctx.cfg.security.output_kms_key_id,
    )


def code_input(ctx: BuildContext, *scripts: str, packages: tuple[str, ...] = ()) -> ProcessingInput:
    """The `code` input of a processing job: its scripts and the shared job package."""
    return processing_input(
        CODE_INPUT, ctx.code.bundle(*scripts, packages=packages), PROCESSING_CODE_DIR
    )


def processing_input(
    name: str,
    source: str | PipelineVariable,
    local_path: str,
    distribution: S3DataDistribution = S3DataDistribution.FULLY_REPLICATED,
) -> ProcessingInput:
    """An S3Prefix input; ``distribution`` ShardedByS3Key gives each instance about 1/N of the
    objects, whole (FullyReplicated, the default: all of them)."""
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=source,
            local_path=local_path,
            s3_data_type=S3DataType.S3_PREFIX,
            s3_input_mode=InputMode.FILE,
            s3_data_distribution_type=distribution,
        ),
    )


def processing_output(
    ctx: BuildContext, step_name: str, name: str, local_path: str
) -> ProcessingOutput:
    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(
            s3_uri=ctx.output_uri(step_name, name),
            local_path=local_path,
            s3_upload_mode="EndOfJob",
        ),
    )


def output_s3_uri(step: object, name: str) -> PipelineVariable:
    """The S3 URI a processing step wrote its output `name` to (a property reference)."""
    outputs = step.properties.ProcessingOutputConfig.Outputs  # type: ignore[attr-defined]
    uri: PipelineVariable = outputs[name].S3Output.S3Uri
    return uri
