"""`make run-local`: the published definition, executed by the host-process runtime.

Only the session differs from SageMaker: the document is the one `make upsert` publishes, its
code objects are placed in the local artifact store exactly as upsert uploads them, and the data
input is passed as the InputDataUri parameter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Config
from config.data import is_sample
from config.parameters import (
    INPUT_DATA_URI,
    REGISTER_NEW_BASELINE,
    SCORING_DATA_URI,
    SKIP_DATA_QUALITY_CHECK,
)
from config.paths import LOCAL_WORKSPACE
from pipelines.approval import Decision
from pipelines.document import BuiltPipeline
from pipelines.errors import UsageError
from runtime.engine import LocalPipelineRunner
from runtime.execution import Execution, Hooks, StepRecord, processing_output_file
from runtime.files import reported, write_atomic
from runtime.state import CallbackStatus, LocalState, StateError
from runtime.store import StoreError
from steps import names as steps
from tabular.contract import (
    CALLBACK_ARGUMENTS,
    CALLBACK_EXECUTION_ARN,
    ExecutionStatus,
    StepStatus,
    ViolationCheck,
)
from tabular.names import (
    EVALUATION_FILE,
    EVALUATION_OUTPUT,
    PARQUET_SUFFIX,
    REPORT_KEYS,
    TEST,
    VALUE_KEY,
)

WORKSPACE_ENV = "PIPELINE_LOCAL_WORKSPACE"  # where local runs keep their store and state
LAST_RUN = "last-run.json"
LOCAL_REVIEWER = "local-policy"


class LocalRunError(UsageError):
    """A local run that cannot start as configured; the message names the input and the fix."""


@dataclass(frozen=True)
class LocalRun:
    execution: Execution
    metrics: dict[str, float]
    oracle_auc: float | None
    bootstrapped_baseline: bool
    advice: tuple[str, ...] = ()
    report: Path | None = None
    """The run's report.html on this machine (None when Evaluate did not finish)."""


def default_workspace() -> Path:
    return Path(os.environ.get(WORKSPACE_ENV) or LOCAL_WORKSPACE)


def runner_for(cfg: Config, workspace: Path | None = None) -> LocalPipelineRunner:
    return LocalPipelineRunner(
        workspace or default_workspace(), cfg.aws.region, max_parallel=os.cpu_count() or 2
    )


def input_uri(cfg: Config, runner: LocalPipelineRunner) -> str:
    """The InputDataUri a local run passes: the built-in data, a local file, or a stored object."""
    uri = cfg.data.input_uri
    if is_sample(uri):
        from pipelines.sample_data import ensure_dataset

        sample = cfg.sample_data
        path = runner.workspace / "data" / f"default-{sample.rows}-{sample.seed}.csv"
        return ensure_dataset(path, rows=sample.rows, seed=sample.seed).resolve().as_uri()
    return existing_data(runner, uri, "data.input_uri")


def existing_data(runner: LocalPipelineRunner, uri: str, key: str) -> str:
    """``uri`` when a local run can read it; else the error names the config key and the fix."""
    try:
        path = runner.store.path(uri)
    except StoreError as error:
        raise LocalRunError(f"{key}: {error}") from None
    if not path.exists():
        where = "" if uri.startswith("file://") else f" (a local run reads s3:// from {path})"
        raise LocalRunError(
            f"{key} {uri!r} does not exist{where}; point {key} at an existing CSV file or "
            "folder, e.g. file:///path/to/data.csv"
        )
    return uri


def answer_approval(
    state: LocalState, token: str, approved: bool, reviewer: str, reason: str
) -> None:
    """Answer the Approval callback and set the package's approval status to match."""
    (callback,) = [c for c in state.callbacks(status=CallbackStatus.PENDING) if c.token == token]
    arn = callback.message[CALLBACK_ARGUMENTS][steps.MODEL_PACKAGE_ARN]
    decision = Decision(approved=approved, reviewer=reviewer, reason=reason)
    try:
        state.set_approval(arn, decision.package_status, decision.approval_description)
    except StateError as error:  # e.g. its model archive is gone: nothing is approved
        raise LocalRunError(str(error)) from None
    if approved:
        state.answer_callback(token, outputs=decision.output_parameters)
    else:
        state.answer_callback(token, failure_reason=decision.failure_reason)


