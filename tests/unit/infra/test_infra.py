"""infra/: every template cfn-lint clean (offline) and least privilege; infra/template.yaml creates
the names the committed config uses (the deploy role: tests/unit/deploy/test_deploy_role.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from infra_support import (
    INFRA,
    TEMPLATE,
    TEMPLATES,
    Resolver,
    as_list,
    iam_matches,
    load_template,
    statements,
)

from config import Config
from config.paths import GOLDEN_FILE
from pipelines.schedule import schedule_request


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resolver(template: dict[str, Any], base_config: Config) -> Resolver:
    account = base_config.aws.role_arn.split(":")[4]
    return Resolver(template, account, base_config.aws.region)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_is_clean_offline(path: Path, no_network: None) -> None:
    matches = lint_file(path, config=ManualArgs(include_checks=["I"]))
    assert [str(m) for m in matches] == []


def test_committed_config_names_what_the_template_creates(
    template: dict[str, Any], resolver: Resolver, base_config: Config
) -> None:
    outputs = {name: resolver.value(o["Value"]) for name, o in template["Outputs"].items()
               if name != "ApprovalReviewerPolicyArn"}  # fmt: skip
    assert outputs["ExecutionRoleArn"] == base_config.aws.role_arn
    assert outputs["BucketName"] == base_config.aws.bucket
    assert outputs["ApprovalQueueUrl"] == base_config.approval.queue_url
    assert outputs["SchedulerRoleArn"] == base_config.schedule.role_arn
    assert outputs["ModelPackageGroupName"] == base_config.registry.model_package_group
    assert resolver.ref("PipelineName") == base_config.pipeline.name
    assert base_config.data.input_uri.startswith(f"s3://{outputs['BucketName']}/")


def test_scheduler_role_may_only_start_this_pipeline(
    template: dict[str, Any], resolver: Resolver, base_config: Config
) -> None:
    """Directly, or through the retraining starter that infra/drift-retraining.yaml creates."""
    allowed = {}
    for statement in statements(template, "SchedulerRole"):
        assert statement["Effect"] == "Allow"
        (action,) = as_list(statement["Action"])
        allowed[action] = [resolver.value(r) for r in as_list(statement["Resource"])]
    prefix = f"arn:aws:{{}}:{base_config.aws.region}:123456789012:"
    pipeline_arn = f"{prefix.format('sagemaker')}pipeline/{base_config.pipeline.name}"
    drift = load_template(INFRA / "drift-retraining.yaml")
    starter = Resolver(drift, "123456789012", base_config.aws.region).value(
        drift["Resources"]["RetrainingStarter"]["Properties"]["StateMachineName"]
    )
    assert allowed == {
        "sagemaker:StartPipelineExecution": [pipeline_arn],
        "states:StartExecution": [f"{prefix.format('states')}stateMachine:{starter}"],
    }
    # ...and it is the role and pipeline the schedule's target names.
    target = schedule_request(base_config, pipeline_arn)["Target"]
    assert target["RoleArn"] == resolver.attribute("SchedulerRole", "Arn")


def test_execution_role_is_scoped_to_its_bucket_queue_group_and_itself(
    template: dict[str, Any], resolver: Resolver, base_config: Config
) -> None:
    bucket = f"arn:aws:s3:::{base_config.aws.bucket}"
    for statement in statements(template, "ExecutionRole"):
        actions = as_list(statement["Action"])
        resources = [resolver.value(r) for r in as_list(statement["Resource"])]
        assert statement["Effect"] == "Allow" and not any(a.endswith(":*") for a in actions)
        if any(a.startswith("s3:") for a in actions):
            assert all(r == bucket or r.startswith(f"{bucket}/") for r in resources), statement
        if "iam:PassRole" in actions:
            assert resources == [base_config.aws.role_arn]
            assert statement["Condition"]["StringEquals"] == {
                "iam:PassedToService": "sagemaker.amazonaws.com"
            }
        if "sqs:SendMessage" in actions:
            name = base_config.approval.queue_url.rsplit("/", 1)[-1]
            assert resources == [f"arn:aws:sqs:us-east-1:123456789012:{name}"]
        if resources == ["*"]:  # only actions without resource-level permissions
            assert set(actions) <= {
                "ecr:GetAuthorizationToken",
                "sagemaker:ListModelPackages",
                "cloudwatch:PutMetricData",
            }, statement


def test_bucket_is_encrypted_versioned_and_private(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    queue = template["Resources"]["ApprovalQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["ApprovalDeadLetterQueue", "Arn"]
    }


# --------------------------------------------------------------------------- least privilege

# Reviewed: actions that have no resource-level permissions, so "*" is the only resource IAM
# accepts for them (Service Authorization Reference).
WILDCARD_RESOURCE_ALLOWED = {
    "ecr:GetAuthorizationToken",
    "sagemaker:ListModelPackages",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListModels",
    "sagemaker:ListDataQualityJobDefinitions",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
}
GOLDEN = GOLDEN_FILE
EXECUTION = "0123abcdefgh"


def policy_documents(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every permission statement of every IAM role, managed policy and bucket policy."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] in (
            "AWS::IAM::Role",
            "AWS::IAM::ManagedPolicy",
            "AWS::IAM::Policy",
            "AWS::S3::BucketPolicy",
        ):
            found[name] = statements(template, name)
    return found


def wildcard_resource(arn: str) -> bool:
    """ "*", or an ARN open in its account or region, or naming every resource of a type."""
    if arn == "*":
        return True
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return False
    _, _, service, region, account, resource = parts
    return (
        "*" in (region, account)
        or resource == "*"
        or re.fullmatch(r"[a-z-]+/\*", resource) is not None
    )


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_no_wildcard_action_and_no_unconditioned_wildcard_resource(
    path: Path, base_config: Config
) -> None:
    template = load_template(path)
    account = base_config.aws.role_arn.split(":")[4]
    resolver = Resolver(template, account, base_config.aws.region)
    assert policy_documents(template), f"{path.name} grants nothing?"
    for owner, found in policy_documents(template).items():
        for statement in found:
            if statement["Effect"] == "Deny":
                continue
            actions = as_list(statement["Action"])
            assert not [a for a in actions if "*" in a], (owner, statement.get("Sid"), actions)
            resources = [resolver.value(r) for r in as_list(statement.get("Resource", []))]
            open_ended = [r for r in resources if wildcard_resource(r)]
            if open_ended and "Condition" not in statement:
                assert set(actions) <= WILDCARD_RESOURCE_ALLOWED, (owner, statement.get("Sid"))


def test_the_checks_above_catch_what_they_claim() -> None:
    assert wildcard_resource("*")
    assert wildcard_resource("arn:aws:sagemaker:us-east-1:123456789012:training-job/*")
    assert wildcard_resource("arn:aws:ecr:us-east-1:*:repository/sagemaker-xgboost")
    assert not wildcard_resource(
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/pipelines-*"
    )
    assert iam_matches(
        "arn:aws:s3:::b/p/runs/*/Evaluate/*", "arn:aws:s3:::b/p/runs/x/Evaluate/e.json"
    )
    assert not iam_matches("arn:aws:s3:::b/p/runs/*/Evaluate/*", "arn:aws:s3:::b/p/runs/x/Train/m")


def sid(template: dict[str, Any], resource: str, name: str) -> dict[str, Any]:
    (found,) = [s for s in statements(template, resource) if s.get("Sid") == name]
    return found


def test_execution_role_job_actions_name_only_what_pipelines_launch(
    template: dict[str, Any], resolver: Resolver
) -> None:
    """Pipeline executions name their jobs and models pipelines-<execution>-<step>-<suffix>."""
    jobs = sid(template, "ExecutionRole", "PipelineJobs")
    resources = [resolver.value(r) for r in as_list(jobs["Resource"])]
    kinds = {r.split(":")[5].split("/")[0] for r in resources}
    assert kinds == {"processing-job", "training-job", "transform-job", "model"}
    launched = [
        f"arn:aws:sagemaker:us-east-1:123456789012:{kind}/pipelines-{EXECUTION}-step-AbC1234567"
        for kind in kinds
    ]
    assert all(any(iam_matches(r, arn) for r in resources) for arn in launched)
    other = "arn:aws:sagemaker:us-east-1:123456789012:training-job/someone-elses-job"
    assert not any(iam_matches(r, other) for r in resources)
    registry = sid(template, "ExecutionRole", "ModelRegistry")
    group = resolver.ref("ModelPackageGroupName")
    assert [resolver.value(r).split(":", 5)[5] for r in as_list(registry["Resource"])] == [
        f"model-package-group/{group}",
        f"model-package/{group}/*",
    ]


def test_trust_policy_names_the_account_and_its_sagemaker_resources(
    template: dict[str, Any], resolver: Resolver
) -> None:
    (trust,) = template["Resources"]["ExecutionRole"]["Properties"]["AssumeRolePolicyDocument"][
        "Statement"
    ]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    condition = trust["Condition"]
    assert resolver.value(condition["StringEquals"]["aws:SourceAccount"]) == "123456789012"
    assert resolver.value(condition["ArnLike"]["aws:SourceArn"]) == (
        "arn:aws:sagemaker:us-east-1:123456789012:*"
    )


def test_kms_grants_only_for_aws_resources(template: dict[str, Any]) -> None:
    for owner, found in policy_documents(template).items():
        for statement in found:
            if "kms:CreateGrant" in as_list(statement["Action"]):
                assert as_list(statement["Action"]) == ["kms:CreateGrant"], owner
                assert statement["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def output_objects(definition: dict[str, Any]) -> dict[str, str]:
    """Every output prefix the definition's steps write, for one execution: step/output -> ARN."""
    from tabular.contract import definition_steps

    found = {}
    for name, step in definition_steps(definition)[0].items():
        arguments = step.get("Arguments", {})
        outputs = [
            (o["OutputName"], o["S3Output"]["S3Uri"])
            for o in arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
        ]
        if "OutputDataConfig" in arguments:
            outputs.append(("model", arguments["OutputDataConfig"]["S3OutputPath"]))
        if "TransformOutput" in arguments:
            outputs.append(("predictions", arguments["TransformOutput"]["S3OutputPath"]))
        for output, uri in outputs:
            values = uri["Std:Join"]["Values"]
            text = "/".join(EXECUTION if isinstance(v, dict) else str(v) for v in values)
            found[f"{name}/{output}"] = "arn:aws:s3:::" + text.removeprefix("s3://")
    return found


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return dict(json.loads(GOLDEN.read_text()))


