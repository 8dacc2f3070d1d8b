"""approval.queue_url: every URL SQS accepts is accepted, the rest refused with the reason; and
`approve --aws` talks to the queue where its URL says it is."""

from __future__ import annotations

import pytest

from config import PIPELINE_CONFIG, ConfigError, load_config
from config.queue_url import parse_queue_url

ACCOUNT = "123456789012"

# (url, the region its host names, the endpoint a client must call: None for the default one)
VALID = [
    (f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/approvals", "us-east-1", None),
    (f"https://sqs.eu-central-2.amazonaws.com/{ACCOUNT}/a_b-C9", "eu-central-2", None),
    (f"https://sqs.cn-north-1.amazonaws.com.cn/{ACCOUNT}/approvals", "cn-north-1", None),
    (f"https://sqs.cn-northwest-1.amazonaws.com.cn/{ACCOUNT}/q", "cn-northwest-1", None),
    (f"https://sqs.us-gov-west-1.amazonaws.com/{ACCOUNT}/approvals", "us-gov-west-1", None),
    (f"https://sqs-fips.us-gov-east-1.amazonaws.com/{ACCOUNT}/q", "us-gov-east-1", None),
    (f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/approvals.fifo", "us-east-1", None),
    (f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/" + "a" * 80, "us-east-1", None),
    (f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/" + "a" * 75 + ".fifo", "us-east-1", None),
    (f"https://queue.amazonaws.com/{ACCOUNT}/legacy", "us-east-1", None),
    (f"https://eu-west-1.queue.amazonaws.com/{ACCOUNT}/legacy", "eu-west-1", None),
    (f"https://sqs.ap-southeast-4.api.aws/{ACCOUNT}/dual-stack", "ap-southeast-4", None),
    (f"HTTPS://SQS.US-EAST-1.AMAZONAWS.COM/{ACCOUNT}/Mixed_Case", "us-east-1", None),
    (
        f"https://vpce-0a1b2c3d4e5f67890-abcdefgh.sqs.us-east-1.vpce.amazonaws.com/{ACCOUNT}/q",
        "us-east-1",
        "https://vpce-0a1b2c3d4e5f67890-abcdefgh.sqs.us-east-1.vpce.amazonaws.com",
    ),
    (
        f"https://vpce-0123-xyz-us-east-1a.sqs.us-east-1.vpce.amazonaws.com/{ACCOUNT}/q.fifo",
        "us-east-1",
        "https://vpce-0123-xyz-us-east-1a.sqs.us-east-1.vpce.amazonaws.com",
    ),
    ("http://localhost:4566/000000000000/approvals", None, "http://localhost:4566"),
    ("http://127.0.0.1:9324/000000000000/approvals.fifo", None, "http://127.0.0.1:9324"),
    (
        f"http://sqs.us-east-1.localhost.localstack.cloud:4566/{ACCOUNT}/q",
        None,
        "http://sqs.us-east-1.localhost.localstack.cloud:4566",
    ),
    ("http://[::1]:9324/000000000000/q", None, "http://[::1]:9324"),
    (f"https://sqs.internal.example.com/{ACCOUNT}/q", None, "https://sqs.internal.example.com"),
]
INVALID = [
    ("sqs.us-east-1.amazonaws.com/123456789012/q", "scheme must be https"),
    ("ftp://sqs.us-east-1.amazonaws.com/123456789012/q", "scheme must be https"),
    ("https:///123456789012/q", "is not a host name"),
    ("https://user:pw@sqs.us-east-1.amazonaws.com/123456789012/q", "is not a host name"),
    ("https://bad_host.example.com/123456789012/q", "is not a host name"),
    ("http://localhost:99999/000000000000/q", "not a number from 0 to 65535"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012", "path must be /<12-digit account id>"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/", "queue name is empty"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/q/", "path must be"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/a/b", "path must be"),
    ("https://sqs.us-east-1.amazonaws.com/1234567890/q", "not a 12-digit AWS account id"),
    ("https://sqs.us-east-1.amazonaws.com/acct/q", "not a 12-digit AWS account id"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/" + "a" * 81, "has 81 characters"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/" + "a" * 76 + ".fifo", "has 81"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/my.queue", "only letters, digits"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/my%20queue", "only letters, digits"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/.fifo", "queue name is empty"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/q?Action=SendMessage", "no query"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/q#x", "no query string or fragment"),
    ("https://sqs.us-east-1.amazonaws.com/123456789012/arn:aws:sqs", "only letters, digits"),
    ("https://" + "a" * 230 + ".com/123456789012/q", "SageMaker accepts a queue URL of 256"),
]


@pytest.mark.parametrize(("url", "region", "endpoint"), VALID, ids=[v[0] for v in VALID])
def test_queue_urls_sqs_accepts_are_accepted(
    url: str, region: str | None, endpoint: str | None
) -> None:
    parsed = parse_queue_url(url)
    assert (parsed.region, parsed.endpoint) == (region, endpoint)
    assert parsed.account in (ACCOUNT, "000000000000")
    cfg = load_config(PIPELINE_CONFIG, env={"PIPELINE_APPROVAL_QUEUE_URL": url})
    assert cfg.approval.queue_url == url


@pytest.mark.parametrize(("url", "reason"), INVALID, ids=[i[0][:90] for i in INVALID])
def test_queue_urls_sqs_refuses_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_queue_url(url)
    assert reason in str(caught.value)
    with pytest.raises(ConfigError) as refused:
        load_config(PIPELINE_CONFIG, env={"PIPELINE_APPROVAL_QUEUE_URL": url})
    message = str(refused.value)
    assert "approval.queue_url" in message and reason in message


def test_fifo_queue_is_recognised() -> None:
    assert parse_queue_url(f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/q.fifo").fifo
    assert not parse_queue_url(f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/fifo").fifo
