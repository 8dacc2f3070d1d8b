"""infra/deploy-role.yaml allows what deploy does, to the names deploy derives from the configs,
and no more (its wildcards are checked with every template's in tests/unit/infra/test_infra.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from infra_support import INFRA, Resolver, as_list, iam_matches, load_template, statements

from config import PIPELINE_CONFIG, Config, load_config
from config.paths import CONFIG_DIR, DEPLOY_GOLDEN_DIR
from pipelines.deploy import golden, names
from pipelines.deploy.deployment import DEPLOY, Deployment, Live, prepare
from pipelines.deploy.requests import Target

ROLE = INFRA / "deploy-role.yaml"
GOLDEN = DEPLOY_GOLDEN_DIR
CONFIGS = [PIPELINE_CONFIG, CONFIG_DIR / "deploy-reference.yaml"]


@pytest.fixture(scope="module")
def role() -> dict[str, Any]:
    return load_template(ROLE)


def grants(role: dict[str, Any], resource: str, cfg: Config) -> list[tuple[list[str], list[str]]]:
    resolver = Resolver(role, cfg.aws.role_arn.split(":")[4], cfg.aws.region)
    return [
        (as_list(s["Action"]), [resolver.value(r) for r in as_list(s["Resource"])])
        for s in statements(role, resource)
    ]


def allowed(granted: list[tuple[list[str], list[str]]], action: str, arn: str) -> bool:
    return any(action in actions and any(iam_matches(r, arn) for r in resources)
               for actions, resources in granted)  # fmt: skip


def deployments(cfg: Config) -> list[Deployment]:
    found = []
    for stage in cfg.deploy.stages:
        first = prepare(cfg, stage, golden.reference_package(cfg, 6),
                        Live(cfg.deploy.stage(stage).endpoint_name), DEPLOY)  # fmt: skip
        found.append(prepare(cfg, stage, golden.reference_package(cfg, 7),
                             golden.previous_live(first), DEPLOY))  # fmt: skip
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_name_deploy_derives_is_covered(role: dict[str, Any], path: Path) -> None:
    cfg = load_config(path, env={})
    granted = grants(role, "DeployRole", cfg)
    sagemaker = f"arn:aws:sagemaker:{cfg.aws.region}:{cfg.aws.role_arn.split(':')[4]}"
    cloudwatch = sagemaker.replace(":sagemaker:", ":cloudwatch:")
    for d in deployments(cfg):
        endpoint = d.target.endpoint
        owned = {
            "endpoint": endpoint,
            "endpoint-config": d.config_name,
            "model": d.model_name,
            "monitoring-schedule": names.monitoring_schedule_name(endpoint),
            "inference-experiment": names.experiment_name(endpoint, 7),
        }
        if d.monitoring is not None:
            owned["data-quality-job-definition"] = d.monitoring[0]["JobDefinitionName"]
        for kind, name in owned.items():
            assert allowed(granted, "sagemaker:AddTags", f"{sagemaker}:{kind}/{name.lower()}"), (
                kind, name)  # fmt: skip
        assert allowed(granted, "sagemaker:UpdateEndpoint", f"{sagemaker}:endpoint/{endpoint}")
        assert allowed(granted, "sagemaker:InvokeEndpoint", f"{sagemaker}:endpoint/{endpoint}")
        for alarm in d.alarm_names + [f"{endpoint}{names.BACKLOG_ALARM_SUFFIX}"]:
            assert allowed(granted, "cloudwatch:PutMetricAlarm", f"{cloudwatch}:alarm:{alarm}")
        assert allowed(granted, "sagemaker:DescribeModelPackage", d.package.arn)
        sample = "arn:aws:s3:::" + (d.package.smoke_sample or "").removeprefix("s3://")
        assert allowed(granted, "s3:GetObject", sample)
        smoke = "arn:aws:s3:::" + d.target.s3("smoke/v7-0.csv").removeprefix("s3://")
        assert allowed(granted, "s3:PutObject", smoke)
    other = f"{sagemaker}:endpoint/someone-elses-endpoint"
    assert not allowed(granted, "sagemaker:DeleteEndpoint", other)


def test_the_execution_role_is_the_only_role_passed_and_it_may_write_endpoint_data(
    role: dict[str, Any], base_config: Config
) -> None:
    granted = grants(role, "DeployRole", base_config)
    passing = [(a, r) for a, r in granted if "iam:PassRole" in a]
    assert passing == [(["iam:PassRole"], [base_config.aws.role_arn])]
    (statement,) = [s for s in statements(role, "DeployRole") if s.get("Sid") ==
                    "PassTheExecutionRoleOnly"]  # fmt: skip
    assert statement["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}  # fmt: skip
    policy = role["Resources"]["EndpointExecutionPolicy"]["Properties"]
    resolver = Resolver(role, "123456789012", base_config.aws.region)
    assert [resolver.value(r) for r in policy["Roles"]] == [base_config.aws.role_arn.split("/")[-1]]
    written = grants(role, "EndpointExecutionPolicy", base_config)
    for stage in base_config.deploy.stages:
        target = Target(base_config, stage)
        capture = "arn:aws:s3:::" + target.capture_destination.removeprefix("s3://") + "/x.jsonl"
        assert allowed(written, "s3:PutObject", capture)


def test_every_request_of_the_golden_files_is_an_allowed_action(role: dict[str, Any]) -> None:
    actions = {a for s in statements(role, "DeployRole") for a in as_list(s["Action"])}
    for path in GOLDEN.glob("*.json"):
        document = json.loads(path.read_text())
        for call in [*document["create"], *document["update"]["calls"]]:
            assert f"{call['service']}:{call['operation']}" in actions, (path.name, call)
