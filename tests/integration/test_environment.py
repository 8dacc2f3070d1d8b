"""Every verb in a new user's shell: no AWS configuration, an empty HOME, no network.

Each verb runs as a subprocess with only PATH, LANG and an empty HOME (tests/offline_guard.py),
inside `unshare -n` where the machine allows it, with the offline guard armed: any socket
connect or name lookup, from any thread, is refused and written to a log the test reads. The
region comes from the config's `aws.region` alone; the local verbs never import the SDK.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from bare_shell import FAKE_CREDENTIALS, NO_SDK, Shell, clean
from botocore.exceptions import ClientError, EndpointConnectionError
from offline_guard import GUARD, bare_command, bare_env, can_unshare_network, install

from config import LOCAL_CONFIG, PIPELINE_CONFIG, load_config
from config.paths import ROOT
from pipelines import aws

GOLDEN = ROOT / "tests" / "golden" / "pipeline.json"
IMDS = "169.254.169.254"


@pytest.mark.parametrize(
    ("argv", "code", "expected"),
    [
        (["registry"], 0, "no model packages"),
        (["approve", "0123abcd"], 2, "execution 0123abcd has no pending approval"),
        (["reject", "0123abcd", "--reason", "no"], 2, "has no pending approval"),
        (["validate"], 0, "configs/pipeline.yaml: valid"),
        (["validate", "--config", str(LOCAL_CONFIG)], 0, "configs/local.yaml: valid"),
    ],
    ids=["registry", "approve", "reject", "validate", "validate-local"],
)
def test_local_verbs_work_in_a_bare_shell_without_the_sdk(
    argv: list[str], code: int, expected: str, tmp_path: Path
) -> None:
    shell = Shell(tmp_path)
    result = shell.run(*argv)
    output = clean(result)
    assert result.returncode == code, output
    assert expected in output
    assert NO_SDK in result.stderr, "a local verb imported the SageMaker SDK"
    assert shell.attempts() == []


AWS_VERBS = [
    ["schedule"],
    ["unschedule"],
    ["delete"],
    ["approve", "0123abcd", "--aws"],
    ["reject", "0123abcd", "--aws", "--reason", "no"],
    ["upsert"],
    ["deploy", "--stage", "staging"],
    ["deploy", "--stage", "prod", "--dry-run"],
    ["rollback", "--stage", "prod"],
    ["undeploy", "--stage", "staging"],
    ["status", "--stage", "prod"],
    ["smoke", "--stage", "staging"],
    ["load", "--stage", "staging"],
    ["rollback-rejected", "--package-arn",
     "arn:aws:sagemaker:us-east-1:123456789012:model-package/tabular-xgboost/1"],
]  # fmt: skip


@pytest.mark.parametrize("argv", AWS_VERBS, ids=[" ".join(v) for v in AWS_VERBS])
def test_aws_verbs_without_credentials_say_so_at_once(argv: list[str], tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    result = shell.run(*argv)
    output = clean(result)
    assert result.returncode == 1, output
    assert "no AWS credentials found (region us-east-1 from aws.region)" in result.stderr
    assert "aws configure" in result.stderr and "AWS_PROFILE" in result.stderr
    assert NO_SDK in result.stderr, "nothing is built before the credentials are known"
    # Looking for credentials asks the instance-metadata address once, not dozens of times.
    probes = [line for line in shell.attempts() if IMDS in line]
    assert len(probes) <= 2 and len(shell.attempts()) == len(probes), shell.attempts()


@pytest.mark.parametrize("argv", AWS_VERBS, ids=[" ".join(v) for v in AWS_VERBS])
def test_aws_verbs_offline_name_the_endpoint_they_cannot_reach(
    argv: list[str], tmp_path: Path
) -> None:
    shell = Shell(tmp_path, **FAKE_CREDENTIALS)
    result = shell.run(*argv)
    output = clean(result)
    assert result.returncode == 1, output
    assert "ERROR: cannot connect to https://" in result.stderr
    assert ".amazonaws.com" in result.stderr and "HTTPS_PROXY" in result.stderr
    # Each attempt is one lookup of the service's name: two attempts, not eight with backoff,
    # and nothing else (no telemetry, no STS, no instance metadata).
    attempts = shell.attempts()
    hosts = {line.split("'")[1] for line in attempts}
    assert len(hosts) == 1 and hosts.pop().endswith(".amazonaws.com"), attempts
    assert len(attempts) <= aws.CONNECT_ATTEMPTS, attempts


def test_aws_verbs_in_a_bare_shell_use_the_config_region(moto_server: str, tmp_path: Path) -> None:
    """Against moto's HTTP server: no AWS_REGION anywhere, only aws.region of the config."""
    cfg = load_config(PIPELINE_CONFIG, env={})
    endpoint = f"http://{moto_server}"
    setup = boto3.Session(region_name=cfg.aws.region, **_lower(FAKE_CREDENTIALS))
    setup.client("s3", endpoint_url=endpoint).create_bucket(Bucket=cfg.aws.bucket)
    queue = cfg.approval.queue_url.rsplit("/", 1)[-1]
    setup.client("sqs", endpoint_url=endpoint).create_queue(QueueName=queue)
    shell = Shell(tmp_path, network=True, allow=moto_server, AWS_ENDPOINT_URL=endpoint,
                  **FAKE_CREDENTIALS)  # fmt: skip

    published = shell.run("upsert")
    assert published.returncode == 0, clean(published)
    assert f"pipeline {cfg.pipeline.name}: created" in published.stdout
    assert shell.attempts() == [], "the build made a call of its own (telemetry?)"
    scheduled = shell.run("schedule")
    assert scheduled.returncode == 0, clean(scheduled)
    assert "created, DISABLED" in scheduled.stdout and NO_SDK in scheduled.stderr
    answered = shell.run("approve", "0123abcd", "--aws")
    assert answered.returncode == 2, clean(answered)
    assert f"no pending approval for execution 0123abcd on {cfg.approval.queue_url}" in (
        answered.stderr
    )
    assert NO_SDK in answered.stderr
    unscheduled = shell.run("unschedule")
    assert "removed" in unscheduled.stdout, clean(unscheduled)
    deleted = shell.run("delete")
    assert deleted.returncode == 0, clean(deleted)
    assert f"pipeline {cfg.pipeline.name}: deleted" in deleted.stdout
    assert shell.attempts() == []


