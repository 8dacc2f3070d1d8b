"""Bad input, faults and concurrency: a clear message, a non-zero exit, nothing half-done."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from config import PIPELINE_CONFIG, Config, load_config
from config.paths import ROOT
from pipelines.local import run_local, runner_for
from pipelines.publish import upsert

GOOD_ROWS = "".join(f"{i % 7},{'abc'[i % 3]},{i % 2}\n" for i in range(60))
BAD_DATA = [
    ("empty file", b"", {}, "file is empty"),
    ("header only", b"a,b,label\n", {}, "header row but no data rows"),
    ("target missing", ("a,b,outcome\n" + GOOD_ROWS).encode(), {}, "target column 'label' not found"),  # noqa: E501
    ("one class", ("a,b,label\n" + "1,x,0\n" * 40).encode(), {}, "has 1 distinct value"),
    ("three classes", ("a,b,label\n" + "".join(f"{i},x,{i % 3}\n" for i in range(60))).encode(),
     {}, "has 3 distinct value(s)"),
    ("text in a regression target", ("a,b,label\n" + GOOD_ROWS + "1,x,lots\n").encode(),
     {"problem_type": "regression"}, "regression target 'label': 'lots' is not a number"),
    ("ragged rows", ("a,b,label\n" + GOOD_ROWS + "1,x,0,extra\n").encode(), {}, "line 62 has 4 fields"),  # noqa: E501
    ("wrong delimiter", ("a;b;label\n" + GOOD_ROWS.replace(",", ";")).encode(), {},
     "Set data.delimiter: ';'"),
    ("quoted thousands", ("a,b,label\n" + "".join(f'"1,{i:03d}.5",x,{i % 2}\n' for i in range(60))).encode(),  # noqa: E501
     {}, "set data.thousands: ','"),
    ("database NULL", ("a,b,label\n" + GOOD_ROWS + "NULL,x,1\n").encode(), {},
     "add 'NULL' to data.missing_values"),
    ("beyond float32", ("a,b,label\n" + GOOD_ROWS + "3e40,x,1\n").encode(), {}, "float32"),
    ("text in a numeric column", ("a,b,label\n" + GOOD_ROWS + "oops,x,1\n").encode(), {},
     "column 'a' is"),
    ("all-null column", ("a,b,label\n" + "".join(f",{'xy'[i % 2]},{i % 2}\n" for i in range(60))).encode(),  # noqa: E501
     {}, "are empty in every row"),
    ("duplicate column names", ("a,a,label\n" + GOOD_ROWS).encode(), {}, "duplicate column names"),
    ("non-UTF-8 bytes", ("a,b,label\n" + GOOD_ROWS).encode() + b"1,\xff\xfe,0\n", {}, "not valid UTF-8"),  # noqa: E501
    ("too small to split", b"a,b,label\n1,x,0\n2,y,1\n3,x,0\n", {}, "too few to split"),
]  # fmt: skip


def config_for(tmp_path: Path, data: Path, **data_fields: object) -> Config:
    fields = {"input_uri": data.as_uri(), "target": "label", "problem_type": "binary"}
    fields.update(data_fields)
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"data": fields}), encoding="utf-8")  # JSON is YAML
    return load_config(path, env={})


@pytest.fixture(scope="module")
def shared_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


PREPROCESS_PASSES = ("Profile", "Preprocess", "FitTransformer")


@pytest.mark.parametrize(
    ("case", "payload", "fields", "expected"), BAD_DATA, ids=[c[0] for c in BAD_DATA]
)
def test_bad_data_fails_in_preprocess_and_leaves_nothing(
    case: str,
    payload: bytes,
    fields: dict[str, str],
    expected: str,
    tmp_path: Path,
    shared_workspace: Path,
    build,
) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(payload)
    cfg = config_for(tmp_path, data, **fields)
    run = run_local(cfg, build(cfg), workspace=shared_workspace, quiet=True)
    assert run.execution.status == "Failed"
    # The Preprocess job's passes: the profile refuses what one pass over the data shows, the
    # split what typing each value shows (beyond float32)
    steps = run.execution.steps
    (failed,) = [name for name in PREPROCESS_PASSES if steps[name].status == "Failed"]
    reason = steps[failed].failure_reason or ""
    assert expected in reason, reason
    assert "data.csv" in reason or "row" in reason or "line" in reason, reason
    assert "Traceback" not in reason
    before = PREPROCESS_PASSES[: PREPROCESS_PASSES.index(failed)]
    assert {r.status for n, r in steps.items() if n not in (failed, *before)} <= {
        "NotStarted",
        "NotExecuted",
    }
    runner = runner_for(cfg, shared_workspace)
    assert runner.state.packages() == [], "nothing may be registered"
    assert runner.state.callbacks() == [], "no approval may be requested"
    runs = runner.store.path(f"s3://{cfg.aws.bucket}/{cfg.aws.prefix}/runs")
    outputs = runs / run.execution.execution_id / failed
    assert not outputs.exists(), "a failed job's outputs must not be published"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_bad_config_exits_2_listing_every_problem_before_anything_runs(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "data: {input_uri: 'file:///nowhere.csv', target: y, problem_type: multiclass}\n"
        "jobs: {train: {instance_type: ml.m5.huge}}\n"
        "evaluation: {metric: rmse}\n"
        "surprise: 1\n"
    )
    result = cli("run-local", "--config", str(config))
    assert result.returncode == 2
    for fragment in ("data.problem_type", "jobs.train.instance_type", "surprise: unknown key"):
        assert fragment in result.stderr, result.stderr
    assert "started" not in result.stdout, "nothing may run on a bad config"


def test_bad_data_run_exits_1_with_the_reason_on_the_console(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b,outcome\n" + GOOD_ROWS)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data: {{input_uri: '{data.as_uri()}', target: label, problem_type: binary}}\n"
    )
    result = cli(
        "run-local", "--config", str(config), env={"PIPELINE_LOCAL_WORKSPACE": str(tmp_path / "ws")}
    )
    assert result.returncode == 1
    assert "target column 'label' not found" in result.stdout


def wait_for(path: Path, predicate, timeout: float = 300) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            try:
                document = json.loads(path.read_text())
            except json.JSONDecodeError:
                document = None
            if document is not None and predicate(document):
                return document
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting on {path}")


SMALL = """\
extends: {local}
sample_data: {{rows: 3000, seed: 5}}
training:
  hyperparameters: {{num_round: 400, early_stopping_rounds: 400, max_depth: 8, eta: 0.01}}
