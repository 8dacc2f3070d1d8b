"""A stand-in for SageMaker's hosting around moto, for the deploy tests.

moto keeps models, endpoint configs, endpoints, scaling targets, alarms and objects, and lacks
what makes a deployment a deployment. `Hosting` adds it on the boto clients deploy uses, as
SageMaker documents it:

* UpdateEndpoint: refused while autoscaling is registered on a variant whose instance type the
  new config changes; otherwise the new config goes live, unless one of the update's rollback
  alarms is in ALARM, in which case the endpoint stays InService on the old config (a rollback);
* InvokeEndpoint / InvokeEndpointAsync: answered by the real serving code (scripts/inference.py
  through runtime/serving's handler, as the serving container runs it) with the model of the
  package the live config's model was created from.

Packages are real: a model trained by the job fixtures, its smoke sample written by the real
Evaluate job code, registered in moto's Model Registry with the smoke sample in moto's S3.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from moto.sagemaker.models import sagemaker_backends

from config import Config
from runtime.serving import Handler, load_handler
from scripts import evaluate as evaluation
from tabular import names
from tabular.contract import MODEL_ARCHIVE
from tabular.files import extract_tar

ACCOUNT = "123456789012"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"


@dataclass
class Model:
    """A trained model with its serving handler and the smoke sample the pipeline recorded."""

    handler: Handler
    sample: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)  # evaluation.json's metrics


def trained_model(archive_dir: Path, test_dir: Path, scripts: Path, work: Path) -> Model:
    """Evaluate (the real job code) and load the serving handler of a model archive."""
    result = evaluation.evaluate(archive_dir, test_dir, scripts, "binary", bootstrap_rounds=2)
    model_dir = work / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_dir / MODEL_ARCHIVE) as tar:
        extract_tar(tar, model_dir)
    return Model(
        load_handler(scripts, "inference.py", model_dir), result.smoke_sample, result.report
    )


def register(
    session: boto3.Session,
    cfg: Config,
    sample: dict[str, Any],
    status: str = "Approved",
    baseline: bool = True,
    report: dict[str, Any] | None = None,
) -> str:
    """A package version as the pipeline's Register step creates it; returns its ARN."""
    sagemaker = session.client("sagemaker")
    group = cfg.registry.model_package_group
    with contextlib.suppress(sagemaker.exceptions.ClientError):  # it exists
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    s3 = session.client("s3")
    listed = sagemaker.list_model_packages(ModelPackageGroupName=group)
    version = len(listed["ModelPackageSummaryList"]) + 1
    runs = f"{cfg.aws.prefix}/runs/execution-{version}"
    key = f"{runs}/Evaluate/evaluation/{names.SMOKE_SAMPLE_FILE}"
    s3.put_object(Bucket=cfg.aws.bucket, Key=key, Body=json.dumps(sample).encode())
    quality = {
        "Statistics": {"ContentType": "application/json",
                       "S3Uri": f"s3://{cfg.aws.bucket}/{runs}/DataQuality/statistics.json"},
        "Constraints": {"ContentType": "application/json",
                        "S3Uri": f"s3://{cfg.aws.bucket}/{runs}/DataQuality/constraints.json"},
    }  # fmt: skip
    metrics: dict[str, Any] = {"ModelDataQuality": quality} if baseline else {}
    if report:  # the Evaluate step's metrics, as the Register step points to them
        report_key = f"{runs}/Evaluate/evaluation/{names.EVALUATION_FILE}"
        s3.put_object(Bucket=cfg.aws.bucket, Key=report_key, Body=json.dumps(report).encode())
        metrics["ModelQuality"] = {
            "Statistics": {
                "ContentType": "application/json",
                "S3Uri": f"s3://{cfg.aws.bucket}/{report_key}",
            }
        }
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{cfg.aws.bucket}/m.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
            "SupportedRealtimeInferenceInstanceTypes": list(cfg.registry.inference_instance_types),
        },
        ModelApprovalStatus=status,
        CustomerMetadataProperties={names.SMOKE_SAMPLE_PROPERTY: f"s3://{cfg.aws.bucket}/{key}"},
        ModelMetrics=metrics,
    )["ModelPackageArn"]
    return str(arn)


def _response(status: int, body: bytes = b"") -> AWSResponse:
    return AWSResponse("https://stand-in", status, {}, io.BytesIO(body))  # type: ignore[arg-type]


