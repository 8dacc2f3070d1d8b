"""One small builder per AWS request deploy sends, from the config as data (no AWS call).

Every request here is validated against botocore's service model in the tests and committed for
the reference stages as golden files (tests/golden/deploy/). `Target` holds what all of them
share: the stage, its endpoint and variant, and the locations derived from `aws:`.

Over 500 lines because it is a catalogue: a dozen short builders side by side, each pinned by
its golden file; split, a reader would lose the one place that shows every request deploy sends.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from config import Config
from config.deploy import RolloutSection, StageSection
from pipelines.deploy import names
from pipelines.deploy.package import Package
from pipelines.deploy.plan import AlarmDefinition, RolloutPlan
from pipelines.errors import UsageError

SAGEMAKER = "sagemaker"
INSTANCE_COUNT_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
PROVISIONED_DIMENSION = "sagemaker:variant:DesiredProvisionedConcurrency"
PREDEFINED_METRICS = {
    "invocations_per_instance": "SageMakerVariantInvocationsPerInstance",
    "provisioned_concurrency_utilization": "SageMakerVariantProvisionedConcurrencyUtilization",
}
BACKLOG_METRIC = "ApproximateBacklogSizePerInstance"
CAPACITY_TYPES = {"percent": "CAPACITY_PERCENT", "instances": "INSTANCE_COUNT"}
TRAFFIC_TYPES = {"all_at_once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}
MONITOR_REPOSITORY = "sagemaker-model-monitor-analyzer"
MONITOR_INPUT_PATH = "/opt/ml/processing/input/endpoint"
MONITOR_OUTPUT_PATH = "/opt/ml/processing/output"
CSV = "text/csv"


@dataclass(frozen=True)
class Target:
    """A stage of the config: where its endpoint is and what everything it owns shares."""

    cfg: Config
    stage_name: str

    @property
    def stage(self) -> StageSection:
        return self.cfg.deploy.stage(self.stage_name)

    @property
    def endpoint(self) -> str:
        return self.stage.endpoint_name

    @property
    def variant(self) -> str:
        return self.stage.variant_name

    def s3(self, leaf: str) -> str:
        """A location of this endpoint under the artifact bucket and prefix."""
        aws = self.cfg.aws
        return f"s3://{aws.bucket}/{aws.prefix}/endpoints/{self.endpoint}/{leaf}"

    @property
    def capture_destination(self) -> str:
        return self.stage.data_capture.destination or self.s3("data-capture")

    @property
    def async_output(self) -> str:
        return self.stage.async_inference.output_path or self.s3("async-output")

    @property
    def async_failure(self) -> str:
        return self.stage.async_inference.failure_path or self.s3("async-failure")

    @property
    def scaling_resource(self) -> str:
        return names.scaling_resource_id(self.endpoint, self.variant)

    @property
    def scalable_dimension(self) -> str:
        if self.stage.endpoint_type == "serverless":
            return PROVISIONED_DIMENSION
        return INSTANCE_COUNT_DIMENSION

    def tags(self, package: Package | None = None) -> list[dict[str, str]]:
        tags = names.owner_tags(self.endpoint, self.stage_name, dict(self.stage.tags))
        if package is not None:
            tags += [
                {"Key": names.PACKAGE_TAG, "Value": package.arn},
                {"Key": names.VERSION_TAG, "Value": str(package.version)},
            ]
        return tags


def _named(kind: str, endpoint: str, version: int, content: dict[str, Any]) -> str:
    """A deterministic name from everything in the request but its name and tags."""
    return names.versioned(endpoint, version, {"kind": kind, **content})


# --------------------------------------------------------------------------- model and config


def model_request(target: Target, package: Package) -> dict[str, Any]:
    """CreateModel from the model package: its image, artifact and serving code."""
    security = target.cfg.security
    content: dict[str, Any] = {
        "PrimaryContainer": {"ModelPackageName": package.arn},
        "ExecutionRoleArn": target.cfg.aws.role_arn,
    }
    if security.enable_network_isolation:
        content["EnableNetworkIsolation"] = True
    if security.subnets:
        content["VpcConfig"] = {
            "Subnets": list(security.subnets),
            "SecurityGroupIds": list(security.security_group_ids),
        }
    name = _named("model", target.endpoint, package.version, content)
    return {"ModelName": name, **content, "Tags": target.tags(package)}


def production_variant(stage: StageSection, model_name: str) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": stage.variant_name, "ModelName": model_name}
    if stage.endpoint_type == "serverless":
        serverless: dict[str, Any] = {
            "MemorySizeInMB": stage.serverless.memory_mb,
            "MaxConcurrency": stage.serverless.max_concurrency,
        }
        if stage.serverless.provisioned_concurrency is not None:
            serverless["ProvisionedConcurrency"] = stage.serverless.provisioned_concurrency
        variant["ServerlessConfig"] = serverless
    else:
        variant.update(
            InstanceType=stage.instance_type,
            InitialInstanceCount=stage.instance_count,
            InitialVariantWeight=1.0,
        )
    return variant


def endpoint_config_request(target: Target, model_name: str, package: Package) -> dict[str, Any]:
    """CreateEndpointConfig: one variant, data capture and asynchronous inference as set."""
    stage = target.stage
    content: dict[str, Any] = {"ProductionVariants": [production_variant(stage, model_name)]}
    capture = stage.data_capture
    if capture.enabled:
        content["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": capture.sampling_percent,
            "DestinationS3Uri": target.capture_destination,
            "CaptureOptions": [{"CaptureMode": mode} for mode in capture.capture],
            # Captured CSV stays text (not base64), as Model Monitor reads it.
            "CaptureContentTypeHeader": {"CsvContentTypes": [CSV]},
        }
        if target.cfg.security.output_kms_key_id:
            content["DataCaptureConfig"]["KmsKeyId"] = target.cfg.security.output_kms_key_id
    if stage.endpoint_type == "async":
        content["AsyncInferenceConfig"] = async_inference_config(target)
    if stage.endpoint_type != "serverless" and target.cfg.security.volume_kms_key_id:
        content["KmsKeyId"] = target.cfg.security.volume_kms_key_id
    name = _named("endpoint-config", target.endpoint, package.version, content)
    return {"EndpointConfigName": name, **content, "Tags": target.tags(package)}


def async_inference_config(target: Target) -> dict[str, Any]:
    settings = target.stage.async_inference
    output: dict[str, Any] = {
        "S3OutputPath": target.async_output,
        "S3FailurePath": target.async_failure,
    }
    notification: dict[str, Any] = {}
    if settings.success_topic:
        notification["SuccessTopic"] = settings.success_topic
    if settings.error_topic:
        notification["ErrorTopic"] = settings.error_topic
    if settings.include_response_in:
        notification["IncludeInferenceResponseIn"] = list(settings.include_response_in)
    if notification:
        output["NotificationConfig"] = notification
    if target.cfg.security.output_kms_key_id:
        output["KmsKeyId"] = target.cfg.security.output_kms_key_id
    config: dict[str, Any] = {"OutputConfig": output}
    if settings.max_concurrent_invocations is not None:
        config["ClientConfig"] = {
            "MaxConcurrentInvocationsPerInstance": settings.max_concurrent_invocations
        }
    return config


# --------------------------------------------------------------------------- endpoint


def _capacity(size: int, unit: str) -> dict[str, Any]:
    return {"Type": CAPACITY_TYPES[unit], "Value": size}


def deployment_config(
    plan: RolloutPlan, rollout: RolloutSection, alarm_names: list[str]
) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: the rollout's policy and its rollback alarms.

    `plan` decides the mode and the waits (an immediate plan for rollbacks); the sizes are the
    configured ones, which SageMaker applies to the fleet it finds.
    """
    config: dict[str, Any] = {}
    if plan.mode == "rolling":
        rolling: dict[str, Any] = {
            "MaximumBatchSize": _capacity(rollout.size, rollout.unit),
            "WaitIntervalInSeconds": rollout.wait_seconds,
        }
        if plan.max_execution_seconds is not None:
            rolling["MaximumExecutionTimeoutInSeconds"] = plan.max_execution_seconds
        if rollout.rollback_size is not None:
            rolling["RollbackMaximumBatchSize"] = _capacity(
                rollout.rollback_size, rollout.rollback_unit
            )
        config["RollingUpdatePolicy"] = rolling
    else:
        routing: dict[str, Any] = {
            "Type": TRAFFIC_TYPES[plan.mode],
            "WaitIntervalInSeconds": plan.steps[0].bake_seconds,
        }
        if plan.mode == "canary":
            routing["CanarySize"] = _capacity(rollout.size, rollout.unit)
        elif plan.mode == "linear":
            routing["LinearStepSize"] = _capacity(rollout.size, rollout.unit)
        blue_green: dict[str, Any] = {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": plan.final_bake_seconds,
        }
        if plan.max_execution_seconds is not None:
            blue_green["MaximumExecutionTimeoutInSeconds"] = plan.max_execution_seconds
        config["BlueGreenUpdatePolicy"] = blue_green
    if alarm_names:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in alarm_names]
        }
    return config


