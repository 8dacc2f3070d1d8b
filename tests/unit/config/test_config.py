"""Config loading: merging over base.yaml, env overrides, and one error listing every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import BASE_CONFIG, LOCAL_CONFIG, PIPELINE_CONFIG, ConfigError, load_config

MINIMAL = """\
data:
  input_uri: file:///tmp/data.csv
  target: label
  problem_type: binary
  columns: [a, b, label]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_committed_configs_load() -> None:
    published = load_config(PIPELINE_CONFIG, env={})
    local = load_config(LOCAL_CONFIG, env={})
    assert published.model_dump(exclude={"data"}) == local.model_dump(exclude={"data"})
    assert local.data.input_uri == "sample://default"
    assert published.gate.metric == "auc" and published.gate.comparison == "gte"


def test_base_alone_lacks_the_required_data_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(BASE_CONFIG, env={})
    for field in ("data.input_uri", "data.target", "data.problem_type"):
        assert f"{field}: required" in str(caught.value)


def test_minimal_user_config_is_enough(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), env={})
    assert cfg.data.columns == ["a", "b", "label"]
    published = load_config(PIPELINE_CONFIG, env={})
    assert cfg.training == published.training and cfg.jobs == published.jobs


def test_regression_defaults_to_r2(tmp_path: Path) -> None:
    text = MINIMAL.replace("binary", "regression")
    gate = load_config(write(tmp_path, text), env={}).gate
    assert (gate.metric, gate.comparison) == ("r2", "gte")


def test_environment_overrides_account_values(tmp_path: Path) -> None:
    role = "arn:aws:iam::210987654321:role/mine"
    cfg = load_config(write(tmp_path, MINIMAL), env={"PIPELINE_ROLE_ARN": role})
    assert cfg.aws.role_arn == role


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
jobs:
  train:
    instance_type: m5.large
    instance_count: zero
training:
  hyperparameters:
    eta: 3
cache:
  expire_after: thirty days
colour: blue
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    message = str(caught.value)
    for expected in (
        "jobs.train.instance_type",
        "jobs.train.instance_count",
        "training.hyperparameters.eta",
        "cache.expire_after",
        "colour: unknown key",
    ):
        assert expected in message, expected
    assert "5 problem(s)" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("evaluation: {metric: rmse}", "not written by evaluate for problem_type 'binary'"),
        ("evaluation: {threshold: 1.5}", "outside the range of 'auc'"),
        ("registry: {approval_status: Maybe}", "registry.approval_status"),
    ],
)
def test_invalid_values_name_the_field_and_the_fix(
    tmp_path: Path, extra: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, MINIMAL + extra + "\n"), env={})


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("target: label", "target: nope", "target 'nope' is not in columns"),
        ("problem_type: binary", "problem_type: multiclass", "data.problem_type"),
        ("columns: [a, b, label]", "columns: [a, a, label]", "names a column twice"),
    ],
)
def test_invalid_data_section(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, MINIMAL.replace(old, new)), env={})


def test_missing_required_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.target: required"):
        load_config(
            write(tmp_path, "data: {input_uri: 's3://b/k', problem_type: binary}\n"), env={}
        )


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml", env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"), env={})


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("jobs: {train: {instance_type: ml.m5.huge}}", "jobs.train.instance_type: 'ml.m5.huge'"),
        ("jobs: {transform: {instance_type: ml.p9.xlarge}}", "not an instance type SageMaker"),
        ("registry: {inference_instance_types: [ml.x.y]}", "registry.inference_instance_types.0"),
        ("images: {xgboost_version: '9.9-9'}", "images.xgboost_version: '9.9-9' is not a xgboost"),
        ("images: {sklearn_version: '0.1'}", "images.sklearn_version"),
        ("schedule: {expression: 'every monday'}", "schedule.expression"),
        ("schedule: {parameters: {DataVersion: v1}}", "must not set DataVersion"),
        ("retry: {job: {exception_types: [Step.THROTTLING]}}", "SageMaker.\\* types only"),
        ("security: {subnets: [subnet-0abc]}", "go together"),
        ("cache: {expire_after: P}", "empty ISO 8601 duration"),
    ],
)
def test_values_sagemaker_would_refuse(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, MINIMAL + extra + "\n"), env={})


# --------------------------------------------------------------------------- every config error


