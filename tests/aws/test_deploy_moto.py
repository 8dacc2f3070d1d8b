"""The deploy verbs end to end on moto (in process), with SageMaker hosting's behaviour added
(tests/aws/deploy_support.py): real packages, the real serving code behind the endpoint."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from deploy_support import Hosting, Model, register

from config import PIPELINE_CONFIG, Config, load_config
from config.fields import merge
from pipelines import cli
from pipelines.deploy import apply, names
from pipelines.deploy.history import read

STAGING = "tabular-xgboost-staging"


@dataclass
class FakeClock:
    """Time that passes only when deploy sleeps."""

    seconds: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.seconds += seconds

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return datetime(2026, 3, 2, 9, 0, tzinfo=UTC) + timedelta(seconds=self.seconds)


@pytest.fixture(scope="module")
def models(job_served: Model) -> dict[str, Model]:
    """A trained model as the pipeline leaves it, and a copy whose recorded predictions the
    endpoint does not reproduce (train/serve skew)."""
    good = job_served
    sample = dict(good.sample)
    sample["predictions"] = [p + 0.05 for p in sample["predictions"]]
    return {"good": good, "skewed": Model(good.handler, sample)}


@dataclass
class Account:
    """A moto account with the config's bucket, deploy's clients and hosting attached."""

    session: boto3.Session
    cfg: Config
    clients: apply.Clients
    hosting: Hosting
    clock: FakeClock
    config_path: Path
    models: dict[str, Model]

    def package(self, kind: str = "good", status: str = "Approved") -> str:
        arn = register(self.session, self.cfg, self.models[kind].sample, status)
        self.hosting.models[arn] = self.models[kind]
        return arn

    def reconfigure(self, path: Path, stages: dict[str, Any]) -> None:
        document = {"extends": str(PIPELINE_CONFIG), "deploy": {"stages": stages}}
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        self.config_path = path
        self.cfg = load_config(path, env={})

    def run(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        code = cli.main([*argv, "--config", str(self.config_path)])
        out, err = capsys.readouterr()
        return code, out, err

    def endpoint(self, name: str = STAGING) -> dict[str, Any]:
        return dict(self.clients.sagemaker.describe_endpoint(EndpointName=name))

    def tags(self, name: str = STAGING) -> dict[str, str]:
        return apply.sagemaker_tags(self.clients, self.endpoint(name)["EndpointArn"])


@pytest.fixture
def account(
    aws: boto3.Session,
    base_config: Config,
    models: dict[str, Model],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Account]:
    clients = apply.Clients.for_session(aws)
    hosting = Hosting(aws, base_config.aws.region)
    hosting.attach(clients)
    clock = FakeClock()
    monkeypatch.setattr(apply.Clients, "for_config", classmethod(lambda cls, cfg: clients))
    monkeypatch.setattr(apply, "Clock", lambda: clock)
    found = Account(aws, base_config, clients, hosting, clock, PIPELINE_CONFIG, models)
    # No monitoring schedule here: moto has none (the stubbed tests cover it).
    found.reconfigure(tmp_path / "deploy.yaml", {"prod": {"monitoring": {"enabled": False}}})
    yield found


def test_a_first_deploy_creates_verifies_and_smoke_tests_the_endpoint(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = account.package()
    code, out, err = account.run(capsys, "deploy", "--stage", "staging")
    assert code == 0, err
    assert f"deploy tabular-xgboost v1 (Approved) to endpoint {STAGING}" in out
    assert "rollout: none, a new endpoint serves once it is in service" in out
    assert "smoke test passed: 20 row(s) answered as the pipeline predicted" in out
    endpoint = account.endpoint()
    assert endpoint["EndpointStatus"] == "InService"
    config = endpoint["EndpointConfigName"]
    assert config.startswith(f"{STAGING}-v1-")
    assert f"deployed tabular-xgboost v1 on {STAGING}: live on {config} and smoke-tested" in out
    (invocation,) = account.hosting.invocations
    assert invocation["body"].count(b"\n") == 20  # the package's own test rows were sent
    tags = account.tags()
    assert tags[names.PACKAGE_TAG] == arn and tags[names.VERSION_TAG] == "1"
    assert tags[names.OWNER_TAG] == STAGING and tags[names.BY_TAG] == "user/moto"
    (entry,) = read(tags)
    assert (entry.version, entry.config_name, entry.action) == (1, config, "deploy")
    alarms = account.clients.cloudwatch.describe_alarms(AlarmNamePrefix=STAGING)["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in alarms) == [f"{config}-errors-5xx",
                                                      f"{config}-latency-p99"]  # fmt: skip
    dimensions = {d["Name"]: d["Value"] for d in alarms[0]["Dimensions"]}
    assert dimensions["EndpointConfigName"] == config  # the new fleet only


def test_dry_run_changes_nothing(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    account.package()
    code, out, _ = account.run(capsys, "deploy", "--stage", "prod", "--dry-run")
    assert code == 0 and "dry run: nothing was changed" in out
    assert "+++ new tabular-xgboost-prod-v1-" in out and '"InstanceType": "ml.m5.xlarge"' in out
    assert account.clients.sagemaker.list_models()["Models"] == []
    assert account.clients.cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_updates_keep_the_previous_config_and_clean_up_older_ones(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = []
    for version in (1, 2, 3):
        account.package()
        code, out, err = account.run(capsys, "deploy", "--stage", "staging")
        assert code == 0, err
        configs.append(account.endpoint()["EndpointConfigName"])
        assert f"v{version}" in configs[-1]
    assert "rollout: all at once on a new fleet of 1 instance(s)" in out
    assert f"alarm {configs[1]}-errors-5xx: deleted (its fleet is gone)" in out
    assert f"endpoint config {configs[0]}: deleted" in out
    left = [c["EndpointConfigName"] for c in
            account.clients.sagemaker.list_endpoint_configs()["EndpointConfigs"]]  # fmt: skip
    assert sorted(left) == sorted(configs[1:])  # live and previous, for a quick rollback
    assert [e.version for e in read(account.tags())] == [1, 2, 3]
    update = account.hosting.updates[-1]
    routing = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "ALL_AT_ONCE"
    assert {a["AlarmName"] for a in update["DeploymentConfig"]["AutoRollbackConfiguration"][
        "Alarms"]} == {f"{configs[2]}-errors-5xx", f"{configs[2]}-latency-p99"}  # fmt: skip


def test_autoscaling_survives_an_instance_type_change(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scaled = {"autoscaling": {"enabled": True, "min_capacity": 2, "max_capacity": 4},
              "instance_count": 2, "monitoring": {"enabled": False}}  # fmt: skip
    account.reconfigure(
        tmp_path / "a.yaml", {"prod": merge(scaled, {"instance_type": "ml.m5.large"})}
    )
    account.package()
    code, _, err = account.run(capsys, "deploy", "--stage", "prod")
    assert code == 0, err
    resource = "endpoint/tabular-xgboost-prod/variant/AllTraffic"
    autoscaling = account.clients.autoscaling
    # Application Auto Scaling moved the fleet to 3 instances since.
    account.hosting.backend.endpoints["tabular-xgboost-prod"].production_variants[0][
        "DesiredInstanceCount"] = 3  # fmt: skip
    account.reconfigure(
        tmp_path / "b.yaml", {"prod": merge(scaled, {"instance_type": "ml.m5.xlarge"})}
    )
    code, out, err = account.run(capsys, "deploy", "--stage", "prod")
    assert code == 0, err
    assert "released during the update (instance type changes)" in out
    assert "rollout: canary on a new fleet of 3 instance(s)" in out  # the live fleet
    update = account.hosting.updates[-1]
    assert update["RetainAllVariantProperties"] is True
    (target,) = autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource])["ScalableTargets"]  # fmt: skip
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    (policy,) = autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource
    )["ScalingPolicies"]
    assert policy["PolicyName"] == "tabular-xgboost-prod-target-tracking"
    variant = account.endpoint("tabular-xgboost-prod")["ProductionVariants"][0]
    assert variant["DesiredInstanceCount"] == 3 and variant["VariantName"] == "AllTraffic"


def test_the_stand_in_refuses_what_sagemaker_refuses(account: Account) -> None:
    """Without deregistering, SageMaker refuses an instance-type change of a scaled variant."""
    sagemaker = account.clients.sagemaker
    sagemaker.create_model(ModelName="m", PrimaryContainer={"Image": "i"},
                           ExecutionRoleArn=account.cfg.aws.role_arn)  # fmt: skip
    for name, kind in (("c1", "ml.m5.large"), ("c2", "ml.m5.xlarge")):
        sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InstanceType": kind,
             "InitialInstanceCount": 1}])  # fmt: skip
    sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="c1")
    account.clients.autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId="endpoint/e/variant/v",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1, MaxCapacity=2,
    )  # fmt: skip
    with pytest.raises(sagemaker.exceptions.ClientError, match="deregister it"):
        sagemaker.update_endpoint(EndpointName="e", EndpointConfigName="c2")


def test_a_tripped_alarm_is_a_failed_deploy_naming_it(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    account.package()
    assert account.run(capsys, "deploy", "--stage", "staging")[0] == 0
    live_config = account.endpoint()["EndpointConfigName"]
    account.package()
    account.hosting.trip = "errors-5xx"
    code, out, err = account.run(capsys, "deploy", "--stage", "staging")
    assert code == 1
    assert "ERROR: SageMaker rolled the update back" in err
    assert f"is InService on {live_config}" in err and "v2 is not live" in err
    assert "-v2-" in err and "errors-5xx: Threshold Crossed" in err
    assert "Traceback" not in out + err
    assert account.endpoint()["EndpointConfigName"] == live_config
    assert account.tags()[names.VERSION_TAG] == "1" and len(read(account.tags())) == 1
    assert len(account.hosting.invocations) == 1  # the rolled-back package is never smoke-tested


def test_a_smoke_mismatch_restores_the_previous_config(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    account.package()
    assert account.run(capsys, "deploy", "--stage", "staging")[0] == 0
    live_config = account.endpoint()["EndpointConfigName"]
    account.package("skewed")
    code, out, err = account.run(capsys, "deploy", "--stage", "staging")
    assert code == 1
    assert "smoke test FAILED on 20 row(s): row 1: endpoint" in err
    assert f"the previous config {live_config} serves again" in err
    assert account.endpoint()["EndpointConfigName"] == live_config
    restore = account.hosting.updates[-1]
    assert restore["EndpointConfigName"] == live_config
    assert "AutoRollbackConfiguration" not in restore["DeploymentConfig"]
    assert account.tags()[names.VERSION_TAG] == "1"


def test_a_new_endpoint_that_fails_its_smoke_test_is_deleted(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    account.package("skewed")
    code, _, err = account.run(capsys, "deploy", "--stage", "staging")
    assert code == 1 and "nothing is deployed" in err
    sagemaker = account.clients.sagemaker
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []
    assert account.clients.cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_only_an_approved_package_deploys(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    account.package(status="PendingManualApproval")
    code, _, err = account.run(capsys, "deploy", "--stage", "staging")
    assert code == 2 and "has no Approved package in us-east-1" in err
    code, _, err = account.run(capsys, "deploy", "--stage", "staging", "--version", "1")
    assert code == 2 and "v1 is PendingManualApproval, not Approved" in err
    code, _, err = account.run(capsys, "deploy", "--stage", "staging", "--version", "9")
    assert code == 2 and "model-package/tabular-xgboost/9 does not exist" in err
    assert account.clients.sagemaker.list_models()["Models"] == []


def test_rollback_redeploys_the_previous_package_explicitly(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    account.package()
    assert account.run(capsys, "rollback", "--stage", "staging")[0] == 2  # nothing live
    assert account.run(capsys, "deploy", "--stage", "staging")[0] == 0
    code, _, err = account.run(capsys, "rollback", "--stage", "staging")
    assert code == 2 and "has no earlier deployment in its history (live: v1)" in err
    account.package()
    assert account.run(capsys, "deploy", "--stage", "staging")[0] == 0
    code, out, err = account.run(capsys, "rollback", "--stage", "staging")
    assert code == 0, err
    assert "rollback tabular-xgboost v1 (Approved)" in out
    assert f"rolled back to tabular-xgboost v1 on {STAGING}: live on" in out
    assert "alarms (not watched: a rollback)" in out
    assert account.tags()[names.VERSION_TAG] == "1"
    assert [(e.version, e.action) for e in read(account.tags())] == [
        (1, "deploy"), (2, "deploy"), (1, "rollback")]  # fmt: skip
    assert "AutoRollbackConfiguration" not in account.hosting.updates[-1]["DeploymentConfig"]
    code, _, err = account.run(capsys, "rollback", "--stage", "staging", "--to-version", "2")
    assert code == 0, err
    assert account.tags()[names.VERSION_TAG] == "2"


def test_status_and_smoke_from_any_machine(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = account.run(capsys, "status", "--stage", "staging")
    assert code == 0 and f"endpoint {STAGING} is not deployed" in out
    account.package()
    account.run(capsys, "deploy", "--stage", "staging")
    code, out, _ = account.run(capsys, "status", "--stage", "staging")
    assert code == 0 and "package  v1 arn:aws:sagemaker:" in out
    assert "-errors-5xx: OK" in out and "history (oldest first):" in out
    code, out, _ = account.run(capsys, "smoke", "--stage", "staging")
    assert code == 0 and "smoke test passed" in out
    account.hosting.offset = 0.5  # the live endpoint now answers otherwise
    code, out, _ = account.run(capsys, "smoke", "--stage", "staging")
    assert code == 1 and "smoke test FAILED" in out


def test_undeploy_removes_what_deploy_created_and_nothing_else(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    account.package()
    assert account.run(capsys, "deploy", "--stage", "staging")[0] == 0
    sagemaker, cloudwatch = account.clients.sagemaker, account.clients.cloudwatch
    foreign_model = f"{STAGING}-v9-0000abcd"  # deploy's pattern, but not deploy's tag
    sagemaker.create_model(ModelName=foreign_model, PrimaryContainer={"Image": "i"},
                           ExecutionRoleArn=account.cfg.aws.role_arn)  # fmt: skip
    cloudwatch.put_metric_alarm(AlarmName=f"{STAGING}-team-alarm", MetricName="m",
                                Namespace="n", Statistic="Sum", Period=60, EvaluationPeriods=1,
                                Threshold=1, ComparisonOperator="GreaterThanThreshold")  # fmt: skip
    code, out, err = account.run(capsys, "undeploy", "--stage", "staging")
    assert code == 0, err
    assert f"removed endpoint {STAGING}" in out and "removed endpoint config" in out
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [foreign_model]
    assert [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]] == [
        f"{STAGING}-team-alarm"
    ]
    code, out, _ = account.run(capsys, "undeploy", "--stage", "staging")
    assert code == 0 and "nothing removed" in out


def test_an_endpoint_deploy_did_not_create_is_left_alone(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    sagemaker = account.clients.sagemaker
    sagemaker.create_model(ModelName="theirs", PrimaryContainer={"Image": "i"},
                           ExecutionRoleArn=account.cfg.aws.role_arn)  # fmt: skip
    sagemaker.create_endpoint_config(EndpointConfigName="theirs", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "theirs", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1}])  # fmt: skip
    sagemaker.create_endpoint(EndpointName=STAGING, EndpointConfigName="theirs")
    account.package()
    for verb in ("deploy", "undeploy"):
        code, _, err = account.run(capsys, verb, "--stage", "staging")
        assert code == 2 and "was not created by this tool" in err, err
    assert account.endpoint()["EndpointConfigName"] == "theirs"


class _Raw(io.BytesIO):
    """The raw body of a response, as urllib3 streams it."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def _failing_once(operation: str, code: str, message: str, status: int = 400) -> Any:
    calls: list[str] = []

    def respond(**_: Any) -> Any:
        calls.append(operation)
        if (
            len(calls) > 2
            and code == "ThrottlingException"
            or len(calls) > 1
            and code != ("ThrottlingException")
        ):
            return None
        body = json.dumps({"__type": code, "message": message}).encode()
        return AWSResponse("https://x", status, {}, _Raw(body))  # type: ignore[arg-type]

    respond.calls = calls  # type: ignore[attr-defined]
    return respond


