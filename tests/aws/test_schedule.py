"""`make schedule` / `make unschedule` / `delete` against moto's Scheduler and SageMaker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from config import Config, ConfigError, load_config
from config.parameters import DATA_VERSION as DATA_VERSION_PARAMETER
from config.paths import ROOT
from pipelines import cli
from pipelines.publish import upsert
from pipelines.schedule import (
    SCHEDULE_ARN,
    SCHEDULED_TIME,
    ScheduleError,
    delete_pipeline,
    put_schedule,
    remove_schedule,
    schedule_name,
    start_request,
)

PIPELINE_YAML = ROOT / "configs" / "pipeline.yaml"


def config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(f"extends: {PIPELINE_YAML}\n{text}")
    return load_config(path, env={})


@pytest.fixture
def published(aws, base_config: Config, built):  # type: ignore[no-untyped-def]
    upsert(base_config, built, aws)
    return aws


def schedules(session: boto3.Session) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = session.client("scheduler").list_schedules()["Schedules"]
    return listed


def resolved(request: dict[str, Any], when: str) -> dict[str, Any]:
    """The request as Scheduler sends it at `when` (context attributes substituted)."""
    text = json.dumps(request).replace(SCHEDULED_TIME, when)
    text = text.replace(SCHEDULE_ARN, "arn:aws:scheduler:us-east-1:123456789012:schedule/x")
    resolved_request: dict[str, Any] = json.loads(text)
    return resolved_request


def test_schedule_is_created_once_then_unchanged_then_updated_in_place(
    published: boto3.Session, base_config: Config, tmp_path: Path
) -> None:
    first = put_schedule(base_config, published)
    assert (first.action, first.state) == ("created", "DISABLED")  # base.yaml: enabled: false
    again = put_schedule(base_config, published)
    assert again.action == "unchanged" and again.arn == first.arn

    changed = config(
        tmp_path,
        "schedule: {enabled: true, expression: 'rate(7 days)', timezone: Europe/Berlin,\n"
        "           parameters: {TrainInstanceCount: 2, SkipDataQualityCheck: true}}\n",
    )
    updated = put_schedule(changed, published)
    assert (updated.action, updated.state, updated.arn) == ("updated", "ENABLED", first.arn)
    assert len(schedules(published)) == 1

    described = published.client("scheduler").get_schedule(Name=schedule_name(changed))
    assert described["ScheduleExpression"] == "rate(7 days)"
    assert described["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert described["State"] == "ENABLED"
    target = described["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
    assert target["RoleArn"] == changed.schedule.role_arn
    sent = json.loads(target["Input"])
    assert sent["PipelineName"] == changed.pipeline.name
    assert sent["PipelineParameters"] == [
        {"Name": DATA_VERSION_PARAMETER, "Value": f"scheduled-{SCHEDULED_TIME}"},
        {"Name": "SkipDataQualityCheck", "Value": "true"},
        {"Name": "TrainInstanceCount", "Value": "2"},
    ]


def test_each_scheduled_run_passes_its_own_data_version(
    published: boto3.Session, base_config: Config
) -> None:
    """Resolved as Scheduler resolves it, the Input is a valid StartPipelineExecution request
    (botocore validates it, moto starts it) whose DataVersion differs from run to run."""
    sagemaker = published.client("sagemaker")
    versions = set()
    for when in ("2026-03-02T03:00:00Z", "2026-03-09T03:00:00Z"):
        request = resolved(start_request(base_config), when)
        arn = sagemaker.start_pipeline_execution(**request)["PipelineExecutionArn"]
        values = {p["Name"]: p["Value"] for p in request["PipelineParameters"]}
        versions.add(values[DATA_VERSION_PARAMETER])
        assert arn.startswith(sagemaker.describe_pipeline(PipelineName="tabular-xgboost")[
            "PipelineArn"
        ])  # fmt: skip
    assert versions == {"scheduled-2026-03-02T03:00:00Z", "scheduled-2026-03-09T03:00:00Z"}


@pytest.mark.parametrize("name", ["a", "p" * 256])
def test_client_request_token_fits_sagemakers_limits(base_config: Config, name: str) -> None:
    cfg = base_config.model_copy(
        update={"pipeline": base_config.pipeline.model_copy(update={"name": name})}
    )
    token = resolved(start_request(cfg), "2026-03-02T03:00:00Z")["ClientRequestToken"]
    assert 32 <= len(token) <= 128


def test_schedule_needs_the_published_pipeline(aws: boto3.Session, base_config: Config) -> None:
    with pytest.raises(ScheduleError, match="make upsert"):
        put_schedule(base_config, aws)
    assert schedules(aws) == []


def test_schedule_refuses_parameters_the_pipeline_does_not_have(
    published: boto3.Session, tmp_path: Path
) -> None:
    cfg = config(tmp_path, "schedule: {parameters: {TrainInstanceCont: 2}}\n")
    with pytest.raises(ScheduleError, match=r"schedule.parameters names \['TrainInstanceCont'\]"):
        put_schedule(cfg, published)
    assert schedules(published) == []


def test_schedule_refuses_a_published_pipeline_without_data_version(
    aws: boto3.Session, base_config: Config, built
) -> None:  # type: ignore[no-untyped-def]
    definition = json.loads(built.definition)
    definition["Parameters"] = [
        p for p in definition["Parameters"] if p["Name"] != DATA_VERSION_PARAMETER
    ]
    aws.client("sagemaker").create_pipeline(
        PipelineName=base_config.pipeline.name,
        PipelineDefinition=json.dumps(definition),
        RoleArn=base_config.aws.role_arn,
    )
    with pytest.raises(ScheduleError, match="no DataVersion parameter"):
        put_schedule(base_config, aws)


def test_unschedule_removes_it_cleanly(published: boto3.Session, base_config: Config) -> None:
    put_schedule(base_config, published)
    assert remove_schedule(base_config, published) is True
    assert schedules(published) == []
    assert remove_schedule(base_config, published) is False  # idempotent


def test_delete_removes_the_schedule_before_the_pipeline(
    published: boto3.Session, base_config: Config
) -> None:
    put_schedule(base_config, published)
    calls: list[str] = []
    published.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    result = delete_pipeline(base_config, published)
    assert (result.schedule_removed, result.pipeline_deleted) == (True, True)
    assert calls.index("DeleteSchedule") < calls.index("DeletePipeline")
    assert schedules(published) == []
    assert published.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
    again = delete_pipeline(base_config, published)
    assert (again.schedule_removed, again.pipeline_deleted) == (False, False)


def test_cli_schedule_unschedule_and_delete(
    published: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--config", str(PIPELINE_YAML)]
    assert cli.main(["schedule", *argv]) == 0
    assert cli.main(["schedule", *argv]) == 0
    out = capsys.readouterr().out
    assert "created, DISABLED" in out and "unchanged, DISABLED" in out
    assert cli.main(["unschedule", *argv]) == 0
    assert "removed" in capsys.readouterr().out
    assert cli.main(["schedule", *argv]) == 0
    assert cli.main(["delete", *argv]) == 0
    out = capsys.readouterr().out
    assert "tabular-xgboost-retraining: removed" in out and "tabular-xgboost: deleted" in out
    assert schedules(published) == []


def test_cli_schedule_without_a_pipeline_is_bad_input(
    aws: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["schedule", "--config", str(PIPELINE_YAML)]) == 2
    assert "make upsert" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The stale-cache guard: a fixed DataVersion would let every scheduled run reuse the
        # first run's preprocessing of the same input URI.
        ("schedule: {parameters: {DataVersion: weekly}}", "must not set DataVersion"),
        ("schedule: {parameters: {InputDataUri: 'file:///data.csv'}}", "reads from S3 only"),
    ],
)
def test_config_refuses_schedule_parameters_that_break_scheduled_runs(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        config(tmp_path, text + "\n")
    assert "schedule" in str(error.value) and expected in str(error.value)


def test_scheduler_role_comes_from_the_environment_like_the_other_account_values() -> None:
    role = "arn:aws:iam::210987654321:role/mine-scheduler"
    cfg = load_config(PIPELINE_YAML, env={"PIPELINE_SCHEDULER_ROLE_ARN": role})
    assert cfg.schedule.role_arn == role
