"""One run of the stage's local monitoring schedule: data quality of captured requests.

Model Monitor's data-quality job reads the endpoint's captured inputs, profiles them and checks
them against the baseline the package carries (its DriftCheckBaselines / ModelDataQuality
statistics and constraints). This does the same with the runtime's analyzer
(runtime/monitor.py): the captured CSV inputs of the endpoint (every variant) become one data set
whose columns are the baseline's features in request order; the baseline's target column, which
requests never carry, is left out of the check.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import UsageError
from pipelines.local_endpoint.endpoint import MONITORING_FILE, endpoint_folder
from pipelines.local_endpoint.package import LocalPackage
from runtime.engine import LocalPipelineRunner
from runtime.monitor.contract import MonitorError
from runtime.monitor.job import load_json, run_baseline_job
from runtime.serving.router import Capture
from runtime.store import StoreError
from tabular.files import write_atomic

MONITORING_DIR = "monitoring"


class MonitoringRefused(UsageError):
    """The check cannot run; the message says what is missing and the fix."""


@dataclass(frozen=True)
class MonitoringRun:
    records: int
    violations: list[dict[str, str]]
    report: Path

    def summary(self) -> str:
        if not self.violations:
            return f"data quality: {self.records} captured record(s), no violation ({self.report})"
        found = "; ".join(
            f"{v['feature_name']}: {v['constraint_check_type']}" for v in self.violations[:10]
        )
        return (
            f"data quality: {self.records} captured record(s), {len(self.violations)} "
            f"violation(s): {found} ({self.report})"
        )


def captured_rows(capture: Capture, endpoint: str) -> list[str]:
    """The CSV request lines captured for the endpoint, oldest file first."""
    rows: list[str] = []
    for path in sorted(Path(capture.destination, endpoint).rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)["captureData"]["endpointInput"]
            except (ValueError, KeyError):
                continue  # a record being written, or one without input
            if data.get("encoding") == "CSV":
                rows += [r for r in data["data"].splitlines() if r.strip()]
    return rows


def _baseline_without(document: dict[str, Any], target: str) -> dict[str, Any]:
    return {**document, "features": [f for f in document["features"] if f["name"] != target]}


def run_monitoring(
    runner: LocalPipelineRunner,
    stage_name: str,
    stage: Any,
    package: LocalPackage,
    capture: Capture | None,
    target: str,
) -> MonitoringRun:
    """Check what the endpoint captured against the package's data-quality baseline."""
    where = f"deploy.stages.{stage_name}"
    if capture is None or "Input" not in capture.modes:
        raise MonitoringRefused(
            f"{where}.data_capture does not capture Input: monitoring has no data; enable it "
            "with capture [Input, Output] and deploy again"
        )
    statistics_uri, constraints_uri = package.baseline()
    if not constraints_uri:
        raise MonitoringRefused(
            f"model package {package.label} carries no data-quality baseline (constraints); "
            "register it with the pipeline's DataQuality step"
        )
    rows = captured_rows(capture, stage.endpoint_name)
    if not rows:
        raise MonitoringRefused(
            f"local endpoint {stage.endpoint_name} has captured no request yet; send some "
            f"(sampling {capture.sampling_percent}%) and run the check again"
        )
    folder = endpoint_folder(runner, stage) / MONITORING_DIR / time.strftime("%Y%m%dT%H%M%S")
    try:
        constraints = load_json(runner.store.path(constraints_uri), "constraints")
        statistics = (
            load_json(runner.store.path(statistics_uri), "statistics") if statistics_uri else None
        )
    except (MonitorError, StoreError) as error:
        raise MonitoringRefused(f"model package {package.label}: {error}") from None
    features = [f["name"] for f in constraints["features"] if f["name"] != target]
    fields = rows[0].count(",") + 1
    if fields != len(features):
        raise MonitoringRefused(
            f"captured requests have {fields} field(s), the baseline of {package.label} has "
            f"{len(features)} feature(s) besides the target {target!r}: {features}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / "captured.csv"
    write_atomic(dataset, ",".join(features) + "\n" + "\n".join(rows) + "\n")
    baseline_constraints = folder / "baseline-constraints.json"
    write_atomic(baseline_constraints, json.dumps(_baseline_without(constraints, target)))
    baseline_statistics = None
    if statistics is not None:
        baseline_statistics = folder / "baseline-statistics.json"
        write_atomic(baseline_statistics, json.dumps(_baseline_without(statistics, target)))
    try:
        result = run_baseline_job(dataset, True, folder, baseline_statistics, baseline_constraints)
    except MonitorError as error:
        raise MonitoringRefused(f"monitoring of {stage.endpoint_name}: {error}") from None
    assert result.violations_path is not None
    run = MonitoringRun(len(rows), result.violations, result.violations_path)
    write_atomic(
        endpoint_folder(runner, stage) / MONITORING_FILE,
        json.dumps({"when": time.time(), "summary": run.summary()}),
    )
    return run
