"""The published definition: steps, edges, property references, parameters, policies, golden."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from config import Config
from config.paths import GOLDEN_FILE
from tabular import names
from tabular.contract import definition_steps

GOLDEN = GOLDEN_FILE
EXPECTED_TYPES = {
    "Profile": "Processing",
    "Preprocess": "Processing",
    "FitTransformer": "Processing",
    "DataQuality": "QualityCheck",
    "Train": "Training",
    "Evaluate": "Processing",
    "CheckMetric": "Condition",
    "Register": "RegisterModel",
    "Approval": "Callback",
    "CreateModel": "Model",
    "BatchScore": "Transform",
    "MetricBelowThreshold": "Fail",
}
JOB_STEPS = ("Profile", "Preprocess", "FitTransformer", "Train", "Evaluate", "BatchScore")
CACHEABLE = (
    "Profile", "Preprocess", "FitTransformer", "DataQuality", "Train", "Evaluate", "BatchScore"
)  # fmt: skip
STEP_REFERENCE = re.compile(r"^Steps\.([A-Za-z0-9-]+)\.(.+)$")


def references(node: Any) -> list[str]:
    """Every `Get` expression in a JSON subtree."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Get" and isinstance(value, str):
                found.append(value)
            else:
                found += references(value)
    elif isinstance(node, list):
        for item in node:
            found += references(item)
    return found


def test_every_step_present_with_its_type(definition: dict) -> None:
    steps = definition_steps(definition)[0]
    assert {name: step["Type"] for name, step in steps.items()} == EXPECTED_TYPES


def test_condition_branches_hold_the_gated_steps(definition: dict) -> None:
    condition = definition_steps(definition)[0]["CheckMetric"]["Arguments"]
    assert [s["Name"] for s in condition["IfSteps"]] == [
        "Register", "Approval", "CreateModel", "BatchScore"
    ]  # fmt: skip
    assert [s["Name"] for s in condition["ElseSteps"]] == ["MetricBelowThreshold"]


def test_property_references_resolve_to_existing_steps_and_outputs(definition: dict) -> None:
    steps = definition_steps(definition)[0]
    parameters = {p["Name"] for p in definition["Parameters"]}
    for name, step in steps.items():
        for ref in references(step):
            if ref.startswith("Parameters."):
                assert ref.removeprefix("Parameters.") in parameters, (name, ref)
                continue
            if ref.startswith("Execution."):
                assert ref == "Execution.PipelineExecutionId", (name, ref)
                continue
            match = STEP_REFERENCE.match(ref)
            assert match, (name, ref)
            target, path = match.groups()
            assert target in steps and target != name, (name, ref)
            outputs = re.findall(r"Outputs\['([^']+)'\]", path)
            for output in outputs:
                produced = steps[target]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
                assert output in {o["OutputName"] for o in produced}, (name, ref)
            if path.startswith("PropertyFiles."):
                files = {f["PropertyFileName"] for f in steps[target]["PropertyFiles"]}
                assert path.removeprefix("PropertyFiles.") in files, (name, ref)


def test_edges_follow_the_graph(definition: dict) -> None:
    steps = definition_steps(definition)[0]

    def upstream(name: str) -> set[str]:
        found = {m.group(1) for r in references(steps[name]) if (m := STEP_REFERENCE.match(r))}
        return found | set(steps[name].get("DependsOn", []))

    assert upstream("Profile") == set()
    assert upstream("Preprocess") == {"Profile"}
    assert upstream("FitTransformer") == {"Profile", "Preprocess"}
    assert upstream("DataQuality") == {"Preprocess"}
    assert upstream("Train") == {"Preprocess", "FitTransformer"}
    # Evaluate also reads the DataQuality statistics (its report shows them beside the baseline)
    assert upstream("Evaluate") == {"Preprocess", "Train", "DataQuality"}
    assert upstream("Register") == {"Train", "DataQuality", "Evaluate"}
    assert upstream("Approval") == {"Register", "Evaluate"}
    assert upstream("CreateModel") == {"Train", "Approval"}
    assert upstream("BatchScore") == {"Preprocess", "CreateModel"}


