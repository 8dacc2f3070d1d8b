"""The release's verbs on moto with SageMaker hosting's behaviour (tests/deploy_support.py): the
bounded load run really invokes the endpoint's serving code, production deploys the version
staging recorded, the manual gate's message reaches SNS, and a rejected package that is live is
rolled back, explicitly, to the latest Approved one; then the same verbs as a new user runs them,
against moto's HTTP server."""

# The moto account and its models are test_deploy_moto's fixtures, imported so pytest finds them
# here; the tests' parameters of the same names are those fixtures (F811 by design).
# ruff: noqa: F811

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml
from bare_shell import FAKE_CREDENTIALS, Shell, clean
from deploy_support import register
from test_deploy_cli import queue_answers
from test_deploy_moto import STAGING, Account, FakeClock, account, models  # noqa: F401

from config import PIPELINE_CONFIG, load_config
from pipelines.deploy import apply
from pipelines.deploy.names import PACKAGE_TAG, VERSION_TAG
from pipelines.deploy.release import Release

PROD = "tabular-xgboost-prod"
LOAD = {"requests": 24, "concurrency": 3, "rows_per_request": 5, "max_seconds": 60}


def release_stages(account: Account, path: Path, **staging: object) -> None:
    """staging with a small load test; prod without monitoring (moto has none)."""
    account.reconfigure(path, {
        "staging": {"load_test": LOAD, **staging},
        "prod": {"monitoring": {"enabled": False}},
    })  # fmt: skip


def package(account: Account, status: str = "Approved") -> str:
    model = account.models["good"]
    arn = register(account.session, account.cfg, model.sample, status, report=model.report)
    account.hosting.models[arn] = model
    return arn