def test_a_relative_file_uri_is_refused_with_the_fix(tmp_path: Path) -> None:
    text = MINIMAL.replace("file:///tmp/data.csv", "file://data.csv")
    with pytest.raises(ConfigError, match=r"data.input_uri: 'file://data.csv' is not an absolute"):
        load_config(write(tmp_path, text), env={})
    text = MINIMAL + "  scoring_uri: file://scoring.csv\n"
    with pytest.raises(ConfigError, match=r"data.scoring_uri: .*three slashes"):
        load_config(write(tmp_path, text), env={})
    with pytest.raises(ConfigError, match=r"data.input_uri: 's3://bucket' names no object"):
        load_config(write(tmp_path, MINIMAL.replace("file:///tmp/data.csv", "s3://bucket")), {})


def test_extends_to_a_missing_file_names_the_file_that_extends_it(tmp_path: Path) -> None:
    path = write(tmp_path, "extends: nothere.yaml\n" + MINIMAL)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "nothere.yaml: config file not found" in message
    assert f"fix `extends: nothere.yaml` in {path}" in message
    assert "--config" not in message


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"data:\n  target: y\n   problem_type: binary\n", r"line 3, column \d+"),
        (b"data:\n\tinput_uri: x\n", r"line 2, column 1: .*never tabs"),
        (b"", r"the file is empty"),
        (b"# only a comment\n", r"the file is empty"),
        (b"- data\n", r"top level must be a mapping .* not a list"),
        (b"data: {target: y}\ndata: {problem_type: binary}\n", r"key 'data' appears twice"),
        (b"extends: [a, b]\n", r"extends must be the path of one config file"),
        (b"data:\n  target: caf\xe9\n", r"byte 0xe9 at offset \d+ is not UTF-8"),
    ],
    ids=[
        "indentation",
        "tabs",
        "empty",
        "comment only",
        "a list",
        "duplicate key",
        "extends list",
        "latin-1",
    ],  # fmt: skip
)
def test_unusable_files_are_one_clear_error(tmp_path: Path, payload: bytes, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(payload)
    with pytest.raises(ConfigError, match=expected):
        load_config(path, env={})


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        load_config(tmp_path, env={})


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  missing_values: ['', NULL]", r"data.missing_values.1: YAML read an unquoted value"),
        ("  positive_class: yes", r"data.positive_class: .*quote the text you mean"),
        ("  missing_values: ['', -999.0]", r"quote it to give the exact text"),
        ("  thousands: '.'\n  decimal: '.'", r"could be read two ways"),
        ("  delimiter: ':'", r"data.delimiter"),
        ("  categorical_columns: [' a']", r"surrounding whitespace.*write 'a'"),
        ("  drop_columns: [label]", r"drop_columns names the target"),
        ("  categorical_columns: [c]", r"\['c'\] are not in data.columns"),
        ("  high_cardinality: hash", r"data.high_cardinality"),
    ],
)
def test_data_reading_rules_are_checked(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, MINIMAL + extra + "\n"), env={})


def test_names_with_any_characters_are_accepted(tmp_path: Path) -> None:
    text = MINIMAL.replace("[a, b, label]", """['a,b', '-x', 'k=v', 'é "q"', label]""")
    text += "  missing_values: ['', 'NA', -999]\n  categorical_columns: ['-x']\n"
    cfg = load_config(write(tmp_path, text), env={})
    assert cfg.data.columns == ["a,b", "-x", "k=v", 'é "q"', "label"]
    assert cfg.data.missing_values == ["", "NA", "-999"]


def test_a_bad_environment_override_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"aws.bucket: .*\[set by environment variable PIPELINE_BUCKET\]"
    ):  # noqa: E501
        load_config(write(tmp_path, MINIMAL), env={"PIPELINE_BUCKET": "Not_A_Bucket"})


@pytest.mark.parametrize("uri", ["s3://bucket/data/all.csv", "sample://default"])
def test_several_preprocess_instances_need_several_input_files(tmp_path: Path, uri: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"extends: {LOCAL_CONFIG}\ndata: {{input_uri: '{uri}'}}\n"
        "jobs: {preprocess: {instance_count: 2}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"jobs.preprocess.instance_count 2 with data.input_uri"):
        load_config(path, env={})
    path.write_text(
        f"extends: {LOCAL_CONFIG}\ndata: {{input_uri: 's3://bucket/data/'}}\n"
        "jobs: {preprocess: {instance_count: 2}}\n",
        encoding="utf-8",
    )
    assert load_config(path, env={}).jobs.preprocess.instance_count == 2