def create_endpoint_request(
    target: Target, config_name: str, tags: list[dict[str, str]]
) -> dict[str, Any]:
    return {"EndpointName": target.endpoint, "EndpointConfigName": config_name, "Tags": tags}


def update_endpoint_request(
    target: Target, config_name: str, deployment: dict[str, Any], retain_capacity: bool
) -> dict[str, Any]:
    """UpdateEndpoint to `config_name`; `retain_capacity` keeps the instance count that
    autoscaling reached (the new config's data capture still applies)."""
    request: dict[str, Any] = {
        "EndpointName": target.endpoint,
        "EndpointConfigName": config_name,
        "DeploymentConfig": deployment,
    }
    if retain_capacity:
        request["RetainAllVariantProperties"] = True
        request["ExcludeRetainedVariantProperties"] = [
            {"VariantPropertyType": "DataCaptureConfig"},
            {"VariantPropertyType": "DesiredWeight"},
        ]
    return request


# --------------------------------------------------------------------------- alarms


def alarm_request(
    target: Target, alarm: AlarmDefinition, config_name: str, tags: list[dict[str, str]]
) -> dict[str, Any]:
    """PutMetricAlarm for one rollback alarm, on the fleet of `config_name` where the metric
    has that dimension. No actions: SageMaker reads its state while it bakes."""
    values = {
        "EndpointName": target.endpoint,
        "VariantName": target.variant,
        "EndpointConfigName": config_name,
    }
    scope = "the new fleet" if alarm.new_fleet_only else "both fleets"
    request: dict[str, Any] = {
        "AlarmName": names.alarm_name(config_name, alarm.name),
        "AlarmDescription": (
            f"Rollback alarm {alarm.name} of endpoint {target.endpoint} ({scope}); "
            "created by python -m pipelines deploy"
        ),
        "ActionsEnabled": False,
        "MetricName": alarm.metric,
        "Namespace": alarm.namespace,
        "Dimensions": [{"Name": name, "Value": values[name]} for name in alarm.dimensions],
        "Period": alarm.period_seconds,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "Threshold": alarm.threshold,
        "ComparisonOperator": alarm.comparison,
        "TreatMissingData": alarm.treat_missing_data,
        "Tags": tags,
    }
    if alarm.percentile is not None:
        request["ExtendedStatistic"] = alarm.statistic
    else:
        request["Statistic"] = alarm.statistic
    return request