def _policy_hook(
    cfg: Config, wait_for_approval: bool
) -> Callable[[LocalState, str, dict[str, Any]], None]:
    policy = "wait" if wait_for_approval else cfg.approval.local_policy

    def on_callback(state: LocalState, token: str, message: dict[str, Any]) -> None:
        arguments = message[CALLBACK_ARGUMENTS]
        if policy == "wait":
            execution = message[CALLBACK_EXECUTION_ARN].rsplit("/", 1)[-1]
            print(
                f"  waiting for approval of {arguments[steps.MODEL_PACKAGE_ARN]} "
                f"({arguments[steps.METRIC_NAME]} = {arguments[steps.METRIC_VALUE]}):\n"
                f"    python -m pipelines approve {execution} --reason '...'\n"
                f"    python -m pipelines reject {execution} --reason '...'",
                flush=True,
            )
            return
        approved = policy == "auto-approve"
        answer_approval(state, token, approved, LOCAL_REVIEWER, f"{policy} (approval.local_policy)")

    return on_callback


def _print_step(record: StepRecord) -> None:
    if record.status == StepStatus.EXECUTING:
        print(f"  {record.name:<22} started", flush=True)
    else:
        cached = " (cache hit)" if record.cache_hit else ""
        print(
            f"  {record.name:<22} {record.status.lower()}{cached} in {record.seconds:.1f}s"
            + (f" ({record.note})" if record.note else ""),
            flush=True,
        )


def run_local(
    cfg: Config,
    built: BuiltPipeline,
    *,
    retry: str | None = None,
    wait_for_approval: bool = False,
    approval_timeout: float | None = None,
    parameters: dict[str, Any] | None = None,
    workspace: Path | None = None,
    quiet: bool = False,
) -> LocalRun:
    runner = runner_for(cfg, workspace)
    if retry and not (runner.execution_dir(retry) / "execution.json").is_file():
        known = sorted(p.name for p in (runner.workspace / "executions").glob("*"))
        raise LocalRunError(
            f"--retry {retry}: no such local execution under {runner.workspace}; "
            f"known executions: {known or 'none'}"
        )
    runner.require_writable()
    again = f"resume with --retry {retry}" if retry else "run again (nothing ran)"
    with reported(runner.workspace, again):
        for artifact in built.code:  # what upsert uploads, placed where the definition names it
            target = runner.store.path(artifact.s3_uri)
            if not target.is_file() or target.read_bytes() != artifact.payload:
                runner.store.put_bytes(artifact.s3_uri, artifact.payload)
        runner.state.ensure_group(cfg.registry.model_package_group, "local runs")
    values: dict[str, Any] = {INPUT_DATA_URI: input_uri(cfg, runner)}
    if cfg.data.scoring_uri:
        values[SCORING_DATA_URI] = existing_data(runner, cfg.data.scoring_uri, "data.scoring_uri")
    values.update(parameters or {})
    bootstrapped = False
    if runner.state.latest_approved(cfg.registry.model_package_group) is None and not retry:
        # A new group has no approved baseline to check drift against: SageMaker's documented
        # first run computes and registers one without checking.
        values.setdefault(SKIP_DATA_QUALITY_CHECK, True)
        values.setdefault(REGISTER_NEW_BASELINE, True)
        bootstrapped = True
    hooks = Hooks(
        on_callback=_policy_hook(cfg, wait_for_approval),
        on_step=None if quiet else _print_step,
        callback_timeout_seconds=approval_timeout or cfg.approval.timeout_seconds,
    )
    execution = runner.start(
        cfg.pipeline.name, json.loads(built.definition), values, hooks=hooks, retry_of=retry
    )
    metrics = evaluation_metrics(runner, execution)
    oracle = sample_oracle_auc(cfg, runner, execution)
    run = LocalRun(
        execution, metrics, oracle, bootstrapped, failure_advice(cfg, execution),
        run_report(runner, execution),
    )  # fmt: skip
    folder = runner.execution_dir(execution.execution_id)
    with reported(runner.workspace / LAST_RUN, f"see {folder}", execution.execution_id):
        write_summary(runner, run)
    return run


def evaluation_metrics(runner: LocalPipelineRunner, execution: Execution) -> dict[str, float]:
    """The metric values of the evaluation report, flattened to name -> value."""
    record = execution.steps.get(steps.EVALUATE)
    if record is None or record.status != StepStatus.SUCCEEDED:
        return {}
    report = json.loads(
        processing_output_file(
            runner.store, record.properties, EVALUATION_OUTPUT, EVALUATION_FILE
        ).read_text()
    )
    metrics = next(v for k, v in report.items() if k in REPORT_KEYS.values())
    return {name: entry[VALUE_KEY] for name, entry in metrics.items()}


def run_report(runner: LocalPipelineRunner, execution: Execution) -> Path | None:
    """The path of the report the run's Evaluate step wrote, if it wrote one."""
    from pipelines.report import ReportNotFound, local_execution_report

    try:
        return local_execution_report(runner, execution.execution_id).html_path
    except ReportNotFound:
        return None