evaluation: {{bootstrap_rounds: 5}}
"""


def start_run_local(config: Path, workspace: Path, *extra: str) -> subprocess.Popen[str]:
    """``run-local`` in a subprocess, with its own workspace."""
    env = {**os.environ, "PIPELINE_LOCAL_WORKSPACE": str(workspace)}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", "run-local", "--config", str(config), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a shell's background job (`make test &`) inherits SIGINT ignored,
        # and a Python started so never turns Ctrl-C into KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_run_leaves_consistent_state_and_retry_resumes(
    sig: signal.Signals, tmp_path: Path
) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(SMALL.format(local=ROOT / "configs" / "local.yaml"))
    workspace = tmp_path / "ws"
    process = start_run_local(config, workspace)
    executions = workspace / "executions"
    deadline = time.monotonic() + 300
    while not (executions.is_dir() and any(executions.iterdir())):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    (folder,) = executions.iterdir()
    wait_for(folder / "execution.json", lambda d: d["steps"]["Train"]["status"] == "Executing")
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    if sig == signal.SIGINT:
        assert process.returncode == 130, stderr
        document = json.loads((folder / "execution.json").read_text())
        assert document["status"] == "Stopped"
    cfg = load_config(config, env={})
    runner = runner_for(cfg, workspace)
    assert runner.state.packages() == []
    with sqlite3.connect(runner.state.path) as db:
        cached = {
            step
            for (step,) in db.execute(
                "SELECT step FROM step_cache WHERE execution_id = ?", (folder.name,)
            )
        }
    assert "Preprocess" in cached and "Train" not in cached, "only finished steps are cached"
    model_prefix = f"s3://{cfg.aws.bucket}/{cfg.aws.prefix}/runs/{folder.name}/Train"
    assert not runner.store.path(model_prefix).exists(), "no partial model may be published"

    retried = start_run_local(config, workspace, "--retry", folder.name)
    stdout, stderr = retried.communicate(timeout=600)
    assert retried.returncode == 0, stdout + stderr
    document = json.loads((folder / "execution.json").read_text())
    assert document["status"] == "Succeeded"
    assert document["steps"]["Preprocess"]["attempts"] == 1, "Preprocess must not run again"


def test_two_runs_at_once_in_one_workspace(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(
        SMALL.format(local=ROOT / "configs" / "local.yaml").replace(
            "num_round: 400", "num_round: 30"
        )
    )
    env = {**os.environ, "PIPELINE_LOCAL_WORKSPACE": str(tmp_path / "ws")}
    command = [sys.executable, "-m", "pipelines", "run-local", "--config", str(config)]
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in processes]
    for process, (stdout, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stdout + stderr
    cfg = load_config(config, env={})
    packages = runner_for(cfg, tmp_path / "ws").state.packages()
    assert sorted(p["ModelPackageVersion"] for p in packages) == [1, 2]
    assert len({p["ExecutionId"] for p in packages}) == 2


def test_publishing_clients_retry_throttling_with_backoff(aws_credentials: None) -> None:
    from botocore.awsrequest import AWSResponse

    from pipelines import aws

    client = aws.client(boto3.Session(region_name="us-east-1"), "sagemaker")
    attempts = []

    def answer(request, **_):  # type: ignore[no-untyped-def]
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
            headers = {"x-amzn-ErrorType": "ThrottlingException"}
            return AWSResponse(request.url, 400, headers, _Raw(body))
        return AWSResponse(request.url, 200, {}, _Raw(b'{"PipelineArn": "arn:p"}'))

    client.meta.events.register("before-send.sagemaker.UpdatePipeline", answer)
    response = client.update_pipeline(
        PipelineName="p", PipelineDefinition="{}", RoleArn="arn:aws:iam::123456789012:role/r"
    )
    assert response["PipelineArn"] == "arn:p" and len(attempts) == 3


def test_failed_update_leaves_the_published_definition_whole(
    aws_credentials: None,
    base_config: Config,
    built,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    build,
) -> None:
    from botocore.exceptions import ClientError

    with mock_aws():
        session = boto3.Session(region_name=base_config.aws.region)
        session.client("s3").create_bucket(Bucket=base_config.aws.bucket)
        upsert(base_config, built, session)
        changed_path = tmp_path / "threshold.yaml"
        changed_path.write_text(f"extends: {PIPELINE_CONFIG}\nevaluation: {{threshold: 0.75}}\n")
        changed_cfg = load_config(changed_path, env={})
        real_client = boto3.Session.client

        def client(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
            made = real_client(self, name, *args, **kwargs)
            if name == "sagemaker":

                def refuse(**_: object) -> None:
                    error = {"Error": {"Code": "InternalFailure", "Message": "service fault"}}
                    raise ClientError(error, "UpdatePipeline")

                made.update_pipeline = refuse
            return made

        monkeypatch.setattr(boto3.Session, "client", client)
        with pytest.raises(ClientError, match="service fault"):
            upsert(changed_cfg, build(changed_cfg), session)
        monkeypatch.undo()
        published = session.client("sagemaker").describe_pipeline(
            PipelineName=base_config.pipeline.name
        )["PipelineDefinition"]
        assert published == built.definition, "a failed update must leave the old definition"


class _Raw:
    """A minimal raw HTTP body for botocore's AWSResponse."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object):  # type: ignore[no-untyped-def]
        yield self._body

    def read(self, *_: object) -> bytes:
        return self._body