# --------------------------------------------------------------------------- autoscaling


def scalable_target_request(target: Target) -> dict[str, Any]:
    scaling = target.stage.autoscaling
    return {
        "ServiceNamespace": SAGEMAKER,
        "ResourceId": target.scaling_resource,
        "ScalableDimension": target.scalable_dimension,
        "MinCapacity": scaling.min_capacity,
        "MaxCapacity": scaling.max_capacity,
    }


def scaling_policy_request(target: Target) -> dict[str, Any]:
    """A target-tracking policy on the stage's metric."""
    stage = target.stage
    scaling = stage.autoscaling
    tracking: dict[str, Any] = {"TargetValue": scaling.target_value}
    metric = stage.scaling_metric
    if metric in PREDEFINED_METRICS:
        tracking["PredefinedMetricSpecification"] = {
            "PredefinedMetricType": PREDEFINED_METRICS[metric]
        }
    else:  # asynchronous endpoints scale on their queue per instance
        tracking["CustomizedMetricSpecification"] = {
            "MetricName": BACKLOG_METRIC,
            "Namespace": "AWS/SageMaker",
            "Dimensions": [{"Name": "EndpointName", "Value": target.endpoint}],
            "Statistic": "Average",
        }
    tracking.update(
        ScaleInCooldown=scaling.scale_in_cooldown_seconds,
        ScaleOutCooldown=scaling.scale_out_cooldown_seconds,
        DisableScaleIn=scaling.disable_scale_in,
    )
    return {
        "PolicyName": f"{target.endpoint}{names.SCALING_POLICY_SUFFIX}",
        "ServiceNamespace": SAGEMAKER,
        "ResourceId": target.scaling_resource,
        "ScalableDimension": target.scalable_dimension,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": tracking,
    }


