"""infra/template.yaml: cfn-lint clean (offline), least privilege, and the names the committed
config uses are the ones the template creates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode

from pipelines.schedule import schedule_request
from steps.config import Config

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"
SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, errors = decode(str(TEMPLATE))
    assert not errors, errors
    assert decoded is not None
    return dict(decoded)


class Resolver:
    """What CloudFormation makes of Ref / Fn::Sub / Fn::GetAtt with the parameters' defaults,
    for the resource types whose names the config repeats."""

    def __init__(self, template: dict[str, Any], account: str, region: str) -> None:
        self.template = template
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": "aws",
        }

    def resource(self, name: str) -> tuple[str, dict[str, Any]]:
        found = self.template["Resources"][name]
        return found["Type"], found.get("Properties", {})

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.template["Parameters"]:
            return str(self.template["Parameters"][name]["Default"])
        kind, props = self.resource(name)
        if kind == "AWS::S3::Bucket":
            return self.value(props["BucketName"])
        if kind == "AWS::SQS::Queue":
            queue = self.value(props["QueueName"])
            return f"https://sqs.{self.pseudo['AWS::Region']}.amazonaws.com/{self.ref('AWS::AccountId')}/{queue}"
        raise AssertionError(f"Ref to {kind} is not modelled here")

    def attribute(self, name: str, attribute: str) -> str:
        kind, props = self.resource(name)
        account, region = self.pseudo["AWS::AccountId"], self.pseudo["AWS::Region"]
        if (kind, attribute) == ("AWS::IAM::Role", "Arn"):
            return f"arn:aws:iam::{account}:role/{self.value(props['RoleName'])}"
        if (kind, attribute) == ("AWS::S3::Bucket", "Arn"):
            return f"arn:aws:s3:::{self.value(props['BucketName'])}"
        if (kind, attribute) == ("AWS::SQS::Queue", "Arn"):
            return f"arn:aws:sqs:{region}:{account}:{self.value(props['QueueName'])}"
        raise AssertionError(f"GetAtt {kind}.{attribute} is not modelled here")

    def value(self, node: Any) -> str:
        if isinstance(node, str):
            return str(node)
        ((function, argument),) = node.items()
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::GetAtt":
            name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.attribute(name, attribute)
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]

            def substitute(match: re.Match[str]) -> str:
                variable = match.group(1)
                if "." in variable:
                    return self.attribute(*variable.split(".", 1))
                return self.ref(variable)

            return SUB_VARIABLE.sub(substitute, text)
        raise AssertionError(f"{function} is not modelled here")


@pytest.fixture(scope="module")
def resolver(template: dict[str, Any], base_config: Config) -> Resolver:
    account = base_config.aws.role_arn.split(":")[4]
    return Resolver(template, account, base_config.aws.region)


def statements(template: dict[str, Any], resource: str) -> list[dict[str, Any]]:
    props = template["Resources"][resource]["Properties"]
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    if "PolicyDocument" in props:
        documents.append(props["PolicyDocument"])
    found = []
    for document in documents:
        for statement in document["Statement"]:
            if "Fn::If" in statement:  # conditional statement: [condition, if true, if false]
                statement = statement["Fn::If"][1]
            found.append(statement)
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_cfn_lint_is_clean_offline(no_network: None) -> None:
    matches = lint_file(TEMPLATE, config=ManualArgs(include_checks=["I"]))
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
    (statement,) = statements(template, "SchedulerRole")
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["sagemaker:StartPipelineExecution"]
    pipeline_arn = (
        f"arn:aws:sagemaker:{base_config.aws.region}:123456789012:pipeline/"
        f"{base_config.pipeline.name}"
    )
    assert [resolver.value(r) for r in as_list(statement["Resource"])] == [pipeline_arn]
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
            assert all(r in (bucket, f"{bucket}/*") for r in resources), statement
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
