"""The one place the AWS verbs get their clients: the config's region, retries, clear failures.

Every client is made in `aws.region` of the config (never the machine's default region or
profile region), with standard retries for throttling and transient faults. Two failures are
answered at once instead of after minutes of retries: no credentials at all (checked before any
call, without contacting AWS), and an endpoint that cannot be connected to (no network, DNS,
firewall). `explain` turns botocore's errors into a message that names what failed and the fix.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProxyConnectionError,
)

from config import Config

# Standard retry mode: exponential backoff with jitter on throttling and transient faults. A
# connection that cannot be opened fails fast instead (`_unreachable_fails_fast`), so the connect
# timeout bounds the wait of an unreachable endpoint.
RETRYING = BotoConfig(
    retries={"mode": "standard", "max_attempts": 8}, connect_timeout=10, read_timeout=70
)
CONNECT_ATTEMPTS = 2  # one retry of a failed connection, then the error
UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)
CREDENTIALS_FIX = (
    "configure credentials for this shell: `aws configure` or `aws sso login` (then "
    "AWS_PROFILE=<profile>), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an "
    "instance or container role is available"
)
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
UNRECOGNISED = {"UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId",
                "SignatureDoesNotMatch", "InvalidSignatureException"}  # fmt: skip
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


class AwsUnavailable(RuntimeError):
    """AWS cannot be used from this shell (no credentials, no connection); says what to fix."""


def session(cfg: Config) -> boto3.Session:
    """A session in the config's region whose credentials exist (checked without any request).

    The credential chain is botocore's: environment, profile files, SSO, process, container and
    instance roles. Nothing here reads the machine's default region.
    """
    made = boto3.Session(region_name=cfg.aws.region)
    if made.get_credentials() is None:
        raise AwsUnavailable(
            f"no AWS credentials found (region {cfg.aws.region} from aws.region); {CREDENTIALS_FIX}"
        )
    return made


def _unreachable_fails_fast(
    attempts: int, caught_exception: Exception | None = None, **_: Any
) -> None:
    """`needs-retry` handler: stop retrying a connection that could not be opened.

    botocore's standard mode retries connection errors like throttling (up to max_attempts with
    backoff up to 20 s); a missing network or an unresolvable name does not heal in that time.
    Raising from the handler ends the retry loop with the original error
    (botocore/endpoint.py, Endpoint._needs_retry emits `needs-retry` and propagates).
    """
    unreachable = isinstance(caught_exception, UNREACHABLE)
    if unreachable and attempts >= CONNECT_ATTEMPTS:
        assert caught_exception is not None
        raise caught_exception


def client(
    made: boto3.Session, service: str, region: str | None = None, endpoint: str | None = None
) -> Any:
    """A client of `service` from `made`, retrying per RETRYING, failing fast when unreachable.

    `region`/`endpoint` only where a resource names its own (an SQS queue URL).
    """
    created = made.client(service, config=RETRYING, region_name=region, endpoint_url=endpoint)
    event = f"needs-retry.{created.meta.service_model.service_id.hyphenize()}"
    created.meta.events.register(event, _unreachable_fails_fast)
    return created


def explain(error: BotoCoreError | ClientError) -> str:
    """What failed and what to do about it, for the errors people meet without a working setup."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return f"no usable AWS credentials ({error}); {CREDENTIALS_FIX}"
    if isinstance(error, UNREACHABLE):
        endpoint = error.kwargs.get("endpoint_url") or error.kwargs.get("proxy_url") or "AWS"
        return (
            f"cannot connect to {endpoint}: this shell has no route to it (no network, name "
            "not resolved, or blocked); check the network connection and proxy (HTTPS_PROXY), "
            "aws.region in the config, and AWS_ENDPOINT_URL if you use a local or VPC endpoint"
        )
    if isinstance(error, NoRegionError):
        return f"{error}; set aws.region in the config"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in EXPIRED:
            return f"AWS credentials have expired ({error}); refresh them (`aws sso login`, ...)"
        if code in UNRECOGNISED:
            return f"AWS does not accept these credentials ({error}); {CREDENTIALS_FIX}"
        if code in DENIED:
            return (
                f"permission denied ({error}); use credentials allowed to do this (see "
                "infra/template.yaml for the policies each role needs)"
            )
    return f"AWS call failed: {error}"