def scales_from_zero(stage: StageSection) -> bool:
    """An asynchronous endpoint allowed to scale to 0 needs a step policy to wake up: target
    tracking on the backlog per instance has nothing to divide by at 0 instances."""
    scaling = stage.autoscaling
    return stage.endpoint_type == "async" and scaling.enabled and scaling.min_capacity == 0


def scale_from_zero_policy_request(target: Target) -> dict[str, Any]:
    return {
        "PolicyName": f"{target.endpoint}{names.SCALE_FROM_ZERO_SUFFIX}",
        "ServiceNamespace": SAGEMAKER,
        "ResourceId": target.scaling_resource,
        "ScalableDimension": target.scalable_dimension,
        "PolicyType": "StepScaling",
        "StepScalingPolicyConfiguration": {
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Average",
            "Cooldown": target.stage.autoscaling.scale_out_cooldown_seconds,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
        },
    }


def backlog_alarm_request(
    target: Target, policy_arn: str, tags: list[dict[str, str]]
) -> dict[str, Any]:
    """The alarm that runs the scale-from-zero policy while requests wait with no instance."""
    return {
        "AlarmName": f"{target.endpoint}{names.BACKLOG_ALARM_SUFFIX}",
        "AlarmDescription": f"Requests queued on {target.endpoint} with no instance: add one",
        "ActionsEnabled": True,
        "AlarmActions": [policy_arn],
        "MetricName": "HasBacklogWithoutCapacity",
        "Namespace": "AWS/SageMaker",
        "Dimensions": [{"Name": "EndpointName", "Value": target.endpoint}],
        "Statistic": "Average",
        "Period": 60,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "missing",
        "Tags": tags,
    }


# --------------------------------------------------------------------------- monitoring


@cache
def _monitor_registries() -> dict[str, str]:
    """The Model Monitor analyzer's account per region, from the installed SDK's image data
    (read as a file: importing the SDK needs a region and credentials)."""
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "core" / "image_uri_config"
    document = json.loads((folder / "model-monitor.json").read_text(encoding="utf-8"))
    (version,) = document["versions"].values()
    return dict(version["registries"])


