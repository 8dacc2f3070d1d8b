"""A stage's desired state for one package, decided against what is live: pure, no AWS.

`prepare` checks what SageMaker would refuse about this update in particular (an endpoint of
another type or variant name, a rollout that does not fit the fleet autoscaling left, a package
that is not Approved) and builds every request in the order `apply` sends them. `Deployment.calls`
is that order as data: the golden files are made of it, and the plan is printed from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from config.deploy_rules import rollout_problems
from pipelines.deploy import names, requests
from pipelines.deploy.history import DEPLOY, ROLLBACK
from pipelines.deploy.package import Package, PackageRefused
from pipelines.deploy.plan import RolloutPlan, alarm_definitions
from pipelines.deploy.requests import Target
from pipelines.errors import UsageError
from tabular.contract import EndpointStatus

CREATE, UPDATE, UNCHANGED = "create", "update", "unchanged"
POLICY_ARN = "arn:aws:autoscaling:<region>:<account>:scalingPolicy:<returned by PutScalingPolicy>"
IN_SERVICE = EndpointStatus.IN_SERVICE
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SAGEMAKER, CLOUDWATCH, AUTOSCALING = "sagemaker", "cloudwatch", "application-autoscaling"


class DeployRefused(UsageError):
    """The deploy cannot be done as configured against what is live (exit 2)."""


class DeployFailed(RuntimeError):
    """The deploy started and did not reach a verified, smoke-tested endpoint (exit 1)."""


@dataclass(frozen=True)
class Live:
    """What exists for a stage's endpoint, as its Describe*/List* calls returned it."""

    endpoint_name: str
    endpoint: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    scalable_target: dict[str, Any] | None = None
    scaling_policies: tuple[dict[str, Any], ...] = ()
    schedule: dict[str, Any] | None = None

    @property
    def exists(self) -> bool:
        return self.endpoint is not None

    @property
    def status(self) -> str | None:
        return None if self.endpoint is None else self.endpoint.get("EndpointStatus")

    @property
    def config_name(self) -> str | None:
        return None if self.endpoint is None else self.endpoint.get("EndpointConfigName")

    @property
    def owned(self) -> bool:
        return self.tags.get(names.OWNER_TAG) == self.endpoint_name

    @property
    def version(self) -> int | None:
        text = self.tags.get(names.VERSION_TAG, "")
        return int(text) if text.isdigit() else None

    @property
    def variant(self) -> dict[str, Any]:
        """The live config's first production variant ({} when unknown)."""
        variants = (self.config or {}).get("ProductionVariants") or [{}]
        return dict(variants[0])

    @property
    def endpoint_type(self) -> str | None:
        if self.config is None:
            return None
        if self.variant.get("ServerlessConfig"):
            return "serverless"
        return "async" if self.config.get("AsyncInferenceConfig") else "realtime"

    @property
    def instances(self) -> int | None:
        """The live variant's desired instance count (what autoscaling set), if any."""
        variants = (self.endpoint or {}).get("ProductionVariants") or [{}]
        count = variants[0].get("DesiredInstanceCount") or variants[0].get("CurrentInstanceCount")
        return int(count) if count else None


@dataclass(frozen=True)
class Call:
    """One AWS request: the service, the operation and its parameters."""

    service: str
    operation: str
    request: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"service": self.service, "operation": self.operation, "request": self.request}


