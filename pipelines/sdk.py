"""What the SageMaker SDK needs before it is imported, taken from the config, not the machine.

Only the verbs that build the definition import the SDK (definition, golden, run-local, upsert);
every other verb runs without it. Building is offline, and these settings keep it so:

* Region: the SDK creates boto3 clients at import time (sagemaker/ai_registry/air_hub.py) and
  sessions of its own while building (ProcessingStep/TransformStep construct a
  LocalSagemakerClient, whose LocalSession makes a fresh `boto3.Session()`,
  sagemaker/core/local/local_session.py): all of them read the region from the environment,
  so `aws.region` is put there.
* Credentials: those fresh sessions run botocore's credential chain, whose last link probes the
  instance-metadata address (dozens of probes per build, seconds each where that address drops
  packets). An offline verb needs no credentials at all, so its process gets none to discover:
  no credential variables, no profile files, instance metadata disabled. A build therefore
  cannot sign a request, whatever it tries.
* Telemetry: the SDK's builders report usage from a background thread (an STS call and an HTTPS
  GET to an AWS-hosted bucket that bypasses AWS_ENDPOINT_URL) unless the session's SDK defaults
  set `SageMaker.PythonSDK.Modules.TelemetryOptOut` (read by `_telemetry_emitter` in
  sagemaker/core/telemetry/telemetry_logging.py through `resolve_value_from_config(...,
  config_path=TELEMETRY_OPT_OUT_PATH, sagemaker_session=...)`). The pipeline session carries
  that setting, and only it: SDK defaults files on the machine (~/.config/sagemaker/config.yaml)
  cannot change the definition.
* Role: the SDK's client-side IAM simulation is skipped; SageMaker checks the role when the
  pipeline is created and when each job starts.
* Speed: the SDK validates the session's defaults against its JSON schema on every config
  lookup (`get_sagemaker_config_value` in sagemaker/core/common_utils.py calls
  `SageMakerConfig.validate_sagemaker_config`) and once more when the session is made
  (`Session._initialize` in sagemaker/core/helper/session_helper.py calls
  `sagemaker.core.config.config.validate_sagemaker_config`): about 90 validations per build.
  Each is a `jsonschema.validate`, which first checks the SDK's whole schema against the JSON
  Schema meta-schema (about 65 ms; the document itself takes 0.1 ms). Here every one of those
  entry points validates the document against the schema, once per distinct document, and
  leaves the schema check out: the schema is a constant of the installed SDK, checked by a
  test instead (a build: 8 s -> 1.2 s for the lookups; 0.13 s less for the last two checks).
  And every boto3 session the SDK makes (four per build, plus the builders' LocalSessions) gets
  botocore's data loader of its own, which parses the service models again (the S3 model 8
  times, `partitions` 16 times per build), and the SDK's image-URI lookup asks botocore's
  module-level `create_loader()` for the endpoint data on every call (`_botocore_resolver` in
  sagemaker/core/common_utils.py, 1.2 MB of JSON, about 20 ms each): one loader per data path
  serves the whole process (config.catalogue.share_botocore_loader, installed when the config
  is validated, so the SageMaker model it read is not parsed again), and each file is parsed
  once.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config import Config
from config.catalogue import share_botocore_loader

if TYPE_CHECKING:
    from sagemaker.core.workflow.pipeline_context import PipelineSession

SDK_DEFAULTS: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
# What botocore's credential chain reads from the environment (botocore/credentials.py).
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)  # fmt: skip
NO_CREDENTIAL_SOURCES = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def prepare_sdk(cfg: Config, *, offline: bool = True) -> None:
    """Set up this process for the SDK, before it is first imported.

    `offline` (every verb but upsert): remove every source of AWS credentials from the process.
    Upsert keeps them: it publishes from the same process, after checking they exist.
    """
    os.environ["AWS_DEFAULT_REGION"] = cfg.aws.region
    os.environ["AWS_REGION"] = cfg.aws.region
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    if offline:
        for variable in CREDENTIAL_VARIABLES:
            os.environ.pop(variable, None)
        os.environ.update(NO_CREDENTIAL_SOURCES)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    share_botocore_loader()  # config validation installed it already; the SDK needs it


def _validated_once(schema: dict[str, Any]) -> Callable[[Any], None]:
    """A check of a document against ``schema`` that `jsonschema.validate` would make (the same
    error raised for an invalid one), once per distinct document (by its JSON form), without
    checking ``schema`` itself against the meta-schema each time."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    valid: set[str] = set()

    def check(sagemaker_config: Any = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=str)
        if key not in valid:
            error = jsonschema.exceptions.best_match(validator.iter_errors(sagemaker_config))
            if error is not None:
                raise error
            valid.add(key)

    check.validates_once = True  # type: ignore[attr-defined]
    return check


def _validate_sdk_defaults_once() -> None:
    """Every entry point of the SDK's defaults validation (see the module docstring)."""
    from sagemaker.core.config import config
    from sagemaker.core.config.config_manager import SageMakerConfig
    from sagemaker.core.config.config_schema import SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA
    from sagemaker.core.helper import session_helper

    if getattr(SageMakerConfig.validate_sagemaker_config, "validates_once", False):
        return
    check = _validated_once(SAGEMAKER_PYTHON_SDK_CONFIG_SCHEMA)
    SageMakerConfig.validate_sagemaker_config = staticmethod(check)
    config.validate_sagemaker_config = check
    session_helper.validate_sagemaker_config = check  # imported by name there


def pipeline_session(cfg: Config) -> PipelineSession:
    """The session every builder uses: the config's region and bucket, telemetry off."""
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    _validate_sdk_defaults_once()
    return PipelineSession(
        boto_session=boto3.Session(region_name=cfg.aws.region),
        default_bucket=cfg.aws.bucket,
        sagemaker_config=copy.deepcopy(SDK_DEFAULTS),
    )
