"""`python -m pipelines report` on AWS: a package's report through its metadata (moto), an
execution's through its evaluation job (Stubber: moto has no ListPipelineExecutionSteps)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from config import Config
from pipelines import cli
from pipelines.report import ReportNotFound, download, find_on_aws
from tabular.names import (
    EVALUATION_OUTPUT,
    REPORT_HTML,
    REPORT_IMAGE_PROPERTY,
    REPORT_PNG,
    REPORT_PROPERTY,
)

RUN = "s3://tabular-xgboost-artifacts-123456789012/tabular-xgboost/runs/abc123/Evaluate/evaluation"
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/tabular-xgboost/execution/abc123"
PAGE = b"<!DOCTYPE html><html><body>report</body></html>\n"
IMAGE = b"\x89PNG\r\n\x1a\nimage"


@pytest.fixture
def registry(aws_credentials: None, base_config: Config) -> Iterator[tuple[boto3.Session, str]]:
    with mock_aws():
        session = boto3.Session(region_name=base_config.aws.region)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=base_config.aws.bucket)
        for name, body in ((REPORT_HTML, PAGE), (REPORT_PNG, IMAGE)):
            key = f"{RUN}/{name}".removeprefix(f"s3://{base_config.aws.bucket}/")
            s3.put_object(Bucket=base_config.aws.bucket, Key=key, Body=body)
        sagemaker = session.client("sagemaker")
        group = base_config.registry.model_package_group
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
        arn = sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            CustomerMetadataProperties={
                REPORT_PROPERTY: f"{RUN}/{REPORT_HTML}",
                REPORT_IMAGE_PROPERTY: f"{RUN}/{REPORT_PNG}",
            },
        )["ModelPackageArn"]
        yield session, arn


def test_a_packages_report_is_found_and_downloaded(
    registry: tuple[boto3.Session, str], tmp_path: Path
) -> None:
    session, arn = registry
    found = find_on_aws(session.client("sagemaker"), arn)
    assert (found.html_uri, found.png_uri) == (f"{RUN}/{REPORT_HTML}", f"{RUN}/{REPORT_PNG}")
    copied = download(session.client("s3"), found, tmp_path / "copy")
    assert copied.html_path is not None and copied.html_path.read_bytes() == PAGE
    assert copied.png_path is not None and copied.png_path.read_bytes() == IMAGE
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == [REPORT_HTML, REPORT_PNG]


def test_cli_report_aws_prints_and_downloads(
    registry: tuple[boto3.Session, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, arn = registry
    assert cli.main(["report", arn, "--aws", "--download", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"report {tmp_path / arn.rsplit('/', 1)[-1] / REPORT_HTML}" in out
    assert cli.main(["report", arn.replace("/1", "/7"), "--aws"]) == 2
    assert "cannot describe model package" in capsys.readouterr().err


def test_a_package_without_a_report_says_so(registry: tuple[boto3.Session, str]) -> None:
    session, _ = registry
    sagemaker = session.client("sagemaker")
    bare = sagemaker.create_model_package(
        ModelPackageGroupName=sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"][
            0
        ]["ModelPackageGroupName"],
        ModelApprovalStatus="PendingManualApproval",
    )["ModelPackageArn"]
    with pytest.raises(ReportNotFound, match=f"names no report .*{REPORT_PROPERTY}"):
        find_on_aws(sagemaker, bare)


def test_an_executions_report_is_its_evaluation_jobs_output(aws_credentials: None) -> None:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    stub = Stubber(sagemaker)  # validates each request against botocore's service model
    job = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/pipelines-evaluate"
    preprocess = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/pipelines-preprocess"
    stub.add_response(
        "list_pipeline_execution_steps",
        {
            "PipelineExecutionSteps": [
                {
                    "StepName": "Preprocess",
                    "StepStatus": "Succeeded",
                    "Metadata": {"ProcessingJob": {"Arn": preprocess}},
                },
                {"StepName": "Train", "StepStatus": "Succeeded", "Metadata": {}},
                {
                    "StepName": "Evaluate",
                    "StepStatus": "Succeeded",
                    "Metadata": {"ProcessingJob": {"Arn": job}},
                },
            ]
        },  # fmt: skip
        {"PipelineExecutionArn": EXECUTION},
    )

    def described(name: str, output: str, uri: str) -> dict:
        return {
            "ProcessingJobName": name,
            "ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}",
            "ProcessingResources": {"ClusterConfig": {
                "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}},
            "AppSpecification": {"ImageUri": "image"},
            "ProcessingJobStatus": "Completed",
            "CreationTime": "2026-01-01T00:00:00Z",
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": output, "S3Output": {
                "S3Uri": uri, "LocalPath": "/opt/ml/processing/x", "S3UploadMode": "EndOfJob"}}]},
        }  # fmt: skip

    stub.add_response(
        "describe_processing_job",
        described("pipelines-preprocess", "train", "s3://b/p/train"),
        {"ProcessingJobName": "pipelines-preprocess"},
    )
    stub.add_response(
        "describe_processing_job",
        described("pipelines-evaluate", EVALUATION_OUTPUT, RUN),
        {"ProcessingJobName": "pipelines-evaluate"},
    )
    with stub:
        found = find_on_aws(sagemaker, EXECUTION)
    stub.assert_no_pending_responses()
    assert (found.html_uri, found.png_uri) == (f"{RUN}/{REPORT_HTML}", f"{RUN}/{REPORT_PNG}")


def test_a_reference_that_is_neither_is_refused(aws_credentials: None) -> None:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    with pytest.raises(ReportNotFound, match="neither a model package ARN nor"):
        find_on_aws(sagemaker, "abc123")