def test_retry_policy_retries_a_runtime_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build
) -> None:
    from runtime import jobs

    config = tmp_path / "c.yaml"
    config.write_text(
        SMALL.format(local=ROOT / "configs" / "local.yaml").replace(
            "num_round: 400", "num_round: 20"
        )
        + "retry: {job: {interval_seconds: 1, max_attempts: 2}}\n"
    )
    cfg = load_config(config, env={})
    real = jobs.run_processing_job
    failures = []

    def flaky(name, request, store, sandbox, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(name)
            raise OSError("disk hiccup while staging inputs")
        return real(name, request, store, sandbox, *args, **kwargs)

    monkeypatch.setattr(jobs, "run_processing_job", flaky)
    run = run_local(cfg, build(cfg), workspace=tmp_path / "ws", quiet=True)
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    assert failures and run.execution.steps["Profile"].attempts == 2  # the first job

    failures.clear()
    monkeypatch.setattr(
        jobs, "run_processing_job", lambda *a, **k: (_ for _ in ()).throw(OSError("disk gone"))
    )
    run = run_local(cfg, build(cfg), workspace=tmp_path / "ws2", quiet=True)
    preprocess = run.execution.steps["Profile"]
    assert preprocess.status == "Failed" and preprocess.attempts == 2
    assert preprocess.failure_reason == "SageMaker.JOB_INTERNAL_ERROR: disk gone"
