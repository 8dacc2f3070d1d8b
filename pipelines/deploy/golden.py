"""The committed request files of the reference deployments (tests/golden/deploy/<stage>.json).

For every stage of configs/deploy-reference.yaml: the rollout plan and alarm definitions as data,
the requests of a first deploy (the endpoint is created) and of the next one (the endpoint runs
the previous package version on a smaller instance type, with autoscaling), each in the order
deploy applies them, and the shadow test's request where the stage has one. `make deploy-golden`
rewrites them; the tests compare and validate every request against botocore's service models.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from config import Config, load_config
from config.paths import CONFIG_DIR
from pipelines.deploy import history, names
from pipelines.deploy.deployment import DEPLOY, TIME_FORMAT, Deployment, Live, prepare
from pipelines.deploy.package import Package
from pipelines.deploy.plan import alarm_definitions
from tabular.contract import ApprovalStatus, EndpointStatus, ScheduleStatus

REFERENCE_CONFIG = CONFIG_DIR / "deploy-reference.yaml"
VERSION = 7
PREVIOUS_VERSION = 6
PREVIOUS_INSTANCE_TYPE = "ml.m5.large"
EXECUTION = "reference-execution"
WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
WHO = "assumed-role/tabular-xgboost-deploy/release"


def reference_package(cfg: Config, version: int) -> Package:
    """A package as the pipeline registers it, in the config's account and region."""
    account = cfg.aws.role_arn.split(":")[4]
    group = cfg.registry.model_package_group
    runs = f"s3://{cfg.aws.bucket}/{cfg.aws.prefix}/runs/{EXECUTION}"
    return Package(
        arn=f"arn:aws:sagemaker:{cfg.aws.region}:{account}:model-package/{group}/{version}",
        group=group,
        version=version,
        status=ApprovalStatus.APPROVED,
        approval_description="reviewer: reference",
        realtime_instance_types=tuple(cfg.registry.inference_instance_types),
        baseline_statistics=f"{runs}/DataQuality/results/statistics.json",
        baseline_constraints=f"{runs}/DataQuality/results/constraints.json",
        smoke_sample=f"{runs}/Evaluate/evaluation/smoke_sample.json",
    )


def previous_live(first: Deployment) -> Live:
    """The endpoint as the previous version's deploy left it, on a smaller instance type."""
    target = first.target
    config = copy.deepcopy({k: v for k, v in first.config.items() if k != "Tags"})
    variant = config["ProductionVariants"][0]
    if "InstanceType" in variant:
        variant["InstanceType"] = PREVIOUS_INSTANCE_TYPE
    count = variant.get("InitialInstanceCount")
    account = target.cfg.aws.role_arn.split(":")[4]
    endpoint = {
        "EndpointName": target.endpoint,
        "EndpointArn": f"arn:aws:sagemaker:{target.cfg.aws.region}:{account}:endpoint/"
        f"{target.endpoint}",
        "EndpointConfigName": first.config_name,
        "EndpointStatus": EndpointStatus.IN_SERVICE,
        "ProductionVariants": [
            {"VariantName": target.variant, "CurrentWeight": 1.0}
            | ({"CurrentInstanceCount": count, "DesiredInstanceCount": count} if count else {})
        ],
    }
    tags = names.as_dict(target.tags(first.package)) | {names.CONFIG_TAG: first.config_name}
    entry, _ = history.append([], first.package.arn, first.package.version, first.config_name,
                              WHO, WHEN.strftime(TIME_FORMAT), DEPLOY)  # fmt: skip
    scalable = policies = None
    if first.scaling:
        scalable = first.scaling[0].request
        policies = tuple(c.request for c in first.scaling[1:] if "PolicyName" in c.request)
    schedule = None
    if first.monitoring is not None:
        schedule = {
            "MonitoringScheduleName": first.monitoring[1]["MonitoringScheduleName"],
            "MonitoringScheduleConfig": first.monitoring[1]["MonitoringScheduleConfig"],
            "MonitoringScheduleStatus": ScheduleStatus.SCHEDULED,
        }
    return Live(
        endpoint_name=target.endpoint,
        endpoint=endpoint,
        config=config,
        tags=tags | entry,
        scalable_target=scalable,
        scaling_policies=policies or (),
        schedule=schedule,
    )


def document(cfg: Config, stage: str) -> dict[str, Any]:
    """The golden document of one stage."""
    package = reference_package(cfg, VERSION)
    first = prepare(cfg, stage, reference_package(cfg, PREVIOUS_VERSION), Live(
        cfg.deploy.stage(stage).endpoint_name), DEPLOY)  # fmt: skip
    created = prepare(cfg, stage, package, Live(first.target.endpoint), DEPLOY)
    live = previous_live(first)
    updated = prepare(cfg, stage, package, live, DEPLOY)
    found: dict[str, Any] = {
        "stage": stage,
        "package": asdict(package),
        "rollout": asdict(updated.plan),
        "alarms": [asdict(a) for a in alarm_definitions(updated.target.stage)],
        "create": [c.as_json() for c in created.calls()],
        "update": {
            "live": {
                "endpoint_config": live.config_name,
                "instance_type": live.variant.get("InstanceType"),
                "instances": live.instances,
                "autoscaling": live.scalable_target is not None,
            },
            "calls": [c.as_json() for c in updated.calls()],
        },
    }
    if updated.target.stage.shadow.enabled:
        found["shadow"] = updated.shadow_request(WHEN)
    return found


def documents(cfg: Config | None = None) -> dict[str, str]:
    """File name -> content of every golden file, from the committed reference config."""
    cfg = cfg or load_config(REFERENCE_CONFIG, env={})
    return {
        f"{stage}.json": json.dumps(document(cfg, stage), indent=2, sort_keys=True) + "\n"
        for stage in cfg.deploy.stages
    }