def monitor_image(region: str) -> str:
    accounts = _monitor_registries()
    if region not in accounts:
        raise UsageError(
            f"Model Monitor has no analyzer image in region {region} (aws.region); disable "
            "deploy monitoring there or deploy in a region it serves"
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{accounts[region]}.dkr.ecr.{region}.{domain}/{MONITOR_REPOSITORY}"


PUBLISH_METRICS = "publish_cloudwatch_metrics"


def data_quality_job_request(target: Target, package: Package) -> dict[str, Any]:
    """CreateDataQualityJobDefinition: captured requests against the package's baseline."""
    cfg = target.cfg
    monitoring = target.stage.monitoring
    security = cfg.security
    network: dict[str, Any] = {
        "EnableInterContainerTrafficEncryption": security.encrypt_inter_container_traffic,
        "EnableNetworkIsolation": security.enable_network_isolation,
    }
    if security.subnets:
        network["VpcConfig"] = {
            "Subnets": list(security.subnets),
            "SecurityGroupIds": list(security.security_group_ids),
        }
    cluster: dict[str, Any] = {
        "InstanceCount": monitoring.instance_count,
        "InstanceType": monitoring.instance_type,
        "VolumeSizeInGB": monitoring.volume_size_gb,
    }
    if security.volume_kms_key_id:
        cluster["VolumeKmsKeyId"] = security.volume_kms_key_id
    output: dict[str, Any] = {
        "MonitoringOutputs": [
            {
                "S3Output": {
                    "S3Uri": target.s3("monitoring"),
                    "LocalPath": MONITOR_OUTPUT_PATH,
                    "S3UploadMode": "EndOfJob",
                }
            }
        ]
    }
    if security.output_kms_key_id:
        output["KmsKeyId"] = security.output_kms_key_id
    content: dict[str, Any] = {
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": package.baseline_constraints},
            "StatisticsResource": {"S3Uri": package.baseline_statistics},
        },
        # The analyzer publishes its drift metrics to CloudWatch only when asked (the SDK's
        # enable_cloudwatch_metrics, sagemaker/core/model_monitor/model_monitoring.py): they
        # feed the drift alarm that retrains (infra/drift-retraining.yaml).
        "DataQualityAppSpecification": {
            "ImageUri": monitor_image(cfg.aws.region),
            "Environment": {PUBLISH_METRICS: "Enabled"},
        },
        "DataQualityJobInput": {
            "EndpointInput": {"EndpointName": target.endpoint, "LocalPath": MONITOR_INPUT_PATH}
        },
        "DataQualityJobOutputConfig": output,
        "JobResources": {"ClusterConfig": cluster},
        "NetworkConfig": network,
        "RoleArn": cfg.aws.role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": monitoring.max_runtime_seconds},
    }
    name = _named("data-quality", f"{target.endpoint}-dq", package.version, content)
    return {"JobDefinitionName": name, **content, "Tags": target.tags(package)}


def monitoring_schedule_request(target: Target, job_definition: str) -> dict[str, Any]:
    """CreateMonitoringSchedule (UpdateMonitoringSchedule takes the same, without Tags)."""
    return {
        "MonitoringScheduleName": names.monitoring_schedule_name(target.endpoint),
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": target.stage.monitoring.schedule},
            "MonitoringJobDefinitionName": job_definition,
            "MonitoringType": "DataQuality",
        },
        "Tags": target.tags(),
    }


# --------------------------------------------------------------------------- shadow test


def inference_experiment_request(
    target: Target,
    live_model: str,
    live_instances: int,
    candidate_model: str,
    package: Package,
    start: str,
    end: str,
) -> dict[str, Any]:
    """CreateInferenceExperiment: the live variant answers, a copy of `sampling_percent` of
    its requests goes to the candidate, whose answers are only recorded."""
    stage = target.stage
    shadow = stage.shadow
    shadow_variant = names.shadow_variant_name(target.variant)

    def variant(model: str, name: str, instance_type: str, count: int) -> dict[str, Any]:
        return {
            "ModelName": model,
            "VariantName": name,
            "InfrastructureConfig": {
                "InfrastructureType": "RealTimeInference",
                "RealTimeInferenceConfig": {"InstanceType": instance_type, "InstanceCount": count},
            },
        }

    request: dict[str, Any] = {
        "Name": names.experiment_name(target.endpoint, package.version),
        "Type": "ShadowMode",
        "Schedule": {"StartTime": start, "EndTime": end},
        "Description": f"Shadow test of {package.label} on {target.endpoint}",
        "RoleArn": target.cfg.aws.role_arn,
        "EndpointName": target.endpoint,
        "ModelVariants": [
            variant(live_model, target.variant, stage.instance_type, live_instances),
            variant(candidate_model, shadow_variant, shadow.instance_type, shadow.instance_count),
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": target.variant,
            "ShadowModelVariants": [
                {
                    "ShadowModelVariantName": shadow_variant,
                    "SamplingPercentage": shadow.sampling_percent,
                }
            ],
        },
        "Tags": target.tags(package),
    }
    if stage.data_capture.enabled:
        request["DataStorageConfig"] = {
            "Destination": target.s3("shadow-capture"),
            "ContentType": {"CsvContentTypes": [CSV]},
        }
    return request
