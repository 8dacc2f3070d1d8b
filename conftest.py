"""Test-wide setup, loaded before any test module: nothing may reach AWS or the network.

Job-script fixtures live in tests/conftest.py; these are for the definition, publishing and the
local runtime.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

# No test may find real credentials: moto's fake ones are set per test where needed.
for _variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_variable, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from pipelines.sdk import prepare_sdk  # noqa: E402
from steps.config import PIPELINE_CONFIG, Config, load_config  # noqa: E402

# The SDK needs its region before it is first imported, by any test module.
prepare_sdk(load_config(PIPELINE_CONFIG, env={}))


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything opens a network connection (Unix sockets excepted)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise NetworkBlocked(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def base_config() -> Config:
    return load_config(PIPELINE_CONFIG, env={})


@pytest.fixture(scope="session")
def built(base_config: Config):  # type: ignore[no-untyped-def]
    from pipelines.definition import build

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