def test_condition_reads_a_key_that_evaluate_writes(definition: dict, base_config: Config) -> None:
    condition = definition_steps(definition)[0]["CheckMetric"]["Arguments"]["Conditions"][0]
    json_get = condition["LeftValue"]["Std:JsonGet"]
    assert json_get["PropertyFile"] == {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
    problem = base_config.data.problem_type
    assert json_get["Path"] == names.metric_json_path(problem, base_config.gate.metric)
    assert condition["RightValue"] == {"Get": "Parameters.MetricThreshold"}
    report = definition_steps(definition)[0]["Evaluate"]["PropertyFiles"][0]
    assert report == {
        "FilePath": names.EVALUATION_FILE,
        "OutputName": names.EVALUATION_OUTPUT,
        "PropertyFileName": "EvaluationReport",
    }


def test_parameters_round_trip_the_config(definition: dict, base_config: Config) -> None:
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    jobs = base_config.jobs
    assert defaults == {
        "InputDataUri": base_config.data.input_uri,
        "DataVersion": "manual",
        "PreprocessInstanceType": jobs.preprocess.instance_type,
        "PreprocessInstanceCount": jobs.preprocess.instance_count,
        "DataQualityInstanceType": jobs.data_quality.instance_type,
        "TrainInstanceType": jobs.train.instance_type,
        "TrainInstanceCount": jobs.train.instance_count,
        "EvaluateInstanceType": jobs.evaluate.instance_type,
        "TransformInstanceType": jobs.transform.instance_type,
        "MetricThreshold": base_config.gate.threshold,
        "ModelApprovalStatus": base_config.registry.approval_status,
        "SkipDataQualityCheck": base_config.data_quality.skip_check,
        "RegisterNewBaseline": base_config.data_quality.register_new_baseline,
    }
    used = {r for r in references(definition["Steps"]) if r.startswith("Parameters.")}
    assert used == {f"Parameters.{name}" for name in defaults}, "a parameter is declared but unused"


def test_retry_policies_carry_the_configured_exception_types(
    definition: dict, base_config: Config
) -> None:
    steps = definition_steps(definition)[0]
    service, job = base_config.retry.service, base_config.retry.job
    for name in JOB_STEPS:
        by_kind = {p["ExceptionType"][0].split(".")[0]: p for p in steps[name]["RetryPolicies"]}
        assert by_kind["Step"]["ExceptionType"] == service.exception_types, name
        assert by_kind["SageMaker"]["ExceptionType"] == job.exception_types, name
        assert by_kind["SageMaker"]["MaxAttempts"] == job.max_attempts, name
        assert by_kind["SageMaker"]["IntervalSeconds"] == job.interval_seconds, name
    for name in ("Register", "CreateModel"):
        (policy,) = steps[name]["RetryPolicies"]
        assert policy["ExceptionType"] == service.exception_types, name


def test_job_steps_retry_and_cacheable_steps_cache(definition: dict, base_config: Config) -> None:
    steps = definition_steps(definition)[0]
    for name in JOB_STEPS:
        kinds = {p["ExceptionType"][0].split(".")[0] for p in steps[name]["RetryPolicies"]}
        assert kinds == {"Step", "SageMaker"}, name
    for name in CACHEABLE:
        assert steps[name]["CacheConfig"] == {
            "Enabled": base_config.cache.enabled,
            "ExpireAfter": base_config.cache.expire_after,
        }, name


def test_training_code_is_content_addressed_not_timestamped(definition: dict) -> None:
    train = definition_steps(definition)[0]["Train"]["Arguments"]
    submit = train["HyperParameters"]["sagemaker_submit_directory"]
    assert re.fullmatch(r"s3://[^/]+/.+/code/[0-9a-f]{64}/sourcedir\.tar\.gz", submit)
    assert [c["ChannelName"] for c in train["InputDataConfig"]] == [
        "train", "validation", "transformer"
    ]  # fmt: skip
    text = re.sub(r"[0-9a-f]{64}", "<sha256>", json.dumps(train))  # a digest may hold 14 digits
    assert not re.search(r"\d{14}", text), "a timestamp would defeat step caching"


def test_build_needs_no_network_and_no_credentials(
    no_network: None, base_config: Config, build
) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(build(base_config).definition)["Steps"]


def test_definition_matches_the_golden_snapshot(built) -> None:  # type: ignore[no-untyped-def]
    assert GOLDEN.is_file(), "run `make golden` to create tests/golden/pipeline.json"
    assert built.definition == GOLDEN.read_text(encoding="utf-8"), (
        "the published definition changed: review the diff, then run `make golden`"
    )


@pytest.mark.parametrize("problem_type", ["binary", "regression"])
def test_objective_and_gate_follow_the_problem_type(
    problem_type: str, tmp_path: Path, build
) -> None:  # type: ignore[no-untyped-def]
    from config import load_config

    config = tmp_path / "c.yaml"
    config.write_text(
        f"data: {{input_uri: 's3://b/k.csv', target: y, problem_type: {problem_type}}}\n"
    )
    document = json.loads(build(load_config(config, env={})).definition)
    steps = definition_steps(document)[0]
    objective = steps["Train"]["Arguments"]["HyperParameters"]["objective"]
    path = steps["CheckMetric"]["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]["Path"]
    if problem_type == "binary":
        assert (objective, path) == ("binary:logistic", "binary_classification_metrics.auc.value")
    else:
        assert (objective, path) == ("reg:squarederror", "regression_metrics.r2.value")


SECURE = """\
extends: {pipeline}
security:
  enable_network_isolation: true
  encrypt_inter_container_traffic: true
  subnets: [subnet-0abc]
  security_group_ids: [sg-0def]
  volume_kms_key_id: arn:aws:kms:us-east-1:123456789012:key/volume
  output_kms_key_id: arn:aws:kms:us-east-1:123456789012:key/output
"""


def test_security_settings_reach_every_job_step(tmp_path: Path, build) -> None:  # type: ignore[no-untyped-def]
    from config import PIPELINE_CONFIG, load_config

    config = tmp_path / "secure.yaml"
    config.write_text(SECURE.format(pipeline=PIPELINE_CONFIG))
    steps = definition_steps(json.loads(build(load_config(config, env={})).definition))[0]
    vpc = {"SecurityGroupIds": ["sg-0def"], "Subnets": ["subnet-0abc"]}
    volume = "arn:aws:kms:us-east-1:123456789012:key/volume"
    output = "arn:aws:kms:us-east-1:123456789012:key/output"
    for name in ("Preprocess", "DataQuality", "Evaluate"):
        args = steps[name]["Arguments"]
        assert args["NetworkConfig"] == {
            "EnableInterContainerTrafficEncryption": True,
            "EnableNetworkIsolation": True,
            "VpcConfig": vpc,
        }, name
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == volume, name
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == output, name
    train = steps["Train"]["Arguments"]
    assert train["VpcConfig"] == vpc
    assert train["EnableNetworkIsolation"] and train["EnableInterContainerTrafficEncryption"]
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == volume
    assert train["OutputDataConfig"]["KmsKeyId"] == output
    transform = steps["BatchScore"]["Arguments"]
    assert transform["TransformOutput"]["KmsKeyId"] == output
    assert transform["TransformResources"]["VolumeKmsKeyId"] == volume
    model = steps["CreateModel"]["Arguments"]
    assert model["VpcConfig"] == vpc and model["EnableNetworkIsolation"] is True


def test_definition_holds_no_credentials(built) -> None:  # type: ignore[no-untyped-def]
    for marker in ("AKIA", "ASIA", "aws_secret_access_key", "SecretAccessKey", "SessionToken"):
        assert marker not in built.definition


def test_sdk_defaults_are_validated_once_and_still_refused_when_invalid(built) -> None:  # type: ignore[no-untyped-def]
    import jsonschema
    from sagemaker.core.config import config
    from sagemaker.core.config.config_manager import SageMakerConfig
    from sagemaker.core.config.config_schema import SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA
    from sagemaker.core.helper import session_helper

    from pipelines.sdk import SDK_DEFAULTS

    validate = SageMakerConfig.validate_sagemaker_config
    assert getattr(validate, "validates_once", False)
    # Every entry point the SDK validates through (the session's own, the lookups') is the check.
    assert config.validate_sagemaker_config is validate
    assert session_helper.validate_sagemaker_config is validate
    validate(SDK_DEFAULTS)  # the session's own document: valid
    wrong = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"Nope": 1}}}}
    for _ in range(2):  # refused every time, never remembered as valid
        with pytest.raises(jsonschema.ValidationError):
            validate(wrong)
    # The check leaves out jsonschema.validate's own check of the schema: the installed SDK's
    # schema is checked here instead.
    jsonschema.validators.validator_for(SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA).check_schema(
        SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA
    )


def test_the_sdks_sessions_share_one_data_loader_without_repeated_paths(built) -> None:  # type: ignore[no-untyped-def]
    """Each service model is parsed once per process (pipelines/sdk.py), from the same paths."""
    import boto3
    import botocore.loaders
    import botocore.session

    first, second = boto3.Session(region_name="us-east-1"), boto3.Session(region_name="us-east-1")
    loader = first._loader  # type: ignore[attr-defined]
    assert loader is second._loader  # type: ignore[attr-defined]
    assert loader is botocore.session.Session().get_component("data_loader")
    assert len(loader.search_paths) == len(set(loader.search_paths))
    model = loader.load_service_model("s3", "service-2")
    assert model is second._loader.load_service_model("s3", "service-2")  # type: ignore[attr-defined]
    # The SDK's image-URI lookup asks botocore's module-level function (common_utils.py).
    assert botocore.loaders.create_loader() is loader
