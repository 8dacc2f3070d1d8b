"""Nothing served, registered or approved that is not really there.

A cache entry (or a succeeded step of a resumed execution) whose outputs are gone or changed is
not reused: the step runs again. The local registry refuses to register, create or approve a
model whose artifacts are missing, as SageMaker's CreateModel does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from config import Config, load_config
from config.paths import ROOT
from pipelines.document import BuiltPipeline
from pipelines.local import LocalRun, run_local, runner_for
from pipelines.sample_data import write_csv
from runtime import jobs
from runtime.state import LocalState, StateError
from runtime.store import LocalS3
from tabular.contract import ApprovalStatus

SMALL = """\
extends: {local}
data: {{input_uri: "{data}"}}
training:
  hyperparameters: {{num_round: 40, early_stopping_rounds: 10}}
evaluation: {{bootstrap_rounds: 5}}
"""
MODEL = "s3://bucket/runs/1/Train/output/model.tar.gz"


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small config whose data lives outside the workspace (copies share its cache keys)."""
    folder = tmp_path_factory.mktemp("config")
    data = write_csv(folder / "data.csv", rows=3000, seed=11)
    path = folder / "small.yaml"
    path.write_text(SMALL.format(local=ROOT / "configs" / "local.yaml", data=data.as_uri()))
    return path


@pytest.fixture(scope="module")
def cfg(config_file: Path) -> Config:
    return load_config(config_file, env={})


@pytest.fixture(scope="module")
def built_small(cfg: Config, build: Callable[..., BuiltPipeline]) -> BuiltPipeline:
    return build(cfg)


@pytest.fixture(scope="module")
def first_workspace(
    cfg: Config, built_small: BuiltPipeline, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    workspace = tmp_path_factory.mktemp("first") / "ws"
    run = run_local(cfg, built_small, workspace=workspace, quiet=True)
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    return workspace


@pytest.fixture
def workspace(first_workspace: Path, tmp_path: Path) -> Path:
    """A copy of a workspace after one successful run (store paths are relative to it)."""
    copy = tmp_path / "ws"
    shutil.copytree(first_workspace, copy, symlinks=True)
    return copy


def output(run: LocalRun, workspace: Path, step: str) -> Path:
    """The local file behind a step's first published output."""
    record = run.execution.steps[step]
    (uri, *_) = sorted(record.outputs)
    return LocalS3(workspace / "s3").path(uri)


def last_run(cfg: Config, workspace: Path) -> LocalRun:
    import json

    from pipelines.local import LAST_RUN

    summary = json.loads((workspace / LAST_RUN).read_text())
    runner = runner_for(cfg, workspace)
    execution, _ = runner.load(summary["execution_id"])
    return LocalRun(execution, {}, None, False)


def model_archive(cfg: Config, workspace: Path, run: LocalRun) -> Path:
    uri = run.execution.steps["Train"].properties["ModelArtifacts"]["S3ModelArtifacts"]
    return runner_for(cfg, workspace).store.path(uri)


def test_a_cached_step_whose_output_is_gone_runs_again_and_the_run_succeeds(
    cfg: Config, built_small: BuiltPipeline, workspace: Path
) -> None:
    before = last_run(cfg, workspace)
    model_archive(cfg, workspace, before).unlink()

    run = run_local(cfg, built_small, workspace=workspace, quiet=True)
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    train = run.execution.steps["Train"]
    assert not train.cache_hit and "model.tar.gz is gone" in (train.note or ""), train
    assert run.execution.steps["Preprocess"].cache_hit, "what is still there is reused"
    register = run.execution.steps["Register"].properties
    package = runner_for(cfg, workspace).state.package(register["ModelPackageArn"])
    model_data = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert runner_for(cfg, workspace).store.path(model_data).is_file()
    assert package["ModelApprovalStatus"] == ApprovalStatus.APPROVED


def test_a_changed_output_is_not_reused_and_a_restored_copy_is(
    cfg: Config, built_small: BuiltPipeline, workspace: Path
) -> None:
    before = last_run(cfg, workspace)
    split = output(before, workspace, "Preprocess")
    data = split.read_bytes()
    split.unlink()
    split.write_bytes(data)  # the same bytes, a new file and time: still the step's output
    report = output(before, workspace, "Evaluate")
    text = report.read_text()
    digit = max(i for i, c in enumerate(text) if c.isdigit())
    changed = text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1 :]
    report.write_text(changed)  # one digit: the same size, other bytes

    run = run_local(cfg, built_small, workspace=workspace, quiet=True)
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    assert run.execution.steps["Preprocess"].cache_hit, "a restored identical copy is reused"
    evaluate = run.execution.steps["Evaluate"]
    assert not evaluate.cache_hit and "changed" in (evaluate.note or ""), evaluate
    assert report.read_text() == changed, "another execution's files are never rewritten"


def test_retry_runs_again_a_succeeded_step_whose_output_is_gone(
    cfg: Config, built_small: BuiltPipeline, workspace: Path
) -> None:
    before = last_run(cfg, workspace)
    archive = model_archive(cfg, workspace, before)
    archive.unlink()

    run = run_local(
        cfg, built_small, workspace=workspace, quiet=True, retry=before.execution.execution_id
    )
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    steps = run.execution.steps
    assert "model.tar.gz is gone" in (steps["Train"].note or ""), steps["Train"]
    assert steps["Train"].attempts == 1 and not steps["Train"].cache_hit
    assert steps["Preprocess"].attempts == 1 and steps["Preprocess"].start == (
        before.execution.steps["Preprocess"].start
    ), "a step whose outputs are there is kept"
    assert archive.is_file()
    assert steps["BatchScore"].status == "Succeeded" and steps["BatchScore"].attempts == 1