def on_staging(account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """v1 approved and deployed to staging."""
    release_stages(account, tmp_path / "release.yaml")
    package(account)
    assert account.run(capsys, "deploy", "--stage", "staging")[0] == 0


def test_a_load_run_really_invokes_the_endpoint_and_records_its_verdict(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    release_stages(account, tmp_path / "release.yaml")
    package(account)
    record = tmp_path / "build" / "release.json"
    code, out, err = account.run(capsys, "deploy", "--stage", "staging", "--record", str(record))
    assert code == 0, err
    assert f"release record {record}: tabular-xgboost v1 on stage staging" in out
    before = len(account.hosting.invocations)

    code, out, err = account.run(capsys, "load", "--stage", "staging", "--record", str(record))
    assert code == 0, err
    assert f"load run on {STAGING}: 24 request(s) of 5 row(s)" in out and "0 failed" in out
    assert "stopped by requests" in out and out.rstrip().endswith("release record " + str(
        record) + ": load result added")  # fmt: skip
    sent = account.hosting.invocations[before:]
    assert len(sent) == 24 and {i["endpoint"] for i in sent} == {STAGING}
    assert all(i["body"].count(b"\n") == 5 for i in sent)
    load = Release.read(record).results["load"]
    assert load["passed"] and load["requests"] == 24 and load["failed"] == 0
    assert load["p99_ms"] is not None and load["p99_ms"] >= load["p50_ms"] > 0


def test_wrong_answers_fail_the_load_run(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    on_staging(account, capsys, tmp_path)
    account.hosting.offset = 0.25  # the endpoint now answers otherwise than the pipeline
    code, out, err = account.run(capsys, "load", "--stage", "staging")
    assert code == 1, out
    assert "24 of 24 requests failed" in out and "wrong answer: row 1: endpoint" in out


def test_the_load_run_stops_at_its_time_bound(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    on_staging(account, capsys, tmp_path)

    @dataclass
    class Ticking(FakeClock):
        def monotonic(self) -> float:  # every look at the clock costs a second
            self.seconds += 1
            return self.seconds

    clock = Ticking()
    target = apply.Target(account.cfg, "staging")
    settings = target.stage.load_test.model_copy(update={"max_seconds": 10, "requests": 1000})
    stage = target.stage.model_copy(update={"load_test": settings})
    stages = {**account.cfg.deploy.stages, "staging": stage}
    deploy = account.cfg.deploy.model_copy(update={"stages": stages})
    bounded = apply.Target(account.cfg.model_copy(update={"deploy": deploy}), "staging")
    arn = account.tags()[PACKAGE_TAG]
    described = account.clients.sagemaker.describe_model_package(ModelPackageName=arn)
    result = apply.load_run(account.clients, bounded, apply.Package.from_description(described),
                            lambda line: None, clock)  # type: ignore[arg-type]  # fmt: skip
    assert result.stopped_by == "time" and 0 < result.sent < 20


def test_prod_deploys_the_version_staging_recorded_not_the_newest(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    release_stages(account, tmp_path / "release.yaml")
    package(account)
    record = tmp_path / "release.json"
    assert account.run(capsys, "deploy", "--stage", "staging", "--record", str(record))[0] == 0
    package(account)  # v2 approved while v1 waits at the gate
    code, out, err = account.run(capsys, "deploy", "--stage", "prod", "--release", str(record))
    assert code == 0, err
    assert "deployed tabular-xgboost v1 on tabular-xgboost-prod" in out
    assert account.tags(PROD)[VERSION_TAG] == "1"
    # A record of another group, or a contradicting --version, is refused before any change.
    other = Release.read(record)
    Release(**{**other.__dict__, "group": "someone-elses-model"}).write(tmp_path / "other.json")
    code, _, err = account.run(capsys, "deploy", "--stage", "prod", "--release",
                               str(tmp_path / "other.json"))  # fmt: skip
    assert code == 2 and "is of model package group someone-elses-model" in err
    code, _, err = account.run(capsys, "deploy", "--stage", "prod", "--release", str(record),
                               "--version", "2")  # fmt: skip
    assert code == 2 and "--version 2 contradicts release record" in err


def test_the_gate_message_reaches_the_topic_with_version_metrics_and_results(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    release_stages(account, tmp_path / "release.yaml")
    package(account)
    record = tmp_path / "release.json"
    for verb in (("deploy", "--stage", "staging"), ("smoke", "--stage", "staging"),
                 ("load", "--stage", "staging")):  # fmt: skip
        assert account.run(capsys, *verb, "--record", str(record))[0] == 0
    sns, sqs = account.session.client("sns"), account.session.client("sqs")
    topic = sns.create_topic(Name="tabular-xgboost-release-approvals")["TopicArn"]
    queue = sqs.create_queue(QueueName="approvers")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs",
                  Endpoint=queue_arn["Attributes"]["QueueArn"])  # fmt: skip
    code, out, err = account.run(capsys, "approval-message", "--record", str(record),
                                 "--next-stage", "prod", "--topic", topic)  # fmt: skip
    assert code == 0, err
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    sent = json.loads(message["Body"])
    assert sent["Subject"] == "Approve tabular-xgboost v1 for prod?"
    body = sent["Message"]
    auc = account.models["good"].report["binary_classification_metrics"]["auc"]["value"]
    assert f"auc: {auc:.6g}" in body
    assert "smoke test: passed" in body and "load run: passed: 24 request(s)" in body
    assert "deploys exactly version 1 to prod" in body


def test_a_rejected_live_package_rolls_back_to_the_latest_approved_one(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    on_staging(account, capsys, tmp_path)
    assert account.run(capsys, "deploy", "--stage", "prod")[0] == 0
    v2 = package(account)
    assert account.run(capsys, "deploy", "--stage", "staging")[0] == 0  # v2 on staging only
    package(account, status="PendingManualApproval")  # v3: newest, but not approved

    account.clients.sagemaker.update_model_package(ModelPackageArn=v2,
                                                   ModelApprovalStatus="Rejected")  # fmt: skip
    updates = len(account.hosting.updates)
    code, out, err = account.run(capsys, "rollback-rejected", "--package-arn", v2)
    assert code == 0, err
    assert f"stage prod: {PROD} does not serve {v2}: unchanged" in out
    assert "rolling back to the latest Approved package, tabular-xgboost v1" in out
    assert f"rolled back to tabular-xgboost v1 on {STAGING}" in out
    assert account.tags()[VERSION_TAG] == "1" and account.tags(PROD)[VERSION_TAG] == "1"
    assert len(account.hosting.updates) == updates + 1  # staging only

    # Rejecting a package that no stage serves changes nothing.
    code, out, _ = account.run(capsys, "rollback-rejected", "--package-arn", v2)
    assert code == 0 and out.count("unchanged") == 2
    assert len(account.hosting.updates) == updates + 1


def test_release_verbs_against_moto_server_in_a_bare_shell(
    moto_server: str, job_served: object, tmp_path: Path
) -> None:
    endpoint = f"http://{moto_server}"
    config = tmp_path / "release.yaml"
    config.write_text(yaml.safe_dump({"extends": str(PIPELINE_CONFIG), "deploy": {"stages": {
        "staging": {"load_test": {**LOAD, "rows_per_request": 20}}}}}))  # fmt: skip
    cfg = load_config(config, env={})
    setup = boto3.Session(region_name=cfg.aws.region, aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
                          aws_secret_access_key="x" * 40)  # fmt: skip
    setup.client("s3", endpoint_url=endpoint).create_bucket(Bucket=cfg.aws.bucket)

    class Remote:
        def client(self, service: str) -> object:
            return setup.client(service, endpoint_url=endpoint)

    served = job_served
    v1 = register(Remote(), cfg, served.sample, report=served.report)  # type: ignore[arg-type, attr-defined]
    body = served.sample["records"].encode()  # type: ignore[attr-defined]
    answer = served.handler(body, "text/csv", "text/csv")  # type: ignore[attr-defined]
    # moto's server answers one queued result per request body; the load run sends that body too.
    queue_answers(endpoint, [answer] * 40)
    shell = Shell(tmp_path, network=True, allow=moto_server, AWS_ENDPOINT_URL=endpoint,
                  **FAKE_CREDENTIALS)  # fmt: skip
    args = ("--config", str(config))
    record = tmp_path / "release.json"
    deployed = shell.run("deploy", "--stage", "staging", "--record", str(record), *args)
    assert deployed.returncode == 0, clean(deployed)
    loaded = shell.run("load", "--stage", "staging", "--record", str(record), *args)
    assert loaded.returncode == 0, clean(loaded)
    assert "load run on tabular-xgboost-staging: 24 request(s) of 20 row(s)" in loaded.stdout
    topic = setup.client("sns", endpoint_url=endpoint).create_topic(Name="gate")["TopicArn"]
    message = shell.run("approval-message", "--record", str(record), "--next-stage", "prod",
                        "--topic", topic, *args)  # fmt: skip
    assert message.returncode == 0, clean(message)
    assert "load run: passed: 24 request(s)" in message.stdout and f"sent to {topic}" in (
        message.stdout
    )
    missing = shell.run("load", "--stage", "staging", "--record", str(tmp_path / "none.json"),
                        *args)  # fmt: skip
    assert missing.returncode == 2 and "does not exist" in clean(missing)
    setup.client("sagemaker", endpoint_url=endpoint).update_model_package(
        ModelPackageArn=v1, ModelApprovalStatus="Rejected"
    )
    rejected = shell.run("rollback-rejected", "--package-arn", v1, *args)
    assert rejected.returncode == 2, clean(rejected)  # nothing approved is left to go back to
    assert f"stage staging: tabular-xgboost-staging serves rejected {v1}" in rejected.stderr
    assert "make undeploy STAGE=staging" in rejected.stderr
    assert shell.attempts() == []