@dataclass(frozen=True)
class Deployment:
    target: Target
    package: Package
    live: Live
    action: str  # deploy | rollback
    kind: str  # create | update | unchanged
    plan: RolloutPlan
    model: dict[str, Any]
    config: dict[str, Any]
    alarms: tuple[dict[str, Any], ...]
    endpoint: dict[str, Any] | None  # CreateEndpoint or UpdateEndpoint; None: unchanged
    rescale: bool  # deregister autoscaling around the update (instance type changes)
    scaling: tuple[Call, ...]
    monitoring: tuple[dict[str, Any], dict[str, Any]] | None  # job definition, schedule

    @property
    def model_name(self) -> str:
        return str(self.model["ModelName"])

    @property
    def config_name(self) -> str:
        return str(self.config["EndpointConfigName"])

    @property
    def alarm_names(self) -> list[str]:
        return [str(alarm["AlarmName"]) for alarm in self.alarms]

    @property
    def rollback_alarms(self) -> list[str]:
        """The alarms SageMaker watches during this update (none when restoring a package)."""
        return self.alarm_names if self.action == DEPLOY else []

    def shadow_request(self, start: datetime) -> dict[str, Any]:
        """CreateInferenceExperiment: the package as a shadow of the live variant from `start`."""
        target = self.target
        end = start + timedelta(days=target.stage.shadow.duration_days)
        return requests.inference_experiment_request(
            target,
            str(self.live.variant.get("ModelName", "")),
            self.live.instances or target.stage.instance_count,
            self.model_name,
            self.package,
            start.strftime(TIME_FORMAT),
            end.strftime(TIME_FORMAT),
        )

    def release_scaling(self) -> list[Call]:
        """What removes the live autoscaling (before an instance type change, or for good)."""
        if self.live.scalable_target is None:
            return []
        target = self.live.scalable_target
        key = {
            "ServiceNamespace": target["ServiceNamespace"],
            "ResourceId": target["ResourceId"],
            "ScalableDimension": target["ScalableDimension"],
        }
        policies = [
            Call(AUTOSCALING, "DeleteScalingPolicy", {"PolicyName": p["PolicyName"], **key})
            for p in self.live.scaling_policies
        ]
        return [*policies, Call(AUTOSCALING, "DeregisterScalableTarget", key)]

    def calls(self) -> list[Call]:
        """Every request of the deploy, in the order it is applied (verification, smoke test
        and clean-up read and delete only)."""
        found = [
            Call(SAGEMAKER, "CreateModel", self.model),
            Call(SAGEMAKER, "CreateEndpointConfig", self.config),
            *(Call(CLOUDWATCH, "PutMetricAlarm", alarm) for alarm in self.alarms),
        ]
        if self.rescale:
            found += self.release_scaling()
        if self.endpoint is not None:
            operation = "CreateEndpoint" if self.kind == CREATE else "UpdateEndpoint"
            found.append(Call(SAGEMAKER, operation, self.endpoint))
        if not self.scaling:
            found += [] if self.rescale else self.release_scaling()
        found += self.scaling
        if self.monitoring is not None:
            job, schedule = self.monitoring
            found.append(Call(SAGEMAKER, "CreateDataQualityJobDefinition", job))
            operation = "Update" if self.live.schedule else "Create"
            found.append(
                Call(
                    SAGEMAKER,
                    f"{operation}MonitoringSchedule",
                    schedule_request(schedule, self.live.schedule),
                )
            )
        return found


