"""approve --aws against a queue on a local endpoint (moto's HTTP server), as a bare CLI run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
from offline_guard import bare_env

from config.paths import ROOT


def test_approve_aws_reads_a_local_endpoint_queue_where_its_url_points(
    moto_server: str, tmp_path: Path
) -> None:
    """A FIFO queue on a local endpoint (moto's server): no AWS_ENDPOINT_URL, the URL is enough."""
    endpoint = f"http://{moto_server}"
    sqs = boto3.client(
        "sqs", region_name="us-east-1", endpoint_url=endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    url = sqs.create_queue(
        QueueName="approvals.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    assert url.startswith(endpoint) and url.endswith(".fifo")
    sqs.send_message(QueueUrl=url, MessageBody="not an approval", MessageGroupId="g")
    log = tmp_path / "attempts.log"
    env = bare_env(
        tmp_path / "home",
        guard=log,
        allow=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        PIPELINE_APPROVAL_QUEUE_URL=url,
    )
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "approve", "0123abcd", "--aws"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"no pending approval for execution 0123abcd on {url}" in result.stderr
    assert "1 other message(s) left on the queue, 1 unparseable" in result.stderr
    assert not log.exists(), log.read_text()
    # The message was made visible again, not deleted.
    kept = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=0)
    assert [m["Body"] for m in kept.get("Messages", [])] == ["not an approval"]