def test_throttling_and_eventual_consistency_are_retried(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    events = account.clients.sagemaker.meta.events
    throttled = _failing_once("CreateEndpointConfig", "ThrottlingException", "Rate exceeded")
    events.register_first("before-send.sagemaker.CreateEndpointConfig", throttled)
    missing = _failing_once(
        "CreateEndpoint",
        "ValidationException",
        "Could not find endpoint configuration tabular-xgboost-staging-v1",
    )
    events.register_first("before-send.sagemaker.CreateEndpoint", missing)  # fmt: skip
    account.package()
    code, _, err = account.run(capsys, "deploy", "--stage", "staging")
    assert code == 0, err
    assert len(throttled.calls) == 3  # botocore's standard retries
    assert len(missing.calls) == 2 and apply.EVENTUAL_FIRST_DELAY in account.clock.sleeps


def test_an_aws_refusal_names_the_resource_and_leaves_nothing(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    quota = _failing_once(
        "CreateEndpoint",
        "ResourceLimitExceeded",
        "The account-level service limit for ml.m5.large is 0 instances",
    )
    account.clients.sagemaker.meta.events.register_first(
        "before-send.sagemaker.CreateEndpoint", quota)  # fmt: skip
    account.package()
    code, out, err = account.run(capsys, "deploy", "--stage", "staging")
    assert code == 1
    assert f"creating endpoint {STAGING}: ResourceLimitExceeded:" in err
    assert "raise the quota in Service Quotas" in err and "Traceback" not in err
    assert account.clients.sagemaker.list_models()["Models"] == []
    assert account.clients.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert account.clients.cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_async_and_serverless_endpoints(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    reference = yaml.safe_load((PIPELINE_CONFIG.parent / "deploy-reference.yaml").read_text())
    stages = reference["deploy"]["stages"]
    stages["async"]["monitoring"] = {"enabled": False}
    # moto refuses DesiredProvisionedConcurrency: the stubbed tests cover that scaling.
    stages["serverless"]["autoscaling"] = {"enabled": False}
    account.reconfigure(tmp_path / "kinds.yaml", {k: stages[k] for k in ("async", "serverless")})
    account.package()
    code, out, err = account.run(capsys, "deploy", "--stage", "async")
    assert code == 0, err
    assert "smoke test passed: 20 row(s)" in out
    alarms = account.clients.cloudwatch.describe_alarms(
        AlarmNames=["tabular-xgboost-async-backlog-without-capacity"])["MetricAlarms"]  # fmt: skip
    policies = account.clients.autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker")["ScalingPolicies"]  # fmt: skip
    step = next(p for p in policies if p["PolicyType"] == "StepScaling")
    assert alarms[0]["AlarmActions"] == [step["PolicyARN"]]  # wakes the endpoint from zero
    leftovers = account.clients.s3.list_objects_v2(
        Bucket=account.cfg.aws.bucket, Prefix=f"{account.cfg.aws.prefix}/endpoints/"
        "tabular-xgboost-async/smoke/").get("KeyCount")  # fmt: skip
    assert leftovers == 0
    code, out, err = account.run(capsys, "deploy", "--stage", "serverless")
    assert code == 0, err
    assert "smoke test passed" in out
    config = account.clients.sagemaker.describe_endpoint_config(
        EndpointConfigName=account.endpoint("tabular-xgboost-serverless")["EndpointConfigName"]
    )
    assert config["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] == 3072


IAM_PREFIX = {"sagemaker": "sagemaker", "sagemaker-runtime": "sagemaker",
              "cloudwatch": "cloudwatch", "application-autoscaling": "application-autoscaling",
              "s3": "s3"}  # fmt: skip
S3_READS = {"HeadObject": "GetObject"}


def test_every_call_deploy_makes_is_one_the_deploy_role_allows(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A whole life cycle (deploy, update, status, smoke, rollback, undeploy, an asynchronous
    endpoint scaling from zero), every AWS call recorded, against infra/deploy-role.yaml."""
    from infra_support import INFRA, as_list, load_template, statements

    made: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        if service != "sts":  # GetCallerIdentity needs no permission
            made.add(f"{IAM_PREFIX[service]}:{S3_READS.get(model.name, model.name)}")

    for client in vars(account.clients).values():
        client.meta.events.register("before-call.*.*", record)
    reference = yaml.safe_load((PIPELINE_CONFIG.parent / "deploy-reference.yaml").read_text())
    stage = {**reference["deploy"]["stages"]["async"], "monitoring": {"enabled": False}}
    account.reconfigure(tmp_path / "cycle.yaml", {"async": stage})
    for argv in (["deploy", "--stage", "async"], ["undeploy", "--stage", "async"]):
        account.package()
        assert account.run(capsys, *argv)[0] == 0
    for verb in ("deploy", "deploy", "status", "smoke", "rollback", "undeploy"):
        if verb == "deploy":
            account.package()
        code, _, err = account.run(capsys, verb, "--stage", "staging")
        assert code == 0, (verb, err)
    role = load_template(INFRA / "deploy-role.yaml")
    allowed = {a for s in statements(role, "DeployRole") for a in as_list(s["Action"])}
    assert made - allowed == set()
    assert {"sagemaker:UpdateEndpoint", "sagemaker:InvokeEndpointAsync", "s3:PutObject",
            "application-autoscaling:PutScalingPolicy"} <= made  # fmt: skip


def test_a_permission_missing_names_what_was_read_and_the_role(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    denied = _failing_once(
        "DescribeEndpoint",
        "AccessDeniedException",
        "User is not authorized to perform: sagemaker:DescribeEndpoint",
    )
    account.clients.sagemaker.meta.events.register_first(
        "before-send.sagemaker.DescribeEndpoint", denied)  # fmt: skip
    code, out, err = account.run(capsys, "status", "--stage", "staging")
    assert code == 1 and "Traceback" not in out + err
    assert f"reading what is live for endpoint {STAGING}: AccessDeniedException" in err
    assert "infra/deploy-role.yaml" in err