def schedule_request(create: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    """UpdateMonitoringSchedule takes CreateMonitoringSchedule's fields but the tags."""
    return create if live is None else {k: v for k, v in create.items() if k != "Tags"}


def _check_live(target: Target, live: Live) -> None:
    stage = target.stage
    endpoint = target.endpoint
    if not live.exists:
        return
    if not live.owned:
        raise DeployRefused(
            f"endpoint {endpoint} exists but was not created by this tool (no "
            f"{names.OWNER_TAG} tag naming it); deploy will not take it over: choose another "
            f"deploy.stages.{target.stage_name}.endpoint_name, or delete that endpoint yourself"
        )
    if live.endpoint_type is not None and live.endpoint_type != stage.endpoint_type:
        raise DeployRefused(
            f"endpoint {endpoint} is {live.endpoint_type} and the stage is now "
            f"{stage.endpoint_type}: SageMaker refuses to turn a real-time endpoint into a "
            "serverless one in place (and a serverless one cannot turn back), and an "
            "asynchronous endpoint is invoked differently; deploy the new type under another "
            f"endpoint_name, or `python -m pipelines undeploy --stage {target.stage_name}` first"
        )
    live_variant = live.variant.get("VariantName")
    if live_variant and live_variant != stage.variant_name:
        raise DeployRefused(
            f"endpoint {endpoint} serves variant {live_variant!r} and the stage names "
            f"{stage.variant_name!r}: a blue/green or rolling update must keep the variant "
            "name (Deployment guardrails, Exclusions); set variant_name back to "
            f"{live_variant!r}"
        )
    if live.status != IN_SERVICE:
        raise DeployFailed(
            f"endpoint {endpoint} is {live.status}, not {IN_SERVICE}: SageMaker updates an "
            "endpoint only when it is in service. Wait for the running update to finish "
            f"(`python -m pipelines status --stage {target.stage_name}`); a Failed endpoint must "
            "be undeployed and deployed again"
        )


def _check_package(target: Target, package: Package) -> None:
    stage = target.stage
    package.check_approved()
    types = package.realtime_instance_types
    if stage.endpoint_type != "serverless" and types and stage.instance_type not in types:
        raise PackageRefused(
            f"model package {package.label} supports real-time instance types {list(types)}, "
            f"not {stage.instance_type} (deploy.stages.{target.stage_name}.instance_type): "
            "choose one of them, or add it to registry.inference_instance_types for new packages"
        )
    if stage.smoke.enabled and not package.smoke_sample:
        raise PackageRefused(
            f"model package {package.label} records no smoke sample (CustomerMetadataProperties "
            "SmokeSampleS3Uri), so the deploy could not be verified by invoking the endpoint: "
            "deploy a package registered by this pipeline, or set "
            f"deploy.stages.{target.stage_name}.smoke.enabled: false"
        )
    if stage.monitoring.enabled and not (
        package.baseline_statistics and package.baseline_constraints
    ):
        raise PackageRefused(
            f"model package {package.label} has no data-quality baseline (ModelMetrics."
            "ModelDataQuality) for the monitoring schedule to compare against; deploy a package "
            "registered by this pipeline, or disable monitoring for this stage"
        )


def _fleet(target: Target, live: Live) -> tuple[int | None, bool]:
    """The new fleet's size, and whether it keeps the live count autoscaling set."""
    stage = target.stage
    if stage.endpoint_type == "serverless":
        return None, False
    retain = bool(stage.autoscaling.enabled and live.scalable_target and live.instances)
    if retain:
        return live.instances, True
    return stage.instance_count, False


def prepare(cfg: Any, stage_name: str, package: Package, live: Live, action: str) -> Deployment:
    """Everything a deploy of `package` to the stage sends, or why it cannot be done."""
    target = Target(cfg, stage_name)
    stage = target.stage
    _check_package(target, package)
    _check_live(target, live)
    fleet, retain = _fleet(target, live)
    if live.exists:
        problems = rollout_problems(stage.rollout, fleet)
        if problems:
            raise DeployRefused(
                f"endpoint {target.endpoint} runs {fleet} instance(s) now (autoscaling), and "
                f"the rollout does not fit that fleet: {'; '.join(problems)}"
            )
    model = requests.model_request(target, package)
    config = requests.endpoint_config_request(target, model["ModelName"], package)
    config_name = config["EndpointConfigName"]
    tags = target.tags(package)
    alarms = tuple(
        requests.alarm_request(target, alarm, config_name, tags)
        for alarm in alarm_definitions(stage)
    )
    if action == ROLLBACK:
        plan = RolloutPlan.immediate(fleet)
    else:
        plan = RolloutPlan.for_stage(stage, fleet)
    if not live.exists:
        kind = CREATE
        endpoint: dict[str, Any] | None = requests.create_endpoint_request(
            target, config_name, target.tags()
        )
    elif live.config_name == config_name:
        kind, endpoint = UNCHANGED, None
    else:
        kind = UPDATE
        watched = [a["AlarmName"] for a in alarms] if action == DEPLOY else []
        endpoint = requests.update_endpoint_request(
            target, config_name, requests.deployment_config(plan, stage.rollout, watched), retain
        )
    # Application Auto Scaling refuses an update that changes the instance type of a scaled
    # variant (Update endpoints that use auto scaling): release it around the update.
    live_type = live.variant.get("InstanceType")
    rescale = bool(
        kind == UPDATE
        and live.scalable_target
        and stage.endpoint_type != "serverless"
        and live_type != stage.instance_type
    )
    scaling: tuple[Call, ...] = ()
    if stage.autoscaling.enabled:
        scaling = (
            Call(AUTOSCALING, "RegisterScalableTarget", requests.scalable_target_request(target)),
            Call(AUTOSCALING, "PutScalingPolicy", requests.scaling_policy_request(target)),
        )
        if requests.scales_from_zero(stage):
            scaling += (
                Call(
                    AUTOSCALING,
                    "PutScalingPolicy",
                    requests.scale_from_zero_policy_request(target),
                ),
                # Its AlarmActions become the ARN PutScalingPolicy returns (apply.py).
                Call(
                    CLOUDWATCH,
                    "PutMetricAlarm",
                    requests.backlog_alarm_request(target, POLICY_ARN, target.tags()),
                ),
            )
    monitoring = None
    if stage.monitoring.enabled:
        job = requests.data_quality_job_request(target, package)
        monitoring = (job, requests.monitoring_schedule_request(target, job["JobDefinitionName"]))
    return Deployment(
        target=target,
        package=package,
        live=live,
        action=action,
        kind=kind,
        plan=plan,
        model=model,
        config=config,
        alarms=alarms,
        endpoint=endpoint,
        rescale=rescale,
        scaling=scaling,
        monitoring=monitoring,
    )
