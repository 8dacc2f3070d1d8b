"""Model Monitor's file names, enums and defaults, as the analyzer image writes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 0.0
CSV_SUFFIX = ".csv"
NO_HEADER_PREFIX = "_c"  # Spark's names for the columns of a CSV file without header
TYPE_COUNTS_KEY = "inferred_type_counts"

KLL_BUCKETS = 10
KLL_C = 0.64
KLL_K = 2048
CARDINALITY_THRESHOLD = 120
DOMAIN_UNIQUE_RATIO = 0.1
ROBUST_C_ALPHA = 1.8
TOLERANCE = 1e-9

ENABLED = "Enabled"
DISABLED = "Disabled"

# Full-match patterns (RE2) for values of a column that also holds text.
INTEGRAL_PATTERN = r"^[+-]?\d+$"
NUMERIC_PATTERN = r"(?i)^[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf|infinity)$"
# A text that parses as a number is not an integer when it holds one of these.
NON_INTEGRAL_MARKS = (".", "e", "E", "n", "N")


class InferredType(StrEnum):
    INTEGRAL = "Integral"
    FRACTIONAL = "Fractional"
    STRING = "String"
    UNKNOWN = "Unknown"


class ComparisonMethod(StrEnum):
    SIMPLE = "Simple"
    ROBUST = "Robust"


class CategoricalDriftMethod(StrEnum):
    L_INFINITY = "LInfinity"
    CHI_SQUARED = "ChiSquared"


DEFAULT_MONITORING_CONFIG: Mapping[str, Any] = {
    "evaluate_constraints": ENABLED,
    "emit_metrics": ENABLED,
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": ENABLED,
        "comparison_threshold": 0.1,
        "comparison_method": ComparisonMethod.ROBUST.value,
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": CategoricalDriftMethod.L_INFINITY.value,
    },
}

NUMERIC_TYPES = (InferredType.INTEGRAL, InferredType.FRACTIONAL)


class MonitorError(ValueError):
    """Unusable input: the message names the file or field and what to do about it."""


@dataclass(frozen=True)
class BaselineResult:
    """Files written by :func:`run_baseline_job` (``violations_path`` None without baseline)."""

    statistics_path: Path
    constraints_path: Path
    violations_path: Path | None
    violations: list[dict[str, str]]
    item_count: int


@dataclass(frozen=True)
class Profile:
    """One column reduced to what the statistics need."""

    present: int
    type_counts: dict[InferredType, int]
    numbers: np.ndarray | None = None  # float64 present values, when no value is text
    distinct: int = 0  # distinct values, when some value is text
    categories: list[tuple[str, int]] | None = None  # by popularity, when few distinct
