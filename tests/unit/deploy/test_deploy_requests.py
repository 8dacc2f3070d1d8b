"""Requests as data: each validated against botocore's models, pinned by golden files, and the
decisions the plan takes against what is live."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from config import Config, load_config
from config.paths import DEPLOY_GOLDEN_DIR
from pipelines.deploy import golden, names
from pipelines.deploy.deployment import (
    CREATE,
    DEPLOY,
    UNCHANGED,
    UPDATE,
    DeployFailed,
    DeployRefused,
    Live,
    prepare,
)
from pipelines.deploy.history import ROLLBACK
from pipelines.deploy.package import PackageRefused

GOLDEN = DEPLOY_GOLDEN_DIR


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(golden.REFERENCE_CONFIG, env={})


def calls_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = [*document["create"], *document["update"]["calls"]]
    if "shadow" in document:
        found.append({"service": "sagemaker", "operation": "CreateInferenceExperiment",
                      "request": document["shadow"]})  # fmt: skip
    return found


def test_golden_files_are_current(cfg: Config) -> None:
    """`make deploy-golden` rewrites them; a change of the requests shows in their diff."""
    expected = golden.documents(cfg)
    assert sorted(p.name for p in GOLDEN.glob("*.json")) == sorted(expected)
    for name, content in expected.items():
        assert (GOLDEN / name).read_text() == content, f"{name}: run `make deploy-golden`"


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.json")))
def test_every_request_is_valid_for_the_service_model(name: str) -> None:
    session = botocore.session.get_session()
    validator = ParamValidator()
    document = json.loads((GOLDEN / name).read_text())
    calls = calls_of(document)
    assert {"CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint"} <= {
        c["operation"] for c in calls
    }
    for call in calls:
        model = session.get_service_model(call["service"]).operation_model(call["operation"])
        report = validator.validate(call["request"], model.input_shape)
        assert not report.has_errors(), f"{call['operation']}: {report.generate_report()}"


def test_reference_stages_cover_every_endpoint_type() -> None:
    documents = {p.stem: json.loads(p.read_text()) for p in GOLDEN.glob("*.json")}
    config = {stem: next(c["request"] for c in d["create"]
                         if c["operation"] == "CreateEndpointConfig")
              for stem, d in documents.items()}  # fmt: skip
    assert "ServerlessConfig" in config["serverless"]["ProductionVariants"][0]
    assert "AsyncInferenceConfig" in config["async"]
    assert config["realtime"]["DataCaptureConfig"]["InitialSamplingPercentage"] == 50
    update = {c["operation"]: c["request"] for c in documents["async"]["update"]["calls"]}
    assert "RollingUpdatePolicy" in update["UpdateEndpoint"]["DeploymentConfig"]
    assert documents["realtime"]["shadow"]["Type"] == "ShadowMode"


def test_names_are_deterministic_and_carry_the_version(cfg: Config) -> None:
    package = golden.reference_package(cfg, 7)
    one = prepare(cfg, "prod", package, Live("tabular-xgboost-prod"), DEPLOY)
    two = prepare(cfg, "prod", package, Live("tabular-xgboost-prod"), DEPLOY)
    assert one.config_name == two.config_name and one.model_name == two.model_name
    assert names.version_of(one.config_name, "tabular-xgboost-prod") == 7
    assert names.version_of("tabular-xgboost-prod-vx-1", "tabular-xgboost-prod") is None
    other = prepare(cfg, "prod", golden.reference_package(cfg, 8), Live(one.target.endpoint),
                    DEPLOY)  # fmt: skip
    assert other.config_name != one.config_name and "-v8-" in other.config_name
    bigger = _with_stage(cfg, "prod", instance_type="ml.m5.large")
    changed = prepare(bigger, "prod", package, Live(one.target.endpoint), DEPLOY)
    assert changed.model_name == one.model_name  # same package, same model
    assert changed.config_name != one.config_name  # another fleet, another config
    assert all(len(n) <= 63 for n in (one.config_name, one.model_name))


def _with_stage(cfg: Config, stage: str, **changes: Any) -> Config:
    stages = dict(cfg.deploy.stages)
    stages[stage] = stages[stage].model_copy(update=changes)
    return cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"stages": stages})})


def test_rollback_alarms_watch_only_the_new_fleet(cfg: Config) -> None:
    d = prepare(cfg, "prod", golden.reference_package(cfg, 7), Live("tabular-xgboost-prod"),
                DEPLOY)  # fmt: skip
    errors = d.alarms[0]
    dimensions = {x["Name"]: x["Value"] for x in errors["Dimensions"]}
    assert dimensions == {"EndpointName": "tabular-xgboost-prod", "VariantName": "AllTraffic",
                          "EndpointConfigName": d.config_name}  # fmt: skip
    assert errors["AlarmName"].startswith(d.config_name) and errors["Statistic"] == "Sum"
    latency = d.alarms[1]
    assert latency["ExtendedStatistic"] == "p99" and "Statistic" not in latency
    assert names.as_dict(errors["Tags"])[names.OWNER_TAG] == "tabular-xgboost-prod"


def live_after(cfg: Config, stage: str, version: int = 6) -> Live:
    first = prepare(cfg, stage, golden.reference_package(cfg, version),
                    Live(cfg.deploy.stage(stage).endpoint_name), DEPLOY)  # fmt: skip
    return golden.previous_live(first)


def test_update_against_the_live_endpoint(cfg: Config) -> None:
    package = golden.reference_package(cfg, 7)
    live = live_after(cfg, "prod")
    d = prepare(cfg, "prod", package, live, DEPLOY)
    assert d.kind == UPDATE and d.rescale  # ml.m5.large -> ml.m5.xlarge, autoscaled
    operations = [c.operation for c in d.calls()]
    update = operations.index("UpdateEndpoint")
    assert operations.index("DeregisterScalableTarget") < update
    assert operations.index("RegisterScalableTarget") > update
    assert d.endpoint is not None and d.endpoint["RetainAllVariantProperties"] is True
    config = d.endpoint["DeploymentConfig"]
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert [a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"]] == (
        d.alarm_names
    )
    same_type = replace(live, config={**live.config, "ProductionVariants": [  # type: ignore[dict-item]
        {**live.variant, "InstanceType": "ml.m5.xlarge"}]})  # fmt: skip
    assert not prepare(cfg, "prod", package, same_type, DEPLOY).rescale


def test_a_rollback_is_immediate_and_unwatched(cfg: Config) -> None:
    live = live_after(cfg, "prod", version=7)
    d = prepare(cfg, "prod", golden.reference_package(cfg, 6), live, ROLLBACK)
    assert d.plan.mode == "all_at_once" and d.plan.total_wait_seconds == 0
    assert d.endpoint is not None
    assert "AutoRollbackConfiguration" not in d.endpoint["DeploymentConfig"]
    assert d.alarms  # still created: they watch the restored fleet from now on


def test_same_config_is_unchanged_and_a_new_endpoint_is_created(cfg: Config) -> None:
    package = golden.reference_package(cfg, 6)
    created = prepare(cfg, "staging", package, Live("tabular-xgboost-staging"), DEPLOY)
    assert created.kind == CREATE and created.endpoint is not None
    assert "DeploymentConfig" not in created.endpoint
    live = golden.previous_live(created)
    live = replace(
        live,
        config={
            **live.config,  # type: ignore[dict-item]
            "ProductionVariants": created.config["ProductionVariants"],
        },
    )
    assert prepare(cfg, "staging", package, live, DEPLOY).kind == UNCHANGED


@pytest.mark.parametrize(
    ("change", "error", "expected"),
    [
        (
            {"status": "PendingManualApproval", "approval_description": ""},
            PackageRefused,
            "v7 is PendingManualApproval, not Approved: only an approved package deploys",
        ),
        (
            {"status": "Rejected", "approval_description": "alice: drift"},
            PackageRefused,
            "v7 is Rejected (alice: drift), not Approved",
        ),
        (
            {"realtime_instance_types": ("ml.c5.large",)},
            PackageRefused,
            "supports real-time instance types ['ml.c5.large'], not ml.m5.xlarge",
        ),
        ({"smoke_sample": None}, PackageRefused, "records no smoke sample"),
        ({"baseline_statistics": None}, PackageRefused, "has no data-quality baseline"),
    ],
)
def test_packages_that_cannot_deploy(
    cfg: Config, change: dict[str, Any], error: type, expected: str
) -> None:
    package = replace(golden.reference_package(cfg, 7), **change)
    with pytest.raises(error, match=re.escape(expected)):
        prepare(cfg, "prod", package, Live("tabular-xgboost-prod"), DEPLOY)


def test_what_the_live_endpoint_forbids(cfg: Config) -> None:
    package = golden.reference_package(cfg, 7)
    live = live_after(cfg, "prod")
    foreign = replace(live, tags={})
    with pytest.raises(DeployRefused, match="was not created by this tool"):
        prepare(cfg, "prod", package, foreign, DEPLOY)
    serverless = replace(live, config={**live.config, "ProductionVariants": [  # type: ignore[dict-item]
        {"VariantName": "AllTraffic", "ServerlessConfig": {"MemorySizeInMB": 2048}}]})  # fmt: skip
    with pytest.raises(DeployRefused, match="SageMaker refuses to turn a real-time endpoint"):
        prepare(cfg, "prod", package, serverless, DEPLOY)
    renamed = replace(live, config={**live.config, "ProductionVariants": [  # type: ignore[dict-item]
        {**live.variant, "VariantName": "Blue"}]})  # fmt: skip
    with pytest.raises(DeployRefused, match="must keep the variant name"):
        prepare(cfg, "prod", package, renamed, DEPLOY)
    updating = replace(live, endpoint={**live.endpoint, "EndpointStatus": "Updating"})  # type: ignore[dict-item]
    with pytest.raises(DeployFailed, match="is Updating, not InService"):
        prepare(cfg, "prod", package, updating, DEPLOY)
    shrunk = replace(live, endpoint={**live.endpoint, "ProductionVariants": [  # type: ignore[dict-item]
        {"VariantName": "AllTraffic", "DesiredInstanceCount": 1}]})  # fmt: skip
    with pytest.raises(DeployRefused, match=r"runs 1 instance\(s\) now \(autoscaling\)"):
        prepare(cfg, "prod", package, shrunk, DEPLOY)
