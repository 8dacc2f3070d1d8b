"""The whole graph end to end on this machine: the published definition, the host runtime."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from config import Config, load_config
from config.paths import ROOT, SCRIPTS_DIR
from pipelines.document import BuiltPipeline
from pipelines.local import LAST_RUN, LocalRun, run_local, runner_for, summary_table
from pipelines.report import find_local
from tabular.names import REPORT_IMAGE_PROPERTY, REPORT_PROPERTY

SMALL = """\
extends: {local}
sample_data: {{rows: 3000, seed: 11}}
training:
  hyperparameters: {{num_round: 40, early_stopping_rounds: 10}}
# 3000 rows: the test AUC moves by about +-0.05 with the draw, so the gate sits well below it
# (these runs test the graph; the gate's own tests set MetricThreshold).
evaluation: {{bootstrap_rounds: 5, threshold: 0.6}}
approval: {{local_policy: {policy}}}
"""
CACHEABLE = ("Profile", "Preprocess", "FitTransformer", "DataQuality", "Train", "Evaluate")


def small_config(tmp_path: Path, policy: str = "auto-approve", extra: str = "") -> Config:
    path = tmp_path / f"{policy}.yaml"
    path.write_text(
        SMALL.format(local=ROOT / "configs" / "local.yaml", policy=policy) + extra, encoding="utf-8"
    )
    return load_config(path, env={})


def statuses(run: LocalRun) -> dict[str, str]:
    return {name: record.status for name, record in run.execution.steps.items()}


def hits(run: LocalRun) -> set[str]:
    return {name for name, record in run.execution.steps.items() if record.cache_hit}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return small_config(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def built_small(cfg: Config, build) -> BuiltPipeline:
    return build(cfg)


@pytest.fixture(scope="module")
def first(cfg: Config, built_small: BuiltPipeline, workspace: Path) -> LocalRun:
    return run_local(cfg, built_small, workspace=workspace, quiet=True)


@pytest.fixture(scope="module")
def second(cfg: Config, built_small: BuiltPipeline, workspace: Path, first: LocalRun) -> LocalRun:
    return run_local(cfg, built_small, workspace=workspace, quiet=True)


def test_first_run_succeeds_end_to_end(first: LocalRun, workspace: Path) -> None:
    assert first.execution.status == "Succeeded", first.execution.failure_reason
    assert set(statuses(first).values()) == {"Succeeded", "NotExecuted"}
    assert statuses(first)["MetricBelowThreshold"] == "NotExecuted"
    assert first.bootstrapped_baseline and not hits(first)
    assert 0.6 < first.metrics["auc"] <= 1.0
    assert first.oracle_auc is not None and abs(first.oracle_auc - first.metrics["auc"]) < 0.1
    summary = json.loads((workspace / LAST_RUN).read_text())
    assert summary["execution_id"] == first.execution.execution_id
    assert {s["name"] for s in summary["steps"]} == set(first.execution.steps)
    assert summary["metrics"]["auc"] == first.metrics["auc"]
    # the reviewer's report of the run just finished: printed, recorded, on disk
    assert first.report is not None and first.report.is_file()
    assert summary["report"] == str(first.report)
    assert f"  report: {first.report}" in summary_table(first).splitlines()
    assert 'id="data-quality"' in first.report.read_text(encoding="utf-8")


def test_registry_holds_a_pending_then_approved_package(
    first: LocalRun, cfg: Config, workspace: Path
) -> None:
    register = first.execution.steps["Register"].properties
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    package = runner_for(cfg, workspace).state.package(register["ModelPackageArn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert "auto-approve" in package["ApprovalDescription"]
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert runner_for(cfg, workspace).store.path(metrics_uri).is_file()
    baselines = package["DriftCheckBaselines"]["ModelDataQuality"]
    assert runner_for(cfg, workspace).store.path(baselines["Statistics"]["S3Uri"]).is_file()
    smoke = package["CustomerMetadataProperties"]["SmokeSampleS3Uri"]  # deploy's smoke test
    assert runner_for(cfg, workspace).store.path(smoke).is_file()
    # the package names its report; the execution and the package lead to the same page
    metadata = package["CustomerMetadataProperties"]
    page = runner_for(cfg, workspace).store.path(metadata[REPORT_PROPERTY])
    assert page == first.report
    image = metadata[REPORT_IMAGE_PROPERTY]
    assert runner_for(cfg, workspace).store.path(image).read_bytes().startswith(b"\x89PNG")
    runner = runner_for(cfg, workspace)
    assert find_local(runner, package["ModelPackageArn"]).html_path == page
    assert find_local(runner, first.execution.execution_id).html_path == page


def test_predictions_exist_for_every_test_row(
    first: LocalRun, cfg: Config, workspace: Path
) -> None:
    store = runner_for(cfg, workspace).store
    preprocess = first.execution.steps["Preprocess"].properties["ProcessingOutputConfig"]["Outputs"]
    scoring_uri = next(o for o in preprocess if o["OutputName"] == "scoring")["S3Output"]["S3Uri"]
    (scoring,) = store.objects(scoring_uri)
    rows = scoring.path.read_text().splitlines()
    output_uri = first.execution.steps["BatchScore"].properties["TransformOutput"]["S3OutputPath"]
    (predictions,) = store.objects(output_uri)
    assert predictions.relative.endswith(".csv.out")
    lines = predictions.path.read_text().splitlines()
    assert len(lines) == len(rows) > 0
    for row, line in zip(rows, lines, strict=True):
        assert line.startswith(row + ",")
        assert 0.0 <= float(line.rsplit(",", 1)[1]) <= 1.0


def test_second_run_reuses_every_cacheable_step(first: LocalRun, second: LocalRun) -> None:
    assert second.execution.status == "Succeeded", second.execution.failure_reason
    # The first run had no approved baseline (SkipCheck/RegisterNewBaseline were set), so the
    # second runs the real drift check. Evaluate reads the DataQuality step's statistics (its
    # report shows them): new statistics objects are new inputs, so it runs again, once; the
    # third run hits it (below). Every other cacheable step is served from cache.
    assert {"Profile", "Preprocess", "FitTransformer", "Train"} <= hits(second)
    assert not {"DataQuality", "Evaluate"} & hits(second)
    record = second.execution.steps["Preprocess"]
    assert record.cache_source == first.execution.execution_id
    assert second.metrics == first.metrics
    # As on SageMaker: registration and model creation are never cached.
    assert not {"Register", "CreateModel"} & hits(second)


def test_third_run_is_all_cache_hits_where_sagemaker_caches(
    cfg: Config, built_small: BuiltPipeline, workspace: Path, second: LocalRun
) -> None:
    third = run_local(cfg, built_small, workspace=workspace, quiet=True)
    assert set(CACHEABLE) <= hits(third)


def test_editing_train_script_reruns_train_and_what_follows_only(
    cfg: Config, workspace: Path, second: LocalRun, tmp_path: Path, build
) -> None:
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, scripts)
    with (scripts / "train.py").open("a", encoding="utf-8") as handle:
        handle.write("\n# an edit that changes the code's hash\n")
    edited = run_local(cfg, build(cfg, scripts_dir=scripts), workspace=workspace, quiet=True)
    assert edited.execution.status == "Succeeded", edited.execution.failure_reason
    assert {"Preprocess", "DataQuality"} <= hits(edited)
    assert not {"Train", "Evaluate", "BatchScore"} & hits(edited)


def test_failing_condition_ends_in_the_fail_step(
    cfg: Config, built_small: BuiltPipeline, workspace: Path, first: LocalRun
) -> None:
    before = len(runner_for(cfg, workspace).state.packages(cfg.registry.model_package_group))
    run = run_local(
        cfg, built_small, workspace=workspace, quiet=True, parameters={"MetricThreshold": 0.999}
    )
    assert run.execution.status == "Failed"
    fail = run.execution.steps["MetricBelowThreshold"]
    assert fail.status == "Failed"
    assert f"auc on the test split was {first.metrics['auc']}" in (fail.failure_reason or "")
    assert "0.999" in (fail.failure_reason or "")
    assert statuses(run)["Register"] == "NotExecuted"
    # the failed gate's report is written, and says why
    assert run.report is not None
    page = run.report.read_text(encoding="utf-8")
    assert 'class="verdict fail"' in page and "auc &gt;= 0.999" in page
    after = len(runner_for(cfg, workspace).state.packages(cfg.registry.model_package_group))
    assert after == before, "a failed gate must not register a model"


def test_rejection_ends_the_run_with_the_reviewers_reason(tmp_path: Path, build) -> None:
    cfg = small_config(tmp_path, policy="auto-reject")
    run = run_local(cfg, build(cfg), workspace=tmp_path / "ws", quiet=True)
    assert run.execution.status == "Failed"
    approval = run.execution.steps["Approval"]
    assert approval.status == "Failed"
    assert (
        approval.failure_reason == "Rejected by local-policy: auto-reject (approval.local_policy)"
    )
    assert statuses(run)["BatchScore"] == "NotStarted"
    arn = run.execution.steps["Register"].properties["ModelPackageArn"]
    assert runner_for(cfg, tmp_path / "ws").state.package(arn)["ModelApprovalStatus"] == "Rejected"


def test_waiting_run_is_answered_from_another_terminal(tmp_path: Path, build) -> None:
    from pipelines.local import answer_approval

    cfg = small_config(tmp_path, policy="wait")
    workspace = tmp_path / "ws"
    state = runner_for(cfg, workspace).state

    finished = threading.Event()

    def reviewer() -> None:  # answers whenever the run gets there, however slow the machine
        while not finished.is_set():
            pending = state.callbacks(status="pending")
            if pending:
                answer_approval(state, pending[0].token, True, "alice", "looks good")
                return
            time.sleep(0.1)

    thread = threading.Thread(target=reviewer)
    thread.start()
    try:
        run = run_local(cfg, build(cfg), workspace=workspace, quiet=True, approval_timeout=1800)
    finally:
        finished.set()
        thread.join()
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    outputs = run.execution.steps["Approval"].properties["OutputParameters"]
    assert {o["Name"]: o["Value"] for o in outputs}["reviewer"] == "alice"


@pytest.mark.parametrize(
    ("loader", "problem_type", "metric"),
    [("load_breast_cancer", "binary", "auc"), ("load_diabetes", "regression", "r2")],
)
def test_real_datasets_run_through_a_minimal_config(
    loader: str, problem_type: str, metric: str, tmp_path: Path, build
) -> None:
    import sklearn.datasets

    frame = getattr(sklearn.datasets, loader)(as_frame=True).frame
    data = tmp_path / "data.csv"
    frame.rename(columns={"target": "label"}).to_csv(data, index=False, header=False)
    columns = [str(c) for c in frame.columns[:-1]] + ["label"]
    config = tmp_path / "minimal.yaml"
    config.write_text(
        "data:\n"
        f"  input_uri: {data.as_uri()}\n"
        "  target: label\n"
        f"  problem_type: {problem_type}\n"
        f"  columns: [{', '.join(columns)}]\n"
        "approval: {local_policy: auto-approve}\n",
        encoding="utf-8",
    )
    cfg = load_config(config, env={})
    run = run_local(cfg, build(cfg), workspace=tmp_path / "ws", quiet=True)
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    assert metric in run.metrics
    scored = pd.read_csv(
        next(
            o.path
            for o in runner_for(cfg, tmp_path / "ws").store.objects(
                run.execution.steps["BatchScore"].properties["TransformOutput"]["S3OutputPath"]
            )
        ),
        header=None,
    )
    assert scored.shape[1] == len(columns)  # the features, then the prediction


def test_independent_steps_run_concurrently(first: LocalRun) -> None:
    steps = first.execution.steps
    quality, fit, train = steps["DataQuality"], steps["FitTransformer"], steps["Train"]
    assert quality.start and fit.start and train.start and quality.end and train.end
    # DataQuality needs Preprocess only: it runs beside FitTransformer and Train, which follow
    assert quality.start < train.end and fit.start < quality.end, "DataQuality waited for Train"


def test_script_error_is_the_step_failure_reason(tmp_path: Path, build) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b,outcome\n1,x,0\n2,y,1\n", encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data: {{input_uri: '{data.as_uri()}', target: label, problem_type: binary}}\n",
        encoding="utf-8",
    )
    cfg = load_config(config, env={})
    run = run_local(cfg, build(cfg), workspace=tmp_path / "ws", quiet=True)
    assert run.execution.status == "Failed"
    reason = run.execution.steps["Profile"].failure_reason or ""  # Preprocess's first pass
    assert "target column 'label' not found" in reason and "Traceback" not in reason
    assert run.execution.failure_reason == f"Step Profile failed: {reason}"
    assert statuses(run)["Train"] == "NotStarted"
    assert runner_for(cfg, tmp_path / "ws").state.packages() == []


def test_retry_resumes_from_the_failed_step(tmp_path: Path, build) -> None:
    waiting = small_config(tmp_path, policy="wait")
    workspace = tmp_path / "ws"
    built_small = build(waiting)
    failed = run_local(waiting, built_small, workspace=workspace, quiet=True, approval_timeout=0.5)
    assert failed.execution.status == "Failed"
    assert "no answer to callback" in (failed.execution.steps["Approval"].failure_reason or "")

    approving = small_config(tmp_path, policy="auto-approve")
    retried = run_local(
        approving, built_small, workspace=workspace, quiet=True, retry=failed.execution.execution_id
    )
    assert retried.execution.execution_id == failed.execution.execution_id
    assert retried.execution.status == "Succeeded", retried.execution.failure_reason
    for name in ("Preprocess", "Train", "Evaluate", "Register"):
        assert retried.execution.steps[name].start == failed.execution.steps[name].start, name
    assert retried.execution.steps["BatchScore"].status == "Succeeded"


def test_retry_of_an_unknown_execution_is_a_usage_error(tmp_path: Path, build) -> None:
    from pipelines.local import LocalRunError

    cfg = small_config(tmp_path)
    with pytest.raises(LocalRunError, match="--retry nope: no such local execution"):
        run_local(cfg, build(cfg), workspace=tmp_path / "ws", quiet=True, retry="nope")
