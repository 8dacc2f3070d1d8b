"""SQS queue URLs as SQS accepts them: `<scheme>://<host>[:port]/<account id>/<queue name>`.

The host is not checked against one partition's naming: queues live at
`sqs.<region>.amazonaws.com`, `sqs.<region>.amazonaws.com.cn`, the legacy
`<region>.queue.amazonaws.com` and `queue.amazonaws.com`, the dual-stack `sqs.<region>.api.aws`,
VPC endpoints (`vpce-....sqs.<region>.vpce.amazonaws.com`) and local or private endpoints
(`http://localhost:4566/000000000000/q`). What SQS itself requires is checked: http or https,
a 12-digit account id, and a queue name of 1 to 80 letters, digits, hyphens and underscores, a
FIFO queue's ending in `.fifo` (SQS developer guide, "Amazon SQS queue naming"). SageMaker keeps
at most 256 characters of a callback step's SqsQueueUrl (CallbackStepMetadata).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

URL_MAX = 256
NAME_MAX = 80
FIFO_SUFFIX = ".fifo"
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]+")
ACCOUNT_ID = re.compile(r"\d{12}")
HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
REGION = r"[a-z]{2}(?:-[a-z]+)+-\d"
# Hosts whose client endpoint is the region's default one: (pattern, region when fixed).
AWS_HOSTS = (
    (re.compile(rf"sqs(?:-fips)?\.(?P<region>{REGION})\.amazonaws\.com(?:\.cn)?"), None),
    (re.compile(rf"(?P<region>{REGION})\.queue\.amazonaws\.com(?:\.cn)?"), None),
    (re.compile(rf"sqs\.(?P<region>{REGION})\.api\.aws"), None),
    (re.compile(r"queue\.amazonaws\.com"), "us-east-1"),
)
# A VPC endpoint is reached at its own name: it is the client's endpoint.
VPC_ENDPOINT_HOST = re.compile(
    rf"vpce-[a-z0-9-]+\.sqs\.(?P<region>{REGION})\.vpce\.amazonaws\.com(?:\.cn)?"
)
EXAMPLE = "https://sqs.us-east-1.amazonaws.com/123456789012/my-approvals"


@dataclass(frozen=True)
class QueueUrl:
    url: str
    account: str
    name: str
    region: str | None  # the region the host names, None for a local or private endpoint
    endpoint: str | None  # the SQS endpoint to call, None for the region's default endpoint

    @property
    def fifo(self) -> bool:
        return self.name.endswith(FIFO_SUFFIX)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(HOST_LABEL.fullmatch(label) for label in labels)


def _name_problem(name: str) -> str | None:
    base = name.removesuffix(FIFO_SUFFIX)
    if not name or not base:
        return "the queue name is empty"
    if len(name) > NAME_MAX:
        return f"the queue name {name!r} has {len(name)} characters (SQS allows {NAME_MAX})"
    if not QUEUE_NAME.fullmatch(base):
        return (
            f"the queue name {name!r} may hold only letters, digits, hyphens and underscores "
            f"(and end in {FIFO_SUFFIX} for a FIFO queue)"
        )
    return None


def parse_queue_url(url: str) -> QueueUrl:
    """Parse a queue URL; raise ValueError naming what SQS would not accept."""
    if len(url) > URL_MAX:
        raise ValueError(f"{len(url)} characters; SageMaker accepts a queue URL of {URL_MAX}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the scheme must be https (or http for a local endpoint); e.g. {EXAMPLE}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the port in {parts.netloc!r} is not a number from 0 to 65535") from None
    host = parts.hostname or ""
    if parts.username is not None or not host or not _valid_host(host) or port == 0:
        raise ValueError(f"{parts.netloc!r} is not a host name; e.g. {EXAMPLE}")
    if parts.query or parts.fragment:
        raise ValueError("a queue URL has no query string or fragment; remove '?...'/'#...'")
    segments = parts.path.split("/")
    if len(segments) != 3 or segments[0]:
        raise ValueError(f"the path must be /<12-digit account id>/<queue name>; e.g. {EXAMPLE}")
    account, name = segments[1], segments[2]
    if not ACCOUNT_ID.fullmatch(account):
        raise ValueError(f"{account!r} is not a 12-digit AWS account id")
    problem = _name_problem(name)
    if problem:
        raise ValueError(problem)
    host = host.lower().rstrip(".")
    for pattern, fixed in AWS_HOSTS:
        match = pattern.fullmatch(host)
        if match:
            return QueueUrl(url, account, name, fixed or match.group("region"), None)
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address
    netloc = f"{shown}:{port}" if port is not None else shown
    vpce = VPC_ENDPOINT_HOST.fullmatch(host)
    region = vpce.group("region") if vpce else None
    return QueueUrl(url, account, name, region, f"{parts.scheme}://{netloc}")


def check_queue_url(url: str) -> str:
    """Pydantic validator: the URL as given, if SQS would accept it."""
    parse_queue_url(url)
    return url