def sample_oracle_auc(
    cfg: Config, runner: LocalPipelineRunner, execution: Execution
) -> float | None:
    """For the built-in data: the AUC of the true probabilities on the same test rows."""
    record = execution.steps.get(steps.PREPROCESS)
    if not is_sample(cfg.data.input_uri) or record is None or record.status != StepStatus.SUCCEEDED:
        return None
    import pandas as pd

    from pipelines.sample_data import oracle_auc

    # The test split's files: test.parquet, or one per Preprocess host (PreprocessInstanceCount).
    folder = processing_output_file(runner.store, record.properties, TEST, "")
    files = sorted(folder.glob(f"{TEST}*{PARQUET_SUFFIX}"))
    test = pd.concat(pd.read_parquet(path) for path in files)
    return float(oracle_auc(test.drop(columns=[cfg.data.target]), test[cfg.data.target]))


SCHEMA_CHECKS = (ViolationCheck.MISSING_COLUMN, ViolationCheck.EXTRA_COLUMN)
"""Model Monitor's violations for a data set whose columns differ from the baseline's."""


def failure_advice(cfg: Config, execution: Execution) -> tuple[str, ...]:
    """What to do about a failure whose cause the step's own message cannot know."""
    record = execution.steps.get(steps.DATA_QUALITY)
    reason = (record.failure_reason or "") if record and record.status == StepStatus.FAILED else ""
    if not any(check in reason for check in SCHEMA_CHECKS):
        return ()
    group = cfg.registry.model_package_group
    return (
        f"the data's columns differ from the drift baseline of model package group {group!r} "
        "(the training data of its latest approved model): this is another data set, not "
        "drift. Either",
        "    register its models in a group of their own: set registry.model_package_group, or",
        "    start a new baseline in this group for one run: data_quality.skip_check: true and "
        "data_quality.register_new_baseline: true (on SageMaker: start the execution with "
        f"{SKIP_DATA_QUALITY_CHECK}=true {REGISTER_NEW_BASELINE}=true)",
    )


def write_summary(runner: LocalPipelineRunner, run: LocalRun) -> Path:
    execution = run.execution
    document = {
        "execution_id": execution.execution_id,
        "pipeline": execution.pipeline,
        "status": execution.status,
        "failure_reason": execution.failure_reason,
        "start": execution.start,
        "end": execution.end,
        "parameters": execution.parameters,
        "bootstrapped_data_quality_baseline": run.bootstrapped_baseline,
        "advice": list(run.advice),
        "steps": [
            {
                "name": r.name,
                "type": r.type,
                "status": r.status,
                "cacheable": r.cacheable,
                "cache_hit": r.cache_hit,
                "start": r.start,
                "end": r.end,
                "seconds": r.seconds,
                "peak_rss_bytes": r.peak_rss_bytes,
                "failure_reason": r.failure_reason,
            }
            for r in execution.steps.values()
        ],
        "metrics": run.metrics,
        "oracle_auc": run.oracle_auc,
        "report": str(run.report) if run.report else None,
    }
    return write_atomic(runner.workspace / LAST_RUN, json.dumps(document, indent=2) + "\n")


def summary_table(run: LocalRun) -> str:
    execution = run.execution
    lines = [f"execution {execution.execution_id}: {execution.status}"]
    lines.append(f"  {'step':<22} {'type':<13} {'status':<12} {'seconds':>8}  cache")
    for r in execution.steps.values():
        seconds = "" if r.seconds is None else f"{r.seconds:8.2f}"
        cache = "hit" if r.cache_hit else ("miss" if r.cacheable else "-")
        lines.append(f"  {r.name:<22} {r.type:<13} {r.status:<12} {seconds:>8}  {cache}")
    if run.metrics:
        lines.append("  metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in run.metrics.items()))
    if run.oracle_auc is not None and "auc" in run.metrics:
        gap = run.oracle_auc - run.metrics["auc"]
        lines.append(f"  oracle auc {run.oracle_auc:.4f}, gap to oracle {gap:.4f}")
    if run.report is not None:
        lines.append(f"  report: {run.report}")
    if execution.status == ExecutionStatus.FAILED:
        lines.append(f"  failure: {execution.failure_reason}")
        lines += [f"  {line}" for line in run.advice]
    if run.bootstrapped_baseline:
        register = execution.steps.get(steps.REGISTER)
        if register is not None and register.status == StepStatus.SUCCEEDED:
            lines.append(
                "  first run in this model package group: data-quality baseline registered, "
                "drift not checked"
            )
        else:
            lines.append(
                "  first run in this model package group: drift not checked, and no baseline "
                "was registered (the run ended before Register); the next run starts the "
                "baseline again"
            )
    return "\n".join(lines)
