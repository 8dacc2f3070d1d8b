"""`make upsert` end to end against moto's SageMaker and S3: create, no-op, update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import Config, load_config
from config.paths import ROOT
from pipelines.publish import PublishError, upsert


def test_create_then_no_change_then_update(
    aws, base_config: Config, built, tmp_path: Path, build
) -> None:  # type: ignore[no-untyped-def]
    first = upsert(base_config, built, aws)
    assert first.action == "created" and first.group_created
    assert len(first.uploaded) == len(built.code)
    sagemaker = aws.client("sagemaker")
    published = sagemaker.describe_pipeline(PipelineName=base_config.pipeline.name)
    assert published["PipelineDefinition"] == built.definition, "published bytes differ"
    s3 = aws.client("s3")
    for artifact in built.code:
        bucket, key = artifact.s3_uri.removeprefix("s3://").split("/", 1)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == artifact.payload

    again = upsert(base_config, built, aws)
    assert (again.action, again.diff, again.uploaded, again.group_created) == (
        "unchanged", "", [], False
    )  # fmt: skip

    config = tmp_path / "c.yaml"
    config.write_text(
        "extends: " + str(ROOT / "configs" / "pipeline.yaml") + "\nevaluation: {threshold: 0.8}\n"
    )
    changed_cfg = load_config(config, env={})
    changed = build(changed_cfg)
    result = upsert(changed_cfg, changed, aws)
    assert result.action == "updated"
    assert (
        '-      "DefaultValue": 0.7,' in result.diff
        and '+      "DefaultValue": 0.8,' in result.diff
    )
    assert result.changes == ["~ parameter MetricThreshold"]
    described = sagemaker.describe_pipeline(PipelineName=base_config.pipeline.name)
    assert json.loads(described["PipelineDefinition"]) == json.loads(changed.definition)
    assert len(sagemaker.list_pipelines()["PipelineSummaries"]) == 1


def test_local_data_is_refused_before_anything_is_published(aws, tmp_path: Path, build) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "c.yaml"
    config.write_text("data: {input_uri: 'file:///data.csv', target: y, problem_type: binary}\n")
    cfg = load_config(config, env={})
    with pytest.raises(PublishError, match="data.input_uri .* S3 only"):
        upsert(cfg, build(cfg), aws)
    assert aws.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