def _lower(credentials: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in credentials.items()}


@pytest.mark.parametrize("setting", ["bare", "credentials"])
def test_definition_is_built_offline_and_the_same_on_any_machine(
    setting: str, tmp_path: Path
) -> None:
    """No connection, no lookup from any thread; the machine's SDK defaults change nothing.

    bare: no AWS configuration, no network, but an SDK defaults file in HOME that would add tags,
    network isolation and environment variables to the jobs. credentials: the user has some,
    and the network: the guard alone catches what the SDK's telemetry would send.
    """
    extra = FAKE_CREDENTIALS if setting == "credentials" else {}
    shell = Shell(tmp_path, network=setting == "credentials", **extra)
    if setting == "bare":
        defaults = tmp_path / "home" / ".config" / "sagemaker" / "config.yaml"
        defaults.parent.mkdir(parents=True)
        defaults.write_text(
            "SchemaVersion: '1.0'\n"
            "SageMaker:\n"
            "  PythonSDK: {Modules: {TelemetryOptOut: false}}\n"
            "  ProcessingJob:\n"
            "    NetworkConfig: {EnableNetworkIsolation: true}\n"
            "    Environment: {INJECTED: 'yes'}\n"
            "    Tags: [{Key: team, Value: other}]\n"
            "  TrainingJob: {Environment: {INJECTED: 'yes'}}\n"
        )
    out = tmp_path / "pipeline.json"
    result = shell.run("definition", "--out", str(out))
    assert result.returncode == 0, clean(result)
    assert shell.attempts() == []
    assert out.read_text() == GOLDEN.read_text()