def test_a_gone_drift_baseline_fails_the_check_with_the_fix(
    cfg: Config, built_small: BuiltPipeline, workspace: Path
) -> None:
    runner = runner_for(cfg, workspace)
    approved = runner.state.latest_approved(cfg.registry.model_package_group)
    assert approved is not None
    statistics = approved["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    runner.store.path(statistics).unlink()

    run = run_local(cfg, built_small, workspace=workspace, quiet=True)
    quality = run.execution.steps["DataQuality"]
    assert quality.status == "Failed"
    reason = quality.failure_reason or ""
    assert statistics in reason and "RegisterNewBaseline=true" in reason, reason


# The registry and models refuse what is not there ------------------------------------------


def registry(tmp_path: Path) -> tuple[LocalState, LocalS3]:
    store = LocalS3(tmp_path / "s3")
    state = LocalState(tmp_path / "state.db", store=store)
    state.ensure_group("g")
    return state, store


def package_request(model: str = MODEL) -> dict:
    return {
        "ModelPackageGroupName": "g",
        "InferenceSpecification": {"Containers": [{"Image": "i", "ModelDataUrl": model}]},
        "ModelMetrics": {"ModelQuality": {"Statistics": {"S3Uri": "s3://bucket/eval.json"}}},
    }


def test_register_refuses_a_package_whose_artifacts_are_missing(tmp_path: Path) -> None:
    state, store = registry(tmp_path)
    store.put_bytes("s3://bucket/eval.json", b"{}")
    with pytest.raises(StateError, match="ModelDataUrl 's3://bucket/runs/1/Train/output/model"):
        state.register_package(package_request(), "e1")
    assert state.packages() == [], "nothing is registered"
    store.put_bytes(MODEL, b"archive")
    assert state.register_package(package_request(), "e1")["ModelPackageVersion"] == 1


def test_create_model_refuses_missing_model_data_and_code(tmp_path: Path) -> None:
    state, store = registry(tmp_path)
    request = {
        "PrimaryContainer": {
            "ModelDataUrl": MODEL,
            "Environment": {"SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/code/sourcedir.tar.gz"},
        }
    }
    with pytest.raises(StateError) as caught:
        state.create_model("m", request, "e1")
    message = str(caught.value)
    assert "PrimaryContainer.ModelDataUrl" in message and "SAGEMAKER_SUBMIT_DIRECTORY" in message
    with pytest.raises(StateError, match="does not exist"):
        state.model("m")


def test_approval_refuses_a_package_whose_model_is_gone(tmp_path: Path) -> None:
    state, store = registry(tmp_path)
    store.put_bytes(MODEL, b"archive")
    store.put_bytes("s3://bucket/eval.json", b"{}")
    arn = state.register_package(package_request(), "e1")["ModelPackageArn"]
    store.path(MODEL).unlink()
    with pytest.raises(StateError, match="cannot be approved"):
        state.set_approval(arn, ApprovalStatus.APPROVED, "looks fine")
    assert state.package(arn)["ModelApprovalStatus"] == "PendingManualApproval"
    assert state.set_approval(arn, "Rejected", "archive gone")["ModelApprovalStatus"] == "Rejected"


def test_local_approve_of_a_package_whose_model_is_gone_exits_2(
    cfg: Config, config_file: Path, workspace: Path
) -> None:
    runner = runner_for(cfg, workspace)
    store, state = runner.store, runner.state
    store.put_bytes(MODEL, b"archive")
    store.put_bytes("s3://bucket/eval.json", b"{}")
    package = state.register_package(
        {**package_request(), "ModelPackageGroupName": cfg.registry.model_package_group}, "e9"
    )
    from steps.names import MODEL_PACKAGE_ARN

    arguments = {MODEL_PACKAGE_ARN: package["ModelPackageArn"]}
    state.open_callback("t", "e9", "Approval", "", {"arguments": arguments})
    store.path(MODEL).unlink()
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "approve", "e9", "--config", str(config_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PIPELINE_LOCAL_WORKSPACE": str(workspace)},
        timeout=600,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "cannot be approved" in result.stderr
    assert (
        state.package(package["ModelPackageArn"])["ModelApprovalStatus"] != ApprovalStatus.APPROVED
    )


def test_transform_advice_for_a_missing_model_archive_can_be_followed(tmp_path: Path) -> None:
    model = {
        "ModelName": "m",
        "PrimaryContainer": {"ModelDataUrl": MODEL, "Environment": {"SAGEMAKER_PROGRAM": "x.py"}},
    }
    request = {"ModelName": "m", "TransformInput": {}, "TransformOutput": {}}
    outcome = jobs.run_transform_job(
        "t", request, model, LocalS3(tmp_path / "s3"), tmp_path / "sandbox"
    )
    reason = outcome.failure_reason or ""
    assert "does not exist" in reason and "run the training step" not in reason, reason
    assert "Run the pipeline again" in reason, reason
