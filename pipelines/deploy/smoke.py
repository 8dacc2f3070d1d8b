"""The smoke test's data and verdict: the pipeline's own test records and predictions.

The Evaluate step scores the test split through the serving code and records the first rows as
a request body with the predictions it made (scripts/evaluate.py, smoke_sample.json); the model
package names that file. After a deploy, the endpoint answers the same body; its answers must
equal those predictions within the stage's tolerance, or the deploy failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from config.deploy import SmokeSection
from tabular.names import SMOKE_CONTENT_TYPE_KEY, SMOKE_PREDICTIONS_KEY, SMOKE_RECORDS_KEY

SHOWN_MISMATCHES = 5


class SmokeSampleError(ValueError):
    """The recorded sample cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class SmokeSample:
    content_type: str
    records: tuple[str, ...]  # one request line each, as the endpoint reads them
    predictions: tuple[float, ...]

    @classmethod
    def parse(cls, document: Any, source: str) -> SmokeSample:
        fix = "re-run the pipeline to record a new one (its Evaluate step writes it)"
        if not isinstance(document, dict):
            raise SmokeSampleError(f"{source}: not a JSON object; {fix}")
        try:
            content_type = str(document[SMOKE_CONTENT_TYPE_KEY])
            body = str(document[SMOKE_RECORDS_KEY])
            predictions = tuple(float(v) for v in document[SMOKE_PREDICTIONS_KEY])
        except (KeyError, TypeError, ValueError) as exc:
            raise SmokeSampleError(f"{source}: missing or malformed {exc}; {fix}") from None
        records = tuple(body.splitlines())
        if not records or len(records) != len(predictions):
            raise SmokeSampleError(
                f"{source}: {len(records)} record(s) but {len(predictions)} prediction(s); {fix}"
            )
        return cls(content_type=content_type, records=records, predictions=predictions)

    def body(self, rows: int) -> bytes:
        """The request body of the first `rows` records (all of them if there are fewer)."""
        return "".join(f"{line}\n" for line in self.records[:rows]).encode("utf-8")

    def expected(self, rows: int) -> tuple[float, ...]:
        return self.predictions[:rows]


@dataclass(frozen=True)
class SmokeResult:
    rows: int
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.passed:
            return f"smoke test passed: {self.rows} row(s) answered as the pipeline predicted"
        return f"smoke test FAILED on {self.rows} row(s): " + "; ".join(self.problems)


def compare(
    sample: SmokeSample, answer: bytes, settings: SmokeSection, rows: int | None = None
) -> SmokeResult:
    """The endpoint's answer (one prediction per line) against the recorded predictions."""
    rows = min(rows or settings.rows, len(sample.records))
    expected = sample.expected(rows)
    try:
        text = answer.decode("utf-8")
    except UnicodeDecodeError:
        return SmokeResult(rows, (f"the answer is not UTF-8 text: {answer[:80]!r}",))
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != len(expected):
        return SmokeResult(
            rows,
            (f"{len(expected)} record(s) sent, {len(lines)} prediction(s) back: {text[:200]!r}",),
        )
    problems = []
    for number, (line, want) in enumerate(zip(lines, expected, strict=True), start=1):
        try:
            got = float(line.split(",")[0])
        except ValueError:
            problems.append(f"row {number}: {line[:80]!r} is not a number")
            continue
        if not math.isclose(
            got, want, rel_tol=settings.relative_tolerance, abs_tol=settings.absolute_tolerance
        ):
            problems.append(f"row {number}: endpoint {got!r}, pipeline {want!r}")
    if len(problems) > SHOWN_MISMATCHES:
        problems = [*problems[:SHOWN_MISMATCHES], f"... {len(problems) - SHOWN_MISMATCHES} more"]
    return SmokeResult(rows, tuple(problems))
