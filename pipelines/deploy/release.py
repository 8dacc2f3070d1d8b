"""The release record, the load run's verdict and the manual gate's message, as plain data.

A release (infra/model-deploy.yaml) deploys an approved package to staging, tests it there, waits
for a person and deploys to production. What passes between those steps is one JSON file, the
release record: `deploy --record FILE` writes it after a deploy, `smoke --record` and
`load --record` add their results, `approval-message --record` turns it (with the package's
metrics) into the message the manual gate sends, and `deploy --release FILE` deploys exactly the
version it names, so production gets what staging tested, whatever was approved since.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.deploy import LoadTestSection
from pipelines.errors import UsageError
from tabular import names as layout

SHOWN_ERRORS = 3
RECORD_KEYS = ("group", "version", "package_arn", "stage", "endpoint", "config_name")


class ReleaseError(UsageError):
    """A release record that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Release:
    group: str
    version: int
    package_arn: str
    stage: str
    endpoint: str
    config_name: str
    results: dict[str, Any] = field(default_factory=dict)  # "smoke", "load": their as_dict()

    def with_result(self, name: str, result: dict[str, Any]) -> Release:
        return Release(**{**self.__dict__, "results": {**self.results, name: result}})

    def write(self, path: Path) -> None:
        document = {**{k: getattr(self, k) for k in RECORD_KEYS}, "results": self.results}
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")  # whole or not at all
        partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(path)

    @classmethod
    def read(cls, path: Path) -> Release:
        fix = "it is written by `make deploy STAGE=staging RECORD=<file>`; deploy staging again"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReleaseError(f"release record {path} does not exist; {fix}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ReleaseError(f"release record {path} is unreadable ({error}); {fix}") from None
        if not isinstance(document, dict) or not set(RECORD_KEYS) <= set(document):
            raise ReleaseError(f"release record {path} lacks {list(RECORD_KEYS)}; {fix}")
        try:
            return cls(
                group=str(document["group"]),
                version=int(document["version"]),
                package_arn=str(document["package_arn"]),
                stage=str(document["stage"]),
                endpoint=str(document["endpoint"]),
                config_name=str(document["config_name"]),
                results=dict(document.get("results") or {}),
            )
        except (TypeError, ValueError) as error:
            raise ReleaseError(f"release record {path}: {error}; {fix}") from None


# --------------------------------------------------------------------------- load run


@dataclass(frozen=True)
class LoadResult:
    """What a bounded load run saw: every request sent, its latency, what went wrong."""

    endpoint: str
    rows_per_request: int
    sent: int
    failed: int
    seconds: float
    latencies_ms: tuple[float, ...]  # of the requests answered correctly
    errors: tuple[str, ...]  # the first few distinct problems
    stopped_by: str  # "requests" | "time"

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the latencies (None: no request succeeded)."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1]

    @property
    def error_rate(self) -> float:
        return self.failed / self.sent if self.sent else 1.0

    def problems(self, settings: LoadTestSection) -> list[str]:
        found = []
        if self.sent == 0:
            found.append("no request was sent")
        elif self.error_rate > settings.max_error_rate:
            found.append(
                f"{self.failed} of {self.sent} requests failed ({self.error_rate:.1%} > "
                f"load_test.max_error_rate {settings.max_error_rate:.1%}): "
                + "; ".join(self.errors)
            )
        p99 = self.percentile(99)
        if settings.max_p99_ms is not None and p99 is not None and p99 > settings.max_p99_ms:
            found.append(f"p99 latency {p99:.1f} ms > load_test.max_p99_ms {settings.max_p99_ms}")
        return found

    def as_dict(self, settings: LoadTestSection) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "requests": self.sent,
            "failed": self.failed,
            "rows_per_request": self.rows_per_request,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.sent / self.seconds, 2) if self.seconds else None,
            "p50_ms": _rounded(self.percentile(50)),
            "p99_ms": _rounded(self.percentile(99)),
            "stopped_by": self.stopped_by,
            "errors": list(self.errors),
            "passed": not self.problems(settings),
        }

    def summary(self, settings: LoadTestSection) -> str:
        shown = self.as_dict(settings)
        text = (
            f"load run on {self.endpoint}: {self.sent} request(s) of {self.rows_per_request} "
            f"row(s) in {shown['seconds']} s (stopped by {self.stopped_by}), {self.failed} "
            f"failed, p50 {shown['p50_ms']} ms, p99 {shown['p99_ms']} ms"
        )
        problems = self.problems(settings)
        return f"{text}: FAILED: {'; '.join(problems)}" if problems else f"{text}: passed"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --------------------------------------------------------------------------- the manual gate


def metric_lines(report: dict[str, Any] | None) -> list[str]:
    """The evaluation report's metrics (scripts/evaluate.py's layout), one line each."""
    if not report:
        return ["  (no evaluation report recorded with the package)"]
    lines = []
    for key in layout.REPORT_KEYS.values():
        for name, entry in sorted((report.get(key) or {}).items()):
            if isinstance(entry, dict) and layout.VALUE_KEY in entry:
                spread = entry.get(layout.STANDARD_DEVIATION_KEY)
                extra = f" (sd {spread:.4g})" if isinstance(spread, int | float) else ""
                lines.append(f"  {name}: {entry[layout.VALUE_KEY]:.6g}{extra}")
    if layout.ROWS_KEY in report:
        lines.append(f"  evaluated on {report[layout.ROWS_KEY]} test row(s)")
    return lines or ["  (the evaluation report holds no metric)"]


def result_lines(release: Release) -> list[str]:
    smoke, load = release.results.get("smoke"), release.results.get("load")
    lines = []
    if smoke is None:
        lines.append("  smoke test: not run")
    else:
        verdict = "passed" if smoke.get("passed") else "FAILED"
        lines.append(f"  smoke test: {verdict} ({smoke.get('summary', '')})")
    if load is None:
        lines.append("  load run: not run")
    else:
        verdict = "passed" if load.get("passed") else "FAILED"
        lines.append(
            f"  load run: {verdict}: {load.get('requests')} request(s) in {load.get('seconds')} s"
            f", {load.get('failed')} failed, p50 {load.get('p50_ms')} ms, p99 "
            f"{load.get('p99_ms')} ms"
        )
        lines.extend(f"    {error}" for error in load.get("errors", [])[:SHOWN_ERRORS])
    return lines


def approval_message(
    release: Release, described: dict[str, Any], report: dict[str, Any] | None, next_stage: str
) -> tuple[str, str]:
    """The manual gate's (subject, body): the package, its metrics and the staging results."""
    subject = f"Approve {release.group} v{release.version} for {next_stage}?"[:100]
    approval = described.get("ApprovalDescription") or "none given"
    body = [
        f"Model package {release.group} version {release.version} passed {release.stage} and "
        f"waits for approval to deploy to {next_stage}.",
        "",
        f"package: {release.package_arn}",
        f"status: {described.get('ModelApprovalStatus', 'unknown')} ({approval})",
        f"created: {described.get('CreationTime', 'unknown')}",
        f"{release.stage} endpoint: {release.endpoint} on {release.config_name}",
        "",
        "metrics (the pipeline's Evaluate step, test split):",
        *metric_lines(report),
        "",
        f"{release.stage} results:",
        *result_lines(release),
        "",
        f"Approve or reject the ApproveProduction action of the release pipeline; approving "
        f"deploys exactly version {release.version} to {next_stage}.",
    ]
    return subject, "\n".join(body) + "\n"