def test_golden_is_regenerated_offline(tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    out = tmp_path / "golden.json"
    result = shell.run("--golden-to", str(out), "golden")
    assert result.returncode == 0, clean(result)
    assert shell.attempts() == []
    assert out.read_text() == GOLDEN.read_text()


def test_run_local_is_approved_from_a_second_bare_terminal(
    tmp_path: Path, small_run_config: Path
) -> None:
    """README's flow: `run-local --wait-for-approval`, then `approve` in another shell."""
    config = small_run_config
    shell = Shell(tmp_path)
    running = subprocess.Popen(
        shell.command("run-local", "--config", str(config), "--wait-for-approval"),
        cwd=ROOT,
        env=shell.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert running.stdout is not None
    lines: list[str] = []
    try:
        for line in running.stdout:
            lines.append(line)
            if "python -m pipelines approve " in line:
                break
        else:
            raise AssertionError("".join(lines) + running.stderr.read())  # type: ignore[union-attr]
        execution = line.split("approve ", 1)[1].split()[0]
        approved = shell.run("approve", execution, "--config", str(config), "--reason", "fine")
        assert approved.returncode == 0, clean(approved)
        assert f"approved Approval of {execution}" in approved.stdout
        assert NO_SDK in approved.stderr
        rest, errors = running.communicate(timeout=600)
    finally:
        if running.poll() is None:
            running.kill()
    output = "".join(lines) + rest + errors
    assert running.returncode == 0, output
    assert "Traceback" not in output and f"execution {execution}: Succeeded" in output
    listed = shell.run("registry", "--config", str(config))
    assert "Approved" in listed.stdout and "fine" in listed.stdout, clean(listed)
    assert shell.attempts() == []


def test_the_guard_sees_connections_from_threads_that_swallow_errors(tmp_path: Path) -> None:
    """The guard itself: a daemon thread's lookup is refused and logged, in a subprocess too."""
    sneaky = (
        "import socket, threading\n"
        "def send():\n"
        "    try:\n"
        "        socket.create_connection(('telemetry.example.com', 443), timeout=1)\n"
        "    except Exception:\n"
        "        pass\n"
        "t = threading.Thread(target=send, name='telemetry', daemon=True)\n"
        "t.start(); t.join()\n"
    )
    log = tmp_path / "attempts.log"
    env = bare_env(tmp_path / "home", guard=log)
    done = subprocess.run([sys.executable, "-c", sneaky], env=env, capture_output=True)
    assert done.returncode == 0
    (line,) = log.read_text().splitlines()
    assert "socket.getaddrinfo ('telemetry.example.com', 443" in line and "'telemetry'" in line

    guard = install()
    guard.attempts.clear()
    guard.armed = True
    try:
        thread = threading.Thread(target=lambda: _swallow(("127.0.0.1", 9)), daemon=True)
        thread.start()
        thread.join()
    finally:
        guard.armed = False
    assert len(GUARD.attempts) == 1 and "socket.connect" in GUARD.attempts[0]


def _swallow(address: tuple[str, int]) -> None:
    import socket

    try:
        with socket.socket() as sock:
            sock.connect(address)
    except OSError:
        pass


def test_unshare_is_used_where_available() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed: the guard alone keeps these tests offline")
    if not can_unshare_network():
        pytest.skip("unshare -n is not permitted here: the guard alone keeps these tests offline")
    probe = subprocess.run(
        bare_command(
            [
                sys.executable,
                "-c",
                "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)",
            ]
        ),  # noqa: E501
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()


def test_an_unreachable_endpoint_is_tried_twice_not_eight_times() -> None:
    session = boto3.Session(region_name="us-east-1", **_lower(FAKE_CREDENTIALS))
    client = aws.client(session, "sagemaker")
    attempts = []

    def unreachable(request, **_):  # type: ignore[no-untyped-def]
        attempts.append(time.monotonic())
        raise EndpointConnectionError(endpoint_url=request.url)

    client.meta.events.register("before-send.sagemaker.DescribePipeline", unreachable)
    with pytest.raises(EndpointConnectionError) as caught:
        client.describe_pipeline(PipelineName="p")
    assert len(attempts) == aws.CONNECT_ATTEMPTS
    assert "cannot connect to https://api.sagemaker.us-east-1.amazonaws.com/" in aws.explain(
        caught.value
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ExpiredTokenException", "expired"),
        ("UnrecognizedClientException", "does not accept these credentials"),
        ("AccessDeniedException", "permission denied"),
        ("ValidationException", "AWS call failed"),
    ],
)
def test_aws_errors_are_explained(code: str, expected: str) -> None:
    error = ClientError({"Error": {"Code": code, "Message": "m"}}, "DescribePipeline")
    assert expected in aws.explain(error)
