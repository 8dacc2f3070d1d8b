"""An execution's record: its status, one record per step, its parameters and hooks.

What the engine (runtime.engine) writes to ``execution.json`` and what the CLI reads back: the
statuses are SageMaker's (ListPipelineExecutionSteps), plus NotStarted for a step not reached
yet; a step's properties are its Describe* response, its outputs what it published.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime.state import LocalState
from runtime.store import LocalS3
from tabular.contract import StepStatus, StepType

SUCCEEDED, FAILED, EXECUTING, STOPPED = (
    StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.EXECUTING, StepStatus.STOPPED
)  # fmt: skip
SKIPPED = StepStatus.NOT_EXECUTED
NOT_STARTED = "NotStarted"
"""A step the run has not reached (yet): local only, SageMaker lists no such step."""
DURATION = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


def expire_after_seconds(duration: str | None) -> float | None:
    """ISO 8601 duration (P30D, PT12H, P1DT6H) in seconds; None means no expiry."""
    if not duration:
        return None
    match = DURATION.match(duration.upper())
    if not match:
        raise ValueError(f"CacheConfig.ExpireAfter {duration!r} is not an ISO 8601 duration")
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(
        (((years * 365 + months * 30 + weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60
        + seconds
    )


@dataclass
class StepRecord:
    name: str
    type: str
    status: str = NOT_STARTED
    cacheable: bool = False
    cache_hit: bool = False
    cache_source: str | None = None
    start: str | None = None
    end: str | None = None
    seconds: float | None = None
    failure_reason: str | None = None
    attempts: int = 0
    peak_rss_bytes: int | None = None
    log: str | None = None
    note: str | None = None  # why the step ran although it could have been reused
    properties: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)  # LocalS3.manifest of its outputs


@dataclass
class Execution:
    execution_id: str
    pipeline: str
    status: str
    parameters: dict[str, Any]
    start: str
    end: str | None = None
    failure_reason: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hooks:
    """How the caller takes part: answering callbacks, and hearing about step transitions."""

    on_callback: Callable[[LocalState, str, dict[str, Any]], None] | None = None
    on_step: Callable[[StepRecord], None] | None = None
    callback_timeout_seconds: float = 86400.0


NO_HOOKS = Hooks()
"""A run nobody takes part in (its callbacks time out)."""


def published_uris(kind: str, properties: dict[str, Any]) -> list[str]:
    """Where a job step published its outputs (what its cache entry stands for)."""
    if kind == StepType.PROCESSING:
        outputs = (properties.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        return [o["S3Output"]["S3Uri"] for o in outputs]
    if kind == StepType.TRAINING:
        # <S3OutputPath>/<job>/output: model.tar.gz, and output.tar.gz when the job wrote data.
        return [properties["ModelArtifacts"]["S3ModelArtifacts"].rsplit("/", 1)[0]]
    if kind == StepType.TRANSFORM:
        return [properties["TransformOutput"]["S3OutputPath"]]
    if kind == StepType.QUALITY_CHECK:
        keys = ("CalculatedBaselineStatistics", "CalculatedBaselineConstraints", "ViolationReport")
        return [properties[k] for k in keys if properties.get(k)]
    return []


def parameter_values(definition: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Declared defaults with overrides cast to each parameter's type; unknown names refused."""
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ValueError(f"unknown pipeline parameter(s) {unknown}; declared: {sorted(declared)}")
    casts: dict[str, Callable[[Any], Any]] = {
        "String": str,
        "Integer": int,
        "Float": float,
        "Boolean": lambda v: v if isinstance(v, bool) else str(v).lower() in ("true", "1", "yes"),
    }
    values = {}
    for name, spec in declared.items():
        value = overrides.get(name, spec.get("DefaultValue"))
        if value is None:
            raise ValueError(f"pipeline parameter {name} has no default; pass a value for it")
        values[name] = casts[spec["Type"]](value)
        enum = spec.get("EnumValues")
        if enum and values[name] not in enum:
            raise ValueError(f"pipeline parameter {name}={values[name]!r} is not one of {enum}")
    return values


def processing_output_file(
    store: LocalS3, properties: dict[str, Any], output_name: str, file_name: str
) -> Path:
    """The local file `file_name` inside a processing step's output `output_name`."""
    outputs = properties["ProcessingOutputConfig"]["Outputs"]
    (output,) = [o for o in outputs if o["OutputName"] == output_name]
    return store.path(output["S3Output"]["S3Uri"].rstrip("/") + "/" + file_name)
