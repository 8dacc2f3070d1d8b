"""The release, offline: buildspecs call make targets that exist; the release templates name what
the configs and the deploy role expect; the release record, the load run's verdict and the
manual gate's message as data. (Events: tests/aws/test_release_events.py; the verbs on moto:
tests/aws/test_release_moto.py.)"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import INFRA, Resolver, as_list, load_template

from config import PIPELINE_CONFIG, Config, load_config
from pipelines import cli
from pipelines.deploy import names
from pipelines.deploy.release import LoadResult, Release, ReleaseError, approval_message

ROOT = INFRA.parent
BUILDSPECS = ROOT / "buildspecs"
MAKEFILE = ROOT / "Makefile"
RELEASE_TEMPLATES = ("model-build.yaml", "model-deploy.yaml", "drift-retraining.yaml")


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE.read_text(), flags=re.MULTILINE))


def make_variables() -> set[str]:
    """The variables the Makefile's recipes read: $(NAME) and $(if $(NAME)...)."""
    return set(re.findall(r"\$\(([A-Z_]+)\)", MAKEFILE.read_text()))


def commands(buildspec: dict[str, Any]) -> list[str]:
    found = []
    for phase in buildspec["phases"].values():
        found.extend(phase.get("commands", []))
    return found


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(PIPELINE_CONFIG, env={})


def resolver(name: str, cfg: Config) -> Resolver:
    return Resolver(load_template(INFRA / name), cfg.aws.role_arn.split(":")[4], cfg.aws.region)