def test_the_execution_role_overwrites_and_deletes_only_run_outputs(
    template: dict[str, Any], resolver: Resolver, golden: dict[str, Any], base_config: Config
) -> None:
    writes = sid(template, "ExecutionRole", "WriteRunOutputs")
    assert "s3:DeleteObject" in as_list(writes["Action"])
    resources = [resolver.value(r) for r in as_list(writes["Resource"])]
    for output, prefix in output_objects(golden).items():
        assert any(iam_matches(r, f"{prefix}/part-0.csv") for r in resources), output
    bucket = f"arn:aws:s3:::{base_config.aws.bucket}"
    untouchable = [
        f"{bucket}/{base_config.data.input_uri.split('/', 3)[3]}",
        f"{bucket}/{base_config.aws.prefix}/code/{'0' * 64}/preprocess.py",
        f"{bucket}/other-team/data.csv",
    ]
    assert not [k for k in untouchable if any(iam_matches(r, k) for r in resources)]
    for statement in statements(template, "ExecutionRole"):
        if {"s3:PutObject", "s3:DeleteObject"} & set(as_list(statement["Action"])):
            assert statement is writes or statement.get("Sid") == "WriteRunOutputs"


def test_reviewers_read_the_reports_not_the_data(
    template: dict[str, Any], resolver: Resolver, golden: dict[str, Any], base_config: Config
) -> None:
    reads = sid(template, "ApprovalReviewerPolicy", "ReadReports")
    assert as_list(reads["Action"]) == ["s3:GetObject"]
    resources = [resolver.value(r) for r in as_list(reads["Resource"])]
    outputs = output_objects(golden)
    shown = [
        f"{outputs['Evaluate/evaluation']}/evaluation.json",
        f"{outputs['DataQuality/quality_check_output']}/statistics.json",
        f"{outputs['DataQuality/quality_check_output']}/constraint_violations.json",
    ]
    assert all(any(iam_matches(r, key) for r in resources) for key in shown), resources
    hidden = [f"{prefix}/part-0" for name, prefix in outputs.items() if not name.startswith(
        ("Evaluate/", "DataQuality/"))]  # fmt: skip
    hidden.append(f"arn:aws:s3:::{base_config.aws.bucket}/data/input.csv")
    assert len(hidden) > 5
    assert not [k for k in hidden if any(iam_matches(r, k) for r in resources)]


