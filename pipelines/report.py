"""Where an evaluation report is: `python -m pipelines report <execution|package> [--aws]`.

Evaluate writes report.html and report.png beside evaluation.json; the model package names them
in its CustomerMetadataProperties (steps/register.py). A local execution's report is found from
its Evaluate step (a run whose gate failed has a report and no package); a package's from its
metadata. On AWS a package ARN is described and an execution ARN is followed to its Evaluate
step's processing job; `--download` copies the files, so `--open` can show them.
"""

from __future__ import annotations

import json
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipelines.approval import package_report_uris
from pipelines.errors import UsageError
from tabular.contract import StepStatus
from tabular.files import write_atomic
from tabular.names import (
    EVALUATION_OUTPUT,
    REPORT_HTML,
    REPORT_PNG,
    REPORT_PROPERTY,
)

if TYPE_CHECKING:  # the local runtime is loaded by the local lookups only, never on AWS paths
    from runtime.engine import LocalPipelineRunner

PACKAGE_MARKER = ":model-package/"
EXECUTION_MARKER = "/execution/"


class ReportNotFound(UsageError):
    """No report for what was named; the message says what was looked at and the fix."""


@dataclass(frozen=True)
class ReportLocation:
    """A report's page and image: S3 URIs, and local paths when they are on this machine."""

    html_uri: str
    png_uri: str | None
    html_path: Path | None = None
    png_path: Path | None = None

    def lines(self) -> list[str]:
        shown = [f"report {self.html_path or self.html_uri}"]
        if self.png_path or self.png_uri:
            shown.append(f"image  {self.png_path or self.png_uri}")
        return shown


def _local_file(runner: LocalPipelineRunner, uri: str | None) -> Path | None:
    return runner.store.path(uri) if uri else None


def local_package_report(runner: LocalPipelineRunner, package: dict[str, Any]) -> ReportLocation:
    html, png = package_report_uris(package)
    if not html:
        raise ReportNotFound(
            f"model package {package['ModelPackageArn']} names no report "
            f"(CustomerMetadataProperties {REPORT_PROPERTY}); it was registered before reports "
            "were written: run the pipeline again"
        )
    return ReportLocation(html, png, _local_file(runner, html), _local_file(runner, png))


def local_execution_report(runner: LocalPipelineRunner, execution_id: str) -> ReportLocation:
    try:
        execution, _ = runner.load(execution_id)
    except (ValueError, OSError) as error:  # unknown id, or its folder gone or unreadable
        known = sorted(p.name for p in (runner.workspace / "executions").glob("*"))
        raise ReportNotFound(f"{error}; known executions: {known or 'none'}") from None
    # The evaluation step is the one with the evaluation output (no step name needed here).
    record = next(
        (r for r in execution.steps.values() if _evaluation_output(r.properties) is not None),
        None,
    )
    if record is None or record.status != StepStatus.SUCCEEDED:
        raise ReportNotFound(
            f"execution {execution_id} ({execution.status}) has no finished evaluation, so no "
            f"report; resume it with `python -m pipelines run-local --retry {execution_id}`"
        )
    from runtime.execution import processing_output_file

    html = processing_output_file(runner.store, record.properties, EVALUATION_OUTPUT, REPORT_HTML)
    png = html.with_name(REPORT_PNG)
    uri = _evaluation_output(record.properties)
    return ReportLocation(f"{uri}/{REPORT_HTML}", f"{uri}/{REPORT_PNG}", html, png)


def _evaluation_output(properties: dict[str, Any]) -> str | None:
    """The S3 prefix of a processing job's evaluation output (None: it has none)."""
    outputs = (properties.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    found = [o for o in outputs if o.get("OutputName") == EVALUATION_OUTPUT]
    return str(found[0]["S3Output"]["S3Uri"]).rstrip("/") if found else None


def find_local(runner: LocalPipelineRunner, reference: str) -> ReportLocation:
    """The report of a local execution id or a local model package ARN."""
    from runtime.state import StateError

    if PACKAGE_MARKER in reference:
        try:
            package = runner.state.package(reference)
        except StateError as error:
            raise ReportNotFound(f"{error}; list the packages with `registry`") from None
        found = local_package_report(runner, package)
    else:
        found = local_execution_report(runner, reference)
    if found.html_path is None or not found.html_path.is_file():
        raise ReportNotFound(
            f"the report of {reference} is gone from the local store ({found.html_path}); run "
            "the pipeline again to write it"
        )
    return found


def find_on_aws(sagemaker: Any, reference: str) -> ReportLocation:
    """The report of a model package ARN, or of a pipeline execution ARN, on SageMaker."""
    if PACKAGE_MARKER in reference:
        try:
            package = sagemaker.describe_model_package(ModelPackageName=reference)
        except ClientError as error:
            raise ReportNotFound(f"cannot describe model package {reference}: {error}") from None
        html, png = package_report_uris(package)
        if not html:
            raise ReportNotFound(
                f"model package {reference} names no report (CustomerMetadataProperties "
                f"{REPORT_PROPERTY}); it was not registered by this pipeline's Register step"
            )
        return ReportLocation(html, png)
    if EXECUTION_MARKER not in reference:
        raise ReportNotFound(
            f"{reference!r} is neither a model package ARN nor a pipeline execution ARN; on AWS "
            "name one of them (`aws sagemaker list-pipeline-executions`)"
        )
    try:
        steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=reference)
        for step in steps.get("PipelineExecutionSteps", []):
            job = ((step.get("Metadata") or {}).get("ProcessingJob") or {}).get("Arn")
            if not job or step.get("StepStatus") != "Succeeded":
                continue
            described = sagemaker.describe_processing_job(ProcessingJobName=job.rsplit("/", 1)[-1])
            uri = _evaluation_output(described)
            if uri is not None:
                return ReportLocation(f"{uri}/{REPORT_HTML}", f"{uri}/{REPORT_PNG}")
    except ClientError as error:
        raise ReportNotFound(f"cannot read execution {reference}: {error}") from None
    raise ReportNotFound(f"execution {reference} has no finished evaluation step, so no report yet")


def download(s3: Any, found: ReportLocation, folder: Path) -> ReportLocation:
    """Copy the page (and the image, when present) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path | None] = []
    for uri in (found.html_uri, found.png_uri):
        if not uri:
            paths.append(None)
            continue
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        target = folder / key.rsplit("/", 1)[-1]
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            raise ReportNotFound(f"cannot read {uri}: {error}") from None
        paths.append(write_atomic(target, body))
    return ReportLocation(found.html_uri, found.png_uri, paths[0], paths[1])


def open_in_browser(found: ReportLocation) -> bool:
    """Show the page in the desktop's browser; False when there is none."""
    assert found.html_path is not None
    return webbrowser.open(found.html_path.resolve().as_uri())


def summary_line(found: ReportLocation) -> str:
    """One line for listings: the page's local path, else its URI."""
    return str(found.html_path or found.html_uri)


def as_json(found: ReportLocation) -> str:
    return json.dumps(
        {
            "html_uri": found.html_uri,
            "png_uri": found.png_uri,
            "html_path": str(found.html_path) if found.html_path else None,
            "png_path": str(found.png_path) if found.png_path else None,
        }
    )