def _error(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {"Error": {"Code": code, "Message": message},
              "ResponseMetadata": {"HTTPStatusCode": status}}  # fmt: skip
    return _response(status), parsed


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """The API parameters as the caller gave them (before-call sees the serialised request)."""
    context["api_params"] = dict(params)


def _with_params(handler: Any) -> Any:
    def answer(context: dict[str, Any], **_: Any) -> Any:
        return handler(context["api_params"])

    return answer


@dataclass
class Hosting:
    """SageMaker hosting's behaviour on top of moto (see the module docstring)."""

    session: boto3.Session
    region: str
    models: dict[str, Model] = field(default_factory=dict)  # package ARN -> model
    updates: list[dict[str, Any]] = field(default_factory=list)
    invocations: list[dict[str, Any]] = field(default_factory=list)
    trip: str | None = None  # this rollback alarm of an update goes to ALARM while it bakes
    offset: float = 0.0  # added to every prediction (an endpoint that answers otherwise)

    @property
    def backend(self) -> Any:
        return sagemaker_backends[ACCOUNT][self.region]

    def attach(self, clients: Any) -> None:
        for client, operation, handler in (
            (clients.sagemaker, "sagemaker.UpdateEndpoint", self._update_endpoint),
            (clients.runtime, "sagemaker-runtime.InvokeEndpoint", self._invoke),
            (clients.runtime, "sagemaker-runtime.InvokeEndpointAsync", self._invoke_async),
        ):
            client.meta.events.register(f"before-parameter-build.{operation}", _keep_params)
            client.meta.events.register(f"before-call.{operation}", _with_params(handler))

    # ----------------------------------------------------------------- update

    def _update_endpoint(self, params: dict[str, Any]) -> Any:
        self.updates.append(params)
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        endpoint = self.backend.endpoints.get(name)
        if endpoint is None:
            return _error("ValidationException", f"Could not find endpoint {name}.")
        config = self.backend.endpoint_configs.get(config_name)
        if config is None:
            return _error("ValidationException", f"Could not find endpoint configuration "
                                                 f"{config_name}.")  # fmt: skip
        old = self.backend.endpoint_configs[endpoint.endpoint_config_name]
        old_type = old.production_variants[0].get("InstanceType")
        new_type = config.production_variants[0].get("InstanceType")
        variant = config.production_variants[0]["VariantName"]
        scaled = self.session.client("application-autoscaling").describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[f"endpoint/{name}/variant/{variant}"]
        )["ScalableTargets"]
        if scaled and old_type != new_type:
            return _error(
                "ValidationException",
                f"The variant {variant} is registered with Application Auto Scaling; "
                "deregister it before changing its instance type.",
            )
        watched = [a["AlarmName"] for a in params.get("DeploymentConfig", {})
                   .get("AutoRollbackConfiguration", {}).get("Alarms", [])]  # fmt: skip
        cloudwatch = self.session.client("cloudwatch")
        for alarm in watched:
            if self.trip and alarm.endswith(f"-{self.trip}"):
                cloudwatch.set_alarm_state(
                    AlarmName=alarm,
                    StateValue="ALARM",
                    StateReason="Threshold Crossed: 1 datapoint [3.0] was greater than the "
                    "threshold (0.0).",
                )
        alarms = cloudwatch.describe_alarms(AlarmNames=watched)
        if watched and any(a["StateValue"] == "ALARM" for a in alarms["MetricAlarms"]):
            endpoint.failure_reason = "Deployment was rolled back: an alarm went to ALARM."
        else:
            previous = endpoint.production_variants[0]
            endpoint.endpoint_config_name = config_name
            endpoint.production_variants = endpoint._process_production_variants(
                config.production_variants
            )
            if params.get("RetainAllVariantProperties") and "DesiredInstanceCount" in previous:
                for key in ("CurrentInstanceCount", "DesiredInstanceCount"):
                    endpoint.production_variants[0][key] = previous[key]
        return _response(200), {"EndpointArn": endpoint.arn}

    # ----------------------------------------------------------------- invoke

    def _serving(self, endpoint_name: str) -> Model:
        endpoint = self.backend.endpoints[endpoint_name]
        config = self.backend.endpoint_configs[endpoint.endpoint_config_name]
        model = self.backend._models[config.production_variants[0]["ModelName"]]
        return self.models[model.primary_container["ModelPackageName"]]

    def answer(self, endpoint_name: str, body: bytes, content_type: str, accept: str) -> bytes:
        self.invocations.append({"endpoint": endpoint_name, "body": body})
        answer = self._serving(endpoint_name).handler(body, content_type, accept)
        if not self.offset:
            return answer
        values = [float(line) + self.offset for line in answer.decode().splitlines()]
        return "".join(f"{value:.9g}\n" for value in values).encode()

    def _invoke(self, params: dict[str, Any]) -> Any:
        name = params["EndpointName"]
        if name not in self.backend.endpoints:
            return _error("ValidationError", f"Endpoint {name} not found.")
        body = params["Body"]
        data = body if isinstance(body, bytes) else body.read()
        answer = self.answer(name, data, params["ContentType"], params.get("Accept", ""))
        return _response(200), {
            "Body": StreamingBody(io.BytesIO(answer), len(answer)),
            "ContentType": params.get("Accept", "text/csv"),
            "InvokedProductionVariant": "AllTraffic",
        }

    def _invoke_async(self, params: dict[str, Any]) -> Any:
        name = params["EndpointName"]
        s3 = self.session.client("s3")
        bucket, key = params["InputLocation"].removeprefix("s3://").split("/", 1)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        answer = self.answer(name, body, params["ContentType"], params.get("Accept", ""))
        config = self.backend.endpoint_configs[self.backend.endpoints[name].endpoint_config_name]
        output = config.async_inference_config["OutputConfig"]["S3OutputPath"]
        out_bucket, out_prefix = output.removeprefix("s3://").split("/", 1)
        out_key = f"{out_prefix}/{len(self.invocations)}.out"
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=answer)
        return _response(200), {
            "InferenceId": str(len(self.invocations)),
            "OutputLocation": f"s3://{out_bucket}/{out_key}",
            "FailureLocation": f"s3://{out_bucket}/{out_prefix}/{len(self.invocations)}.err",
        }