@pytest.mark.parametrize("path", sorted(BUILDSPECS.glob("*.yml")), ids=lambda p: p.name)
def test_every_buildspec_command_is_a_make_target_that_exists(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    assert spec["version"] == 0.2
    targets, variables = make_targets(), make_variables()
    found = commands(spec)
    assert found, path
    for command in found:
        words = shlex.split(command)
        assert words[0] == "make" and len(words) >= 2, f"{path.name}: {command!r} is not make"
        assert words[1] in targets, f"{path.name}: make {words[1]} does not exist"
        for assignment in words[2:]:  # only VAR=value, no shell logic
            name, _, value = assignment.partition("=")
            assert re.fullmatch(r"[A-Z_]+", name) and value, (path.name, assignment)
            assert name in variables, f"{path.name}: the Makefile does not read {name}"
        assert not set(command) & set("|&;$`><"), f"{path.name}: shell logic in {command!r}"


def test_the_checks_above_catch_shell_logic() -> None:
    assert "rollback-rejected" in make_targets() and "STAGE" in make_variables()
    assert "deploy-everything" not in make_targets()
    assert set("make deploy STAGE=staging && echo ok") & set("|&;$`><")


def test_every_buildspec_is_used_by_a_template_and_every_one_used_exists() -> None:
    used = set()
    for name in RELEASE_TEMPLATES:
        used |= set(re.findall(r"buildspecs/[a-z-]+\.yml", (INFRA / name).read_text()))
    on_disk = {f"buildspecs/{p.name}" for p in BUILDSPECS.glob("*.yml")}
    assert used == on_disk


def test_release_stages_are_the_configs(cfg: Config) -> None:
    """The buildspecs deploy STAGE=staging and STAGE=prod: the committed config defines both."""
    stages = set()
    for path in BUILDSPECS.glob("*.yml"):
        for command in commands(yaml.safe_load(path.read_text())):
            stages |= set(re.findall(r"(?:STAGE|NEXT_STAGE)=([a-z-]+)", command))
    assert stages == {"staging", "prod"} <= set(cfg.deploy.stages)


def test_templates_default_to_the_configs_names(cfg: Config) -> None:
    for name in RELEASE_TEMPLATES:
        parameters = load_template(INFRA / name)["Parameters"]
        assert parameters["PipelineName"]["Default"] == cfg.pipeline.name, name
        if "ModelPackageGroupName" in parameters:
            group = parameters["ModelPackageGroupName"]["Default"]
            assert group == cfg.registry.model_package_group, name
        if "BucketNamePrefix" in parameters:
            bucket = f"{parameters['BucketNamePrefix']['Default']}-{cfg.aws.role_arn.split(':')[4]}"
            assert bucket == cfg.aws.bucket, name
        if "ConfigFile" in parameters:
            assert (ROOT / parameters["ConfigFile"]["Default"]).resolve() == PIPELINE_CONFIG
    drift = load_template(INFRA / "drift-retraining.yaml")["Parameters"]
    assert drift["ProdEndpointName"]["Default"] == cfg.deploy.stage("prod").endpoint_name


def test_release_builds_run_as_the_deploy_role_that_trusts_exactly_them(cfg: Config) -> None:
    deploy = resolver("model-deploy.yaml", cfg)
    projects = {
        deploy.ref(name): deploy.value(resource["Properties"]["ServiceRole"])
        for name, resource in deploy.template["Resources"].items()
        if resource["Type"] == "AWS::CodeBuild::Project"
    }
    role_template = resolver("deploy-role.yaml", cfg)
    role_arn = role_template.attribute("DeployRole", "Arn")
    assert set(projects.values()) == {role_arn}
    trust = role_template.template["Resources"]["DeployRole"]["Properties"][
        "AssumeRolePolicyDocument"
    ]["Statement"]
    (codebuild,) = [s["Fn::If"][1] for s in trust if "Fn::If" in s]
    assert codebuild["Principal"] == {"Service": "codebuild.amazonaws.com"}
    trusted = {role_template.value(a) for a in codebuild["Condition"]["ArnLike"]["aws:SourceArn"]}
    account, region = cfg.aws.role_arn.split(":")[4], cfg.aws.region
    assert trusted == {f"arn:aws:codebuild:{region}:{account}:project/{p}" for p in projects}
    # ...and the policy the release adds is attached to that role, by its name.
    (attached,) = deploy.template["Resources"]["ReleaseBuildPolicy"]["Properties"]["Roles"]
    assert deploy.value(attached) == role_arn.rsplit("/", 1)[1]


def test_the_release_pipeline_is_staging_tests_gate_prod_one_at_a_time(cfg: Config) -> None:
    deploy = resolver("model-deploy.yaml", cfg)
    resources = deploy.template["Resources"]
    pipeline = resources["ReleasePipeline"]["Properties"]
    assert pipeline["PipelineType"] == "V2" and pipeline["ExecutionMode"] == "SUPERSEDED"
    stages = [stage["Name"] for stage in pipeline["Stages"]]
    assert stages == ["Source", "DeployStaging", "TestStaging", "ApproveProduction", "DeployProd"]
    actions = {stage["Name"]: stage["Actions"] for stage in pipeline["Stages"]}
    builds = {
        name: resources[actions[name][0]["Configuration"]["ProjectName"]["Ref"]]["Properties"]
        for name in ("DeployStaging", "TestStaging", "DeployProd")
    }
    assert {n: b["Source"]["BuildSpec"] for n, b in builds.items()} == {
        "DeployStaging": "buildspecs/deploy-staging.yml",
        "TestStaging": "buildspecs/test-staging.yml",
        "DeployProd": "buildspecs/deploy-prod.yml",
    }
    # The record DeployStaging writes reaches DeployProd through the artifacts.
    assert actions["DeployStaging"][0]["OutputArtifacts"] == [{"Name": "StagingRelease"}]
    assert actions["TestStaging"][0]["InputArtifacts"] == [{"Name": "StagingRelease"}]
    assert (
        actions["DeployProd"][0]["InputArtifacts"] == actions["TestStaging"][0]["OutputArtifacts"]
    )
    (gate,) = actions["ApproveProduction"]
    assert gate["ActionTypeId"]["Provider"] == "Manual"
    assert gate["Configuration"]["NotificationArn"] == {"Ref": "ApprovalTopic"}
    topic = [
        v["Value"]
        for v in builds["TestStaging"]["Environment"]["EnvironmentVariables"]
        if v["Name"] == "APPROVAL_TOPIC_ARN"
    ]
    assert topic == [{"Ref": "ApprovalTopic"}]
    # A source change never starts a release: only an approval does.
    for action in actions["Source"][0]["Fn::If"][1:]:
        configuration = action["Configuration"]
        assert configuration.get("PollForSourceChanges", False) is False
        assert configuration.get("DetectChanges", False) is False


def test_the_rejected_rule_passes_the_package_to_the_rollback_build(cfg: Config) -> None:
    deploy = resolver("model-deploy.yaml", cfg)
    resources = deploy.template["Resources"]
    (target,) = resources["RejectedPackageRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["RollbackProject", "Arn"]}
    project = resources["RollbackProject"]["Properties"]
    assert project["Source"]["BuildSpec"] == "buildspecs/rollback-rejected.yml"
    assert project["ConcurrentBuildLimit"] == 1
    template = target["InputTransformer"]["InputTemplate"]
    assert "REJECTED_PACKAGE_ARN" in template and "REJECTED_PACKAGE_ARN" in make_variables()


def test_drift_alarm_and_rule_name_the_prod_monitoring_not_the_rollback_alarms(
    cfg: Config,
) -> None:
    drift = resolver("drift-retraining.yaml", cfg)
    resources = drift.template["Resources"]
    prod = cfg.deploy.stage("prod").endpoint_name
    schedule = names.monitoring_schedule_name(prod)
    alarm = resources["DriftAlarm"]["Properties"]
    dimensions = {d["Name"]: drift.value(d["Value"]) for d in alarm["Dimensions"]}
    assert dimensions == {"Endpoint": prod, "MonitoringSchedule": schedule}
    (prefix,) = resources["DriftRule"]["Properties"]["EventPattern"]["detail"]["alarmName"]
    prefix = drift.value(prefix["prefix"])
    assert prefix == schedule and drift.value(alarm["AlarmName"]).startswith(prefix)
    rollback_alarm = names.alarm_name(f"{prod}-v3-0123abcd", "errors-5xx")
    assert not rollback_alarm.startswith(prefix)


def test_the_retraining_role_may_only_list_and_start_this_pipeline(cfg: Config) -> None:
    drift = resolver("drift-retraining.yaml", cfg)
    (policy,) = drift.template["Resources"]["RetrainingStarterRole"]["Properties"]["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert sorted(as_list(statement["Action"])) == [
        "sagemaker:ListPipelineExecutions",
        "sagemaker:StartPipelineExecution",
    ]
    pipeline = f"arn:aws:sagemaker:{cfg.aws.region}:123456789012:pipeline/{cfg.pipeline.name}"
    assert drift.value(statement["Resource"]) == pipeline


# --------------------------------------------------------------------------- the record


def release(**results: Any) -> Release:
    return Release(
        group="tabular-xgboost",
        version=7,
        package_arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/tabular-xgboost/7",
        stage="staging",
        endpoint="tabular-xgboost-staging",
        config_name="tabular-xgboost-staging-v7-0123abcd",
        results=results,
    )


def test_the_record_round_trips_and_a_bad_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "build" / "release.json"
    written = release(smoke={"passed": True, "rows": 20, "summary": "ok"})
    written.write(path)
    assert Release.read(path) == written
    assert Release.read(path).with_result("load", {"passed": False}).results == {
        "smoke": {"passed": True, "rows": 20, "summary": "ok"},
        "load": {"passed": False},
    }
    with pytest.raises(ReleaseError, match=r"does not exist; .*make deploy STAGE=staging"):
        Release.read(tmp_path / "missing.json")
    path.write_text('{"group": "x"')
    with pytest.raises(ReleaseError, match="is unreadable"):
        Release.read(path)
    path.write_text(json.dumps({"group": "x"}))
    with pytest.raises(ReleaseError, match=r"lacks \['group', 'version'"):
        Release.read(path)


def test_deploy_from_a_bad_record_is_a_usage_error_before_aws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "release.json"
    record.write_text("not json")
    code = cli.main(["deploy", "--stage", "prod", "--release", str(record)])
    assert code == 2
    assert f"release record {record} is unreadable" in capsys.readouterr().err


def test_load_verdicts(cfg: Config) -> None:
    settings = cfg.deploy.stage("staging").load_test.model_copy(update={"max_p99_ms": 50.0})
    good = LoadResult("e", 5, 100, 0, 2.0, tuple(float(i) for i in range(1, 101)), (), "requests")
    assert good.percentile(50) == 50.0 and good.percentile(99) == 99.0
    assert good.problems(settings) == ["p99 latency 99.0 ms > load_test.max_p99_ms 50.0"]
    assert good.as_dict(settings)["requests_per_second"] == 50.0
    failing = LoadResult("e", 5, 10, 2, 1.0, (1.0,) * 8, ("ThrottlingException: slow",), "time")
    (problem,) = failing.problems(cfg.deploy.stage("staging").load_test)
    assert "2 of 10 requests failed (20.0% > load_test.max_error_rate 0.0%)" in problem
    assert "ThrottlingException" in problem
    nothing = LoadResult("e", 5, 0, 0, 0.0, (), (), "time")
    assert nothing.problems(settings) == ["no request was sent"]
    assert nothing.percentile(99) is None


def test_the_gate_message_names_version_metrics_and_staging_results() -> None:
    recorded = release(
        smoke={"passed": True, "rows": 20, "summary": "smoke test passed: 20 row(s)"},
        load={"passed": True, "requests": 200, "seconds": 3.2, "failed": 0, "p50_ms": 4.1,
              "p99_ms": 9.5, "errors": []},
    )  # fmt: skip
    report = {
        "binary_classification_metrics": {
            "auc": {"value": 0.912345678, "standard_deviation": 0.0123},
            "accuracy": {"value": 0.85},
        },
        "evaluation_rows": 1500,
    }
    described = {"ModelApprovalStatus": "Approved", "ApprovalDescription": "looks good"}
    subject, body = approval_message(recorded, described, report, "prod")
    assert subject == "Approve tabular-xgboost v7 for prod?"
    for expected in (
        "Model package tabular-xgboost version 7 passed staging",
        recorded.package_arn,
        "status: Approved (looks good)",
        "auc: 0.912346 (sd 0.0123)",
        "accuracy: 0.85",
        "evaluated on 1500 test row(s)",
        "smoke test: passed (smoke test passed: 20 row(s))",
        "load run: passed: 200 request(s) in 3.2 s, 0 failed, p50 4.1 ms, p99 9.5 ms",
        "deploys exactly version 7 to prod",
    ):
        assert expected in body, expected
    _, missing = approval_message(release(), described, None, "prod")
    assert "no evaluation report" in missing and "load run: not run" in missing