def test_image_permissions_name_the_repositories_of_the_definition_in_every_region(
    template: dict[str, Any], resolver: Resolver, golden: dict[str, Any], base_config: Config
) -> None:
    """The ECR statement covers exactly the images the definition names, and the region table
    is the installed SDK's for the configured image versions."""
    images = set(re.findall(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([a-z-]+)",
                            json.dumps(golden)))  # fmt: skip
    expected = {
        f"arn:aws:ecr:{region}:{account}:repository/{repo}" for account, region, repo in images
    }
    ecr = sid(template, "ExecutionRole", "JobImages")
    assert {resolver.value(r) for r in as_list(ecr["Resource"])} == expected

    import sagemaker

    folder = Path(sagemaker.__path__[0]) / "core" / "image_uri_config"
    sklearn = json.loads((folder / "sklearn.json").read_text())["training"]["versions"]
    xgboost = json.loads((folder / "xgboost.json").read_text())
    monitor = json.loads((folder / "model-monitor.json").read_text())["versions"]
    registries = [
        sklearn[base_config.images.sklearn_version]["registries"],
        xgboost["training"]["versions"][base_config.images.xgboost_version]["registries"],
        xgboost["inference"]["versions"][base_config.images.xgboost_version]["registries"],
    ]
    (analyzer,) = [v["registries"] for v in monitor.values()]
    regions = set(analyzer).intersection(*registries)
    table = template["Mappings"]["ImageAccounts"]
    assert set(table) == regions
    for region in regions:
        assert {r[region] for r in registries} == {table[region]["Framework"]}, region
        assert table[region]["ModelMonitor"] == analyzer[region], region


def test_template_prefix_is_the_configs(template: dict[str, Any], base_config: Config) -> None:
    assert template["Parameters"]["ArtifactPrefix"]["Default"] == base_config.aws.prefix
