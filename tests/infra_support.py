"""Reading the CloudFormation templates in infra/ the way CloudFormation and IAM read them:
intrinsic functions resolved with the parameters' defaults, policy statements, IAM wildcards."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from config.paths import ROOT

INFRA = ROOT / "infra"
TEMPLATE = INFRA / "template.yaml"
TEMPLATES = sorted(INFRA.glob("*.yaml"))
SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")
# Parameters without a default, as a user of the release templates passes them.
REQUIRED_PARAMETERS = {"RepositoryName": "example-org/tabular-xgboost"}


def load_template(path: Path) -> dict[str, Any]:
    decoded, errors = decode(str(path))
    assert not errors, errors
    assert decoded is not None
    return dict(decoded)


class Resolver:
    """What CloudFormation makes of Ref / Fn::Sub / Fn::GetAtt with the parameters' defaults,
    for the resource types whose names the config repeats."""

    def __init__(
        self,
        template: dict[str, Any],
        account: str,
        region: str,
        parameters: dict[str, str] | None = None,
    ) -> None:
        self.template = template
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": "aws",
        }
        self.parameters = {**REQUIRED_PARAMETERS, **(parameters or {})}

    def resource(self, name: str) -> tuple[str, dict[str, Any]]:
        found = self.template["Resources"][name]
        return found["Type"], found.get("Properties", {})

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.template["Parameters"]:
            if name in self.parameters:
                return self.parameters[name]
            return str(self.template["Parameters"][name]["Default"])
        kind, props = self.resource(name)
        account, region = self.pseudo["AWS::AccountId"], self.pseudo["AWS::Region"]
        if kind == "AWS::S3::Bucket":
            if "BucketName" not in props:  # CloudFormation generates one
                return f"stack-{name.lower()}-1a2b3c4d5e6f"
            return self.value(props["BucketName"])
        named = {  # resources whose Ref is a name, and the property that names them
            "AWS::CodeBuild::Project": "Name",
            "AWS::CodePipeline::Pipeline": "Name",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::Events::Rule": "Name",
        }
        if kind in named:
            return self.value(props[named[kind]])
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{region}:{account}:{self.value(props['TopicName'])}"
        if kind == "AWS::StepFunctions::StateMachine":
            machine = self.value(props["StateMachineName"])
            return f"arn:aws:states:{region}:{account}:stateMachine:{machine}"
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
            return f"arn:aws:s3:::{self.ref(name)}"
        if (kind, attribute) == ("AWS::Logs::LogGroup", "Arn"):
            return f"arn:aws:logs:{region}:{account}:log-group:{self.ref(name)}:*"
        if (kind, attribute) == ("AWS::CodeBuild::Project", "Arn"):
            return f"arn:aws:codebuild:{region}:{account}:project/{self.ref(name)}"
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
        if function == "Fn::FindInMap":
            mapping, first, second = (self.value(part) for part in argument)
            return str(self.template["Mappings"][mapping][first][second])
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            local = {} if isinstance(argument, str) else argument[1]

            def substitute(match: re.Match[str]) -> str:
                variable = match.group(1)
                if variable in local:
                    return self.value(local[variable])
                if "." in variable:
                    return self.attribute(*variable.split(".", 1))
                return self.ref(variable)

            return SUB_VARIABLE.sub(substitute, text)
        raise AssertionError(f"{function} is not modelled here")


def statements(template: dict[str, Any], resource: str) -> list[dict[str, Any]]:
    props = template["Resources"][resource]["Properties"]
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    if "PolicyDocument" in props:
        documents.append(props["PolicyDocument"])
    found = []
    for document in documents:
        for statement in document["Statement"]:
            if "Fn::If" in statement:  # conditional statement: [condition, if true, if false]
                found.extend(s for s in statement["Fn::If"][1:] if "Effect" in s)
            else:
                found.append(statement)
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def iam_matches(pattern: str, value: str) -> bool:
    """IAM's wildcard match of a resource ARN: * any run of characters, ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None
