"""Test-wide setup, loaded before any test module: nothing may reach AWS or the network.

Job-script fixtures live in tests/conftest.py; these are for the definition, publishing and the
local runtime.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import boto3
import pytest
from moto import mock_aws

# No test may find real credentials: moto's fake ones are set per test where needed.
for _variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_variable, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from config import PIPELINE_CONFIG, Config, load_config  # noqa: E402
from pipelines.document import BuiltPipeline  # noqa: E402


@pytest.fixture(scope="session")
def base_config() -> Config:
    return load_config(PIPELINE_CONFIG, env={})


@pytest.fixture(scope="session")
def build(base_config: Config) -> Callable[..., BuiltPipeline]:
    """The definition builder, the SDK prepared as the CLI prepares it (pipelines/sdk.py).

    Nothing prepares the SDK for the whole suite: a test that builds asks for this fixture.
    """
    from pipelines.sdk import prepare_sdk

    prepare_sdk(base_config)
    from pipelines.definition import build as build_definition

    return build_definition


@pytest.fixture(scope="session")
def built(base_config: Config, build: Callable[..., BuiltPipeline]) -> BuiltPipeline:
    return build(base_config)


@pytest.fixture(scope="session")
def definition(built) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(built.definition)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials for moto; moto intercepts every call before it leaves the process."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield


@pytest.fixture
def aws(aws_credentials: None, base_config: Config) -> Iterator[boto3.Session]:
    """A moto account with the configured artifact bucket: SageMaker, S3, SQS, Scheduler."""
    with mock_aws():
        session = boto3.Session(region_name=base_config.aws.region)
        session.client("s3").create_bucket(Bucket=base_config.aws.bucket)
        yield session
