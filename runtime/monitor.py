"""Local stand-in for the Model Monitor analyzer image (data quality baselines and checks).

A pipeline ``QualityCheckStep`` with ``DataQualityCheckConfig`` runs the
``sagemaker-model-monitor-analyzer`` image. This module does the same work in the host
process: it profiles a CSV data set, suggests constraints and, given a baseline, reports
violations. The three files follow the formats documented for Model Monitor
("Schema for Statistics", "Schema for Constraints", "Schema for Violations"):

* ``statistics.json``: ``{"version": 0.0, "dataset": {"item_count": N}, "features": [...]}``;
  numeric features carry ``numerical_statistics`` (common counts, mean, sum, std_dev,
  min, max and a ``kll`` distribution with 10 equal-width buckets and a sketch), string
  features carry ``string_statistics`` (common counts, distinct_count and categorical
  buckets). Each feature also carries ``inferred_type_counts`` (present values per
  type), one of the custom statistics the format allows; ``check_violations`` uses it
  for the data-type check and falls back to ``inferred_type`` when it is absent.
* ``constraints.json``: per feature ``completeness``, ``num_constraints.is_non_negative``
  and, for low-cardinality strings, ``string_constraints.domains``; plus
  ``monitoring_config``.
* ``constraint_violations.json``: ``{"violations": [{"feature_name",
  "constraint_check_type", "description"}]}``.

How the analyzer's behaviour is reproduced (it is built on Deequ; the rules below are
Deequ's where the documentation is silent):

* Types are inferred from the CSV text: a feature whose non-missing values all are
  integers (``-12``) is Integral, all numbers (``1.5``, ``1e3``, ``1.0``) Fractional,
  anything else String; all missing is Unknown. Numeric pandas columns (frames built in
  memory) have no text, so there a float column of whole numbers is Integral.
* Missing values: empty fields and pandas' default NA spellings (``NA``, ``NaN``, ...).
* ``std_dev`` is the population standard deviation (Deequ's StandardDeviation).
* The sketch holds all values when there are at most ``k`` = 2048 of them, otherwise
  2048 evenly spaced order statistics (min and max included), as one level of equal
  weights; it is a quantile sample, not a KLL compaction.
* Categorical buckets are written for features with at most 120 distinct values
  (Deequ's histogram cardinality threshold). A String feature gets a ``domains``
  constraint when it has buckets and at most 10 % of its distinct values occur once
  (Deequ's CategoricalRangeRule); values are listed by popularity.
* Thresholds are required match ratios: ``datatype_check_threshold`` is the share of
  present values that must have the baseline type, ``domain_content_threshold`` the
  share that must lie in the baseline domain (1.0: every value). Completeness may not
  drop below the baseline's.
* Drift is Deequ's L-infinity distance: the largest CDF difference of the two sketches
  (numeric) or the largest difference of category frequencies (categorical). With
  ``comparison_method`` "Robust" it is reduced by ``1.8 * sqrt((n + m) / (n * m))``
  (two-sample Kolmogorov-Smirnov, n and m the present counts) and floored at 0; a
  violation is a distance above the threshold. ``ChiSquared`` is not supported.
* A numeric feature whose baseline is non-negative and whose minimum is now negative is
  reported as ``non_negative_check``, a type the documentation does not list.
* ``evaluate_constraints: Disabled`` leaves only the drift check; a feature's
  ``monitoringConfigOverrides`` override ``monitoring_config`` for that feature.

CLI::

    python -m runtime.monitor --dataset PATH [--no-header] --output-dir DIR \\
        [--baseline-statistics FILE --baseline-constraints FILE]

Exit code 0 when the job ran (also with violations: the caller decides what they
mean), 2 with an ``ERROR: ...`` line for unusable input.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from runtime.files import write_atomic

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
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


class CheckType(StrEnum):
    DATA_TYPE = "data_type_check"
    COMPLETENESS = "completeness_check"
    BASELINE_DRIFT = "baseline_drift_check"
    MISSING_COLUMN = "missing_column_check"
    EXTRA_COLUMN = "extra_column_check"
    CATEGORICAL_VALUES = "categorical_values_check"
    NON_NEGATIVE = "non_negative_check"


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
class _Profile:
    """One column reduced to what the statistics need."""

    present: int
    type_counts: dict[InferredType, int]
    numbers: np.ndarray | None = None  # float64 present values, when no value is text
    distinct: int = 0  # distinct values, when some value is text
    categories: list[tuple[str, int]] | None = None  # by popularity, when few distinct


# --------------------------------------------------------------------------- statistics


def compute_statistics(frame: pd.DataFrame) -> dict[str, Any]:
    """Profile every column of ``frame`` into the statistics.json structure."""
    item_count = len(frame)
    features = [
        _feature_statistics(str(name), _profile(frame[name]), item_count) for name in frame.columns
    ]
    return {"version": FORMAT_VERSION, "dataset": {"item_count": item_count}, "features": features}


def _profile(column: pd.Series) -> _Profile:
    if pd.api.types.is_bool_dtype(column.dtype):
        text = column.map({True: "true", False: "false"}).astype("string[pyarrow]")
        return _profile_text(text)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return _profile_numbers(column)
    return _profile_text(column)


def _profile_numbers(column: pd.Series) -> _Profile:
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    values = values[~np.isnan(values)]
    integral = int(np.count_nonzero(np.isfinite(values) & (np.floor(values) == values)))
    counts = _type_counts(integral, len(values) - integral, 0)
    return _Profile(present=len(values), type_counts=counts, numbers=values)


def _profile_text(column: pd.Series) -> _Profile:
    if not (isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow"):
        column = column.astype("string[pyarrow]")
    text = pc.drop_null(pa.array(column))
    filled = pc.not_equal(text, "")
    if not pc.all(filled).as_py():
        text = text.filter(filled)
    try:
        numbers = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return _profile_categories(text)
    not_nan = ~np.isnan(numbers)
    if not not_nan.all():  # a "nan" spelling pandas did not take as missing
        numbers, text = numbers[not_nan], text.filter(pa.array(not_nan))
    whole = np.isfinite(numbers) & (np.floor(numbers) == numbers)
    integral = 0
    if whole.any():
        candidates = text if whole.all() else text.filter(pa.array(whole))
        marked = pc.match_substring(candidates, NON_INTEGRAL_MARKS[0])
        for mark in NON_INTEGRAL_MARKS[1:]:
            marked = pc.or_(marked, pc.match_substring(candidates, mark))
        integral = len(candidates) - int(pc.sum(marked).as_py() or 0)
    counts = _type_counts(integral, len(numbers) - integral, 0)
    return _Profile(present=len(numbers), type_counts=counts, numbers=numbers)


def _profile_categories(text: pa.Array) -> _Profile:
    tally = pc.value_counts(text)
    values = tally.field("values")
    counts = tally.field("counts").to_numpy(zero_copy_only=False).astype(np.int64)
    integral_mask = pc.match_substring_regex(values, INTEGRAL_PATTERN).to_numpy(
        zero_copy_only=False
    )
    numeric_mask = pc.match_substring_regex(values, NUMERIC_PATTERN).to_numpy(zero_copy_only=False)
    present = int(counts.sum())
    integral = int(counts[integral_mask].sum())
    numeric = int(counts[numeric_mask].sum())
    type_counts = _type_counts(integral, numeric - integral, present - numeric)
    categories = None
    if len(values) <= CARDINALITY_THRESHOLD:
        pairs = zip(values.to_pylist(), counts.tolist(), strict=True)
        categories = sorted(pairs, key=lambda pair: (-pair[1], pair[0]))
    return _Profile(
        present=present, type_counts=type_counts, distinct=len(values), categories=categories
    )


def _type_counts(integral: int, fractional: int, string: int) -> dict[InferredType, int]:
    return {
        InferredType.INTEGRAL: integral,
        InferredType.FRACTIONAL: fractional,
        InferredType.STRING: string,
    }


def _inferred_type(profile: _Profile) -> InferredType:
    if profile.present == 0:
        return InferredType.UNKNOWN
    if profile.type_counts[InferredType.STRING]:
        return InferredType.STRING
    if profile.type_counts[InferredType.FRACTIONAL]:
        return InferredType.FRACTIONAL
    return InferredType.INTEGRAL


def _feature_statistics(name: str, profile: _Profile, item_count: int) -> dict[str, Any]:
    inferred = _inferred_type(profile)
    common = {"num_present": profile.present, "num_missing": item_count - profile.present}
    feature: dict[str, Any] = {"name": name, "inferred_type": inferred.value}
    if inferred in NUMERIC_TYPES and profile.numbers is not None:
        feature["numerical_statistics"] = _numerical_statistics(profile.numbers, common)
    else:
        feature["string_statistics"] = _string_statistics(profile, common)
    feature[TYPE_COUNTS_KEY] = {kind.value: count for kind, count in profile.type_counts.items()}
    return feature


def _numerical_statistics(numbers: np.ndarray, common: dict[str, int]) -> dict[str, Any]:
    finite = numbers if np.isfinite(numbers).all() else numbers[np.isfinite(numbers)]
    ordered = np.sort(finite)
    total = float(np.sum(numbers))
    return {
        "common": common,
        "mean": _number(total / len(numbers)),
        "sum": _number(total),
        "std_dev": _number(float(np.std(numbers))),
        "min": _number(float(np.min(numbers))),
        "max": _number(float(np.max(numbers))),
        "distribution": {
            "kll": {
                "buckets": _kll_buckets(ordered),
                "sketch": {
                    "parameters": {"c": KLL_C, "k": float(KLL_K)},
                    "data": [_sketch_sample(ordered)],
                },
            }
        },
    }


def _kll_buckets(ordered: np.ndarray) -> list[dict[str, float]]:
    if len(ordered) == 0:
        return []
    low, high = float(ordered[0]), float(ordered[-1])
    if low == high:
        edges = np.full(KLL_BUCKETS + 1, low)
        counts = np.zeros(KLL_BUCKETS, dtype=np.int64)
        counts[0] = len(ordered)
    else:
        edges = np.linspace(low, high, KLL_BUCKETS + 1)
        counts, _ = np.histogram(ordered, bins=edges)
    return [
        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(c)}
        for i, c in enumerate(counts)
    ]


def _sketch_sample(ordered: np.ndarray) -> list[float]:
    if len(ordered) > KLL_K:
        ordered = ordered[np.round(np.linspace(0, len(ordered) - 1, KLL_K)).astype(np.int64)]
    return ordered.tolist()


def _string_statistics(profile: _Profile, common: dict[str, int]) -> dict[str, Any]:
    buckets = [{"value": value, "count": count} for value, count in profile.categories or []]
    return {
        "common": common,
        "distinct_count": profile.distinct,
        "distribution": {"categorical": {"buckets": buckets}},
    }


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# --------------------------------------------------------------------------- constraints


def default_monitoring_config() -> dict[str, Any]:
    """A fresh copy of the ``monitoring_config`` that :func:`suggest_constraints` writes."""
    return copy.deepcopy(dict(DEFAULT_MONITORING_CONFIG))


def suggest_constraints(statistics: Mapping[str, Any]) -> dict[str, Any]:
    """Suggest constraints.json for the data set described by ``statistics``."""
    item_count = int(statistics["dataset"]["item_count"])
    features = []
    for feature in statistics["features"]:
        present = _common(feature)["num_present"]
        constraint: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": present / item_count if item_count else 0.0,
        }
        numerical = feature.get("numerical_statistics")
        if numerical is not None:
            minimum = numerical.get("min")
            constraint["num_constraints"] = {
                "is_non_negative": minimum is not None and minimum >= 0
            }
        if feature["inferred_type"] == InferredType.STRING:
            domains = _suggest_domains(feature["string_statistics"])
            if domains is not None:
                constraint["string_constraints"] = {"domains": domains}
        features.append(constraint)
    return {
        "version": FORMAT_VERSION,
        "features": features,
        "monitoring_config": default_monitoring_config(),
    }


def _suggest_domains(string_statistics: Mapping[str, Any]) -> list[str] | None:
    buckets = string_statistics["distribution"]["categorical"]["buckets"]
    if not buckets:
        return None
    singletons = sum(1 for bucket in buckets if bucket["count"] == 1)
    if singletons / len(buckets) > DOMAIN_UNIQUE_RATIO:
        return None
    return [bucket["value"] for bucket in buckets]


# --------------------------------------------------------------------------- violations


def check_violations(
    statistics: Mapping[str, Any],
    baseline_statistics: Mapping[str, Any] | None,
    baseline_constraints: Mapping[str, Any],
) -> dict[str, list[dict[str, str]]]:
    """Check ``statistics`` against a baseline; returns constraint_violations.json.

    ``baseline_statistics`` may be None: every check but the drift check still runs.
    Raises :class:`MonitorError` for a ``monitoring_config`` this analyzer cannot apply.
    """
    config = _monitoring_config(baseline_constraints.get("monitoring_config"), "monitoring_config")
    current = {feature["name"]: feature for feature in statistics["features"]}
    expected = {feature["name"]: feature for feature in baseline_constraints["features"]}
    baseline = {
        feature["name"]: feature for feature in (baseline_statistics or {}).get("features", [])
    }
    item_count = int(statistics["dataset"]["item_count"])
    violations: list[dict[str, str]] = []
    if config["evaluate_constraints"] == ENABLED:
        violations += _column_set_violations(list(current), list(expected))
    for name, constraint in expected.items():
        feature = current.get(name)
        if feature is None:
            continue
        feature_config = _feature_config(config, constraint)
        if feature_config["evaluate_constraints"] == ENABLED:
            violations += _constraint_violations(feature, constraint, feature_config, item_count)
        drift = feature_config["distribution_constraints"]
        if drift["perform_comparison"] == ENABLED and name in baseline:
            violation = _drift_violation(feature, baseline[name], drift)
            if violation is not None:
                violations.append(violation)
    return {"violations": violations}


def _violation(feature: str, check: CheckType, description: str) -> dict[str, str]:
    return {
        "feature_name": feature,
        "constraint_check_type": check.value,
        "description": description,
    }


def _column_set_violations(current: Sequence[str], expected: Sequence[str]) -> list[dict[str, str]]:
    counts = f"current dataset: {len(current)} columns, baseline constraints: {len(expected)}"
    known = set(expected)
    seen = set(current)
    return [
        _violation(name, CheckType.MISSING_COLUMN, f"Column '{name}' is missing ({counts}).")
        for name in expected
        if name not in seen
    ] + [
        _violation(
            name, CheckType.EXTRA_COLUMN, f"Column '{name}' is not in the baseline ({counts})."
        )
        for name in current
        if name not in known
    ]


def _constraint_violations(
    feature: Mapping[str, Any],
    constraint: Mapping[str, Any],
    config: Mapping[str, Any],
    item_count: int,
) -> list[dict[str, str]]:
    checks = (
        (CheckType.DATA_TYPE, _data_type_problem(feature, constraint, config)),
        (CheckType.COMPLETENESS, _completeness_problem(feature, constraint, item_count)),
        (CheckType.NON_NEGATIVE, _non_negative_problem(feature, constraint)),
        (CheckType.CATEGORICAL_VALUES, _domain_problem(feature, constraint, config)),
    )
    return [
        _violation(feature["name"], check, problem)
        for check, problem in checks
        if problem is not None
    ]


def _data_type_problem(
    feature: Mapping[str, Any], constraint: Mapping[str, Any], config: Mapping[str, Any]
) -> str | None:
    present = _common(feature)["num_present"]
    expected = constraint.get("inferred_type")
    if not present or expected not in (*NUMERIC_TYPES, InferredType.STRING):
        return None
    ratio = _type_match(feature, InferredType(expected)) / present
    required = config["datatype_check_threshold"]
    if ratio >= required - TOLERANCE:
        return None
    return (
        f"Data type match requirement is not met. Expected data type: {expected}, "
        f"expected match: {_percent(required)}. Observed: only {_percent(ratio)} of the "
        f"{present} present values are {expected} (inferred type: {feature['inferred_type']})."
    )


def _type_match(feature: Mapping[str, Any], expected: InferredType) -> int:
    """How many present values of ``feature`` are valid values of type ``expected``."""
    present = _common(feature)["num_present"]
    counts = feature.get(TYPE_COUNTS_KEY)
    if counts is None:  # statistics without the custom counts: trust inferred_type
        counts = {feature["inferred_type"]: present}
    integral = int(counts.get(InferredType.INTEGRAL, 0))
    fractional = int(counts.get(InferredType.FRACTIONAL, 0))
    if expected == InferredType.INTEGRAL:
        return integral
    if expected == InferredType.FRACTIONAL:
        return integral + fractional
    return present


def _completeness_problem(
    feature: Mapping[str, Any], constraint: Mapping[str, Any], item_count: int
) -> str | None:
    expected = constraint.get("completeness")
    if expected is None or not item_count:
        return None
    present = _common(feature)["num_present"]
    observed = present / item_count
    if observed >= float(expected) - TOLERANCE:
        return None
    return (
        f"Data completeness requirement is not met. Expected completeness: "
        f"{_percent(float(expected))}. Observed: {_percent(observed)} ({present} of "
        f"{item_count} values present)."
    )


def _non_negative_problem(feature: Mapping[str, Any], constraint: Mapping[str, Any]) -> str | None:
    if not (constraint.get("num_constraints") or {}).get("is_non_negative"):
        return None
    minimum = (feature.get("numerical_statistics") or {}).get("min")
    if minimum is None or minimum >= 0:
        return None
    return (
        f"Values must be non-negative (the baseline had no negative value). "
        f"Observed minimum: {minimum:.6g}."
    )


def _domain_problem(
    feature: Mapping[str, Any], constraint: Mapping[str, Any], config: Mapping[str, Any]
) -> str | None:
    domain = (constraint.get("string_constraints") or {}).get("domains")
    strings = feature.get("string_statistics")
    present = _common(feature)["num_present"]
    if not domain or not strings or not present:
        return None
    allowed = set(domain)
    required = config["domain_content_threshold"]
    buckets = strings["distribution"]["categorical"]["buckets"]
    if buckets:
        outside = [bucket for bucket in buckets if bucket["value"] not in allowed]
        ratio = 1 - sum(bucket["count"] for bucket in outside) / present
        shown = ", ".join(repr(bucket["value"]) for bucket in outside[:5])
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        observed = f"{_percent(ratio)} of values are in the domain (outside: {shown}{more})"
    else:  # too many distinct values to list: bound the share by the distinct count
        distinct = int(strings.get("distinct_count", 0))
        ratio = 1 - max(0, distinct - len(allowed)) / present
        observed = (
            f"at most {_percent(ratio)} of values are in the domain ({distinct} distinct "
            f"values, the domain has {len(allowed)})"
        )
    if ratio >= required - TOLERANCE:
        return None
    return (
        f"Domain content requirement is not met. Expected: {_percent(required)} of values in "
        f"the baseline domain of {len(allowed)} values. Observed: {observed}."
    )


def _drift_violation(
    feature: Mapping[str, Any], baseline: Mapping[str, Any], drift: Mapping[str, Any]
) -> dict[str, str] | None:
    distance: float | None = None
    threshold = drift["comparison_threshold"]
    current_numbers = feature.get("numerical_statistics")
    baseline_numbers = baseline.get("numerical_statistics")
    current_strings = feature.get("string_statistics")
    baseline_strings = baseline.get("string_statistics")
    if current_numbers and baseline_numbers:
        distance = _numerical_distance(current_numbers, baseline_numbers)
    elif current_strings and baseline_strings:
        threshold = drift["categorical_comparison_threshold"]
        distance = _categorical_distance(current_strings, baseline_strings)
    if distance is None:
        return None
    counts = (_common(feature)["num_present"], _common(baseline)["num_present"])
    if drift["comparison_method"] == ComparisonMethod.ROBUST:
        distance = _robust(distance, *counts)
    if distance <= threshold:
        return None
    return _violation(
        feature["name"],
        CheckType.BASELINE_DRIFT,
        f"Baseline drift distance: {distance:.4g} exceeds threshold: {threshold:.4g}",
    )


def _robust(distance: float, n: int, m: int) -> float:
    if n == 0 or m == 0:
        return distance
    return max(0.0, distance - ROBUST_C_ALPHA * math.sqrt((n + m) / (n * m)))


def _numerical_distance(current: Mapping[str, Any], baseline: Mapping[str, Any]) -> float | None:
    first, second = _weighted_sample(current), _weighted_sample(baseline)
    if first is None or second is None:
        return None
    grid = np.union1d(first[0], second[0])
    return float(np.max(np.abs(_cdf(*first, grid) - _cdf(*second, grid))))


def _weighted_sample(numerical: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Sketch items with their KLL weights (2**level), or bucket upper bounds as fallback."""
    kll = (numerical.get("distribution") or {}).get("kll") or {}
    levels = (kll.get("sketch") or {}).get("data") or []
    values = [np.asarray(items, dtype=np.float64) for items in levels]
    weights = [np.full(len(items), 2.0**level) for level, items in enumerate(levels)]
    if not any(len(items) for items in values):
        buckets = [bucket for bucket in kll.get("buckets") or [] if bucket["count"]]
        values = [np.array([bucket["upper_bound"] for bucket in buckets], dtype=np.float64)]
        weights = [np.array([bucket["count"] for bucket in buckets], dtype=np.float64)]
    points, mass = np.concatenate(values), np.concatenate(weights)
    if len(points) == 0:
        return None
    order = np.argsort(points, kind="stable")
    return points[order], mass[order]


def _cdf(points: np.ndarray, weights: np.ndarray, grid: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate(([0.0], np.cumsum(weights) / weights.sum()))
    return cumulative[np.searchsorted(points, grid, side="right")]


def _categorical_distance(current: Mapping[str, Any], baseline: Mapping[str, Any]) -> float | None:
    first = _frequencies(current)
    second = _frequencies(baseline)
    if not first or not second:
        return None
    return max(abs(first.get(key, 0.0) - second.get(key, 0.0)) for key in first.keys() | second)


def _frequencies(strings: Mapping[str, Any]) -> dict[str, float]:
    buckets = ((strings.get("distribution") or {}).get("categorical") or {}).get("buckets") or []
    total = sum(bucket["count"] for bucket in buckets)
    return {bucket["value"]: bucket["count"] / total for bucket in buckets} if total else {}


def _common(feature: Mapping[str, Any]) -> dict[str, int]:
    stats = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
    common = stats.get("common") or {}
    return {
        "num_present": int(common.get("num_present", 0)),
        "num_missing": int(common.get("num_missing", 0)),
    }


def _monitoring_config(config: Any, where: str) -> dict[str, Any]:
    """Defaults overlaid with ``config``, validated."""
    if config is None:
        return default_monitoring_config()
    if not isinstance(config, Mapping):
        raise MonitorError(f"{where} must be an object, got {type(config).__name__}.")
    distribution = config.get("distribution_constraints") or {}
    merged = _overlay(default_monitoring_config(), config)
    drift = merged["distribution_constraints"]
    if "categorical_comparison_threshold" not in distribution and (
        "comparison_threshold" in distribution
    ):  # documented default: the value of comparison_threshold
        drift["categorical_comparison_threshold"] = drift["comparison_threshold"]
    _require_choice(merged, "evaluate_constraints", (ENABLED, DISABLED), where)
    _require_choice(drift, "perform_comparison", (ENABLED, DISABLED), where)
    _require_choice(drift, "comparison_method", tuple(ComparisonMethod), where)
    _require_choice(drift, "categorical_drift_method", tuple(CategoricalDriftMethod), where)
    if drift["categorical_drift_method"] == CategoricalDriftMethod.CHI_SQUARED:
        raise MonitorError(
            f"{where}.distribution_constraints.categorical_drift_method: ChiSquared is not "
            "supported by the local analyzer. Set it to LInfinity, or run the check on SageMaker."
        )
    for key in ("datatype_check_threshold", "domain_content_threshold"):
        merged[key] = _require_number(merged, key, where)
    for key in ("comparison_threshold", "categorical_comparison_threshold"):
        drift[key] = _require_number(drift, key, f"{where}.distribution_constraints")
    return merged


def _feature_config(config: Mapping[str, Any], constraint: Mapping[str, Any]) -> dict[str, Any]:
    overrides = constraint.get("monitoringConfigOverrides")
    if not overrides:
        return dict(config)
    where = f"features[{constraint['name']!r}].monitoringConfigOverrides"
    if not isinstance(overrides, Mapping):
        raise MonitorError(f"{where} must be an object, got {type(overrides).__name__}.")
    return _monitoring_config(_overlay(copy.deepcopy(dict(config)), overrides), where)


def _overlay(config: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` updated with ``overlay``; distribution_constraints merged key by key."""
    nested = "distribution_constraints"
    config.update({key: value for key, value in overlay.items() if key != nested})
    config[nested] = {**config[nested], **(overlay.get(nested) or {})}
    return config


def _require_choice(
    config: Mapping[str, Any], key: str, choices: Sequence[str], where: str
) -> None:
    if config[key] not in choices:
        raise MonitorError(
            f"{where}.{key} is {config[key]!r}; expected one of {', '.join(choices)}."
        )


def _require_number(config: Mapping[str, Any], key: str, where: str) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MonitorError(f"{where}.{key} is {value!r}; expected a number such as 0.1.")
    return float(value)


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.4g}%"


# --------------------------------------------------------------------------- job


def read_dataset(dataset: Path, header: bool) -> pd.DataFrame:
    """Read a CSV file, or every ``*.csv`` under a directory (sorted), as text columns.

    Without a header the columns are named ``_c0``, ``_c1``, ... as Spark names them.
    Raises :class:`MonitorError` naming the file for missing, empty or malformed input.
    """
    if dataset.is_dir():
        files = sorted(path for path in dataset.rglob(f"*{CSV_SUFFIX}") if path.is_file())
        if not files:
            raise MonitorError(
                f"{dataset}: no *{CSV_SUFFIX} files in this directory. Point --dataset at the "
                "CSV files of the baseline data set."
            )
    elif dataset.is_file():
        files = [dataset]
    else:
        raise MonitorError(
            f"{dataset}: no such file or directory. Give a CSV file or a directory of CSV files."
        )
    frames: list[pd.DataFrame] = []
    for path in files:
        frame = _read_csv(path, header)
        if frames and list(frame.columns) != list(frames[0].columns):
            raise MonitorError(
                f"{path}: columns {list(frame.columns)} differ from {list(frames[0].columns)} "
                f"in {files[0]}. All files of a data set must share one header."
            )
        frames.append(frame)
    data = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    del frames
    if data.empty:
        where = files[0] if len(files) == 1 else dataset
        raise MonitorError(
            f"{where}: no data rows (only a header). Export the data set again with its rows."
        )
    return data


def _read_csv(path: Path, header: bool) -> pd.DataFrame:
    try:
        if path.stat().st_size == 0:
            raise MonitorError(f"{path}: file is empty. Remove it or export the data again.")
        frame = pd.read_csv(
            path, dtype="string[pyarrow]", engine="pyarrow", header=0 if header else None
        )
    except pd.errors.EmptyDataError:
        raise MonitorError(f"{path}: file is empty. Remove it or export the data again.") from None
    except OSError as exc:
        raise MonitorError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    except ValueError as exc:  # ParserError, ArrowInvalid, UnicodeDecodeError
        raise MonitorError(
            f"{path}: could not be parsed as CSV ({exc}). The file must be UTF-8, "
            "comma-separated, with the same number of fields on every line."
        ) from None
    if not header:
        frame.columns = [f"{NO_HEADER_PREFIX}{i}" for i in range(frame.shape[1])]
    return frame


def load_json(path: Path, what: str) -> dict[str, Any]:
    """Load a statistics or constraints file written by a baseline job."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        reason = exc.strerror or exc
        raise MonitorError(f"{path}: cannot read the {what} file ({reason}).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MonitorError(
            f"{path}: the {what} file is not valid JSON ({exc}). Give the {what} written "
            "by a baseline job."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise MonitorError(
            f"{path}: the {what} file has no 'features' list. Give the {what} written by a "
            "baseline job."
        )
    return data


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Publish ``payload`` as JSON at ``path`` whole (:func:`runtime.files.write_atomic`)."""
    write_atomic(path, json.dumps(payload, indent=2, allow_nan=False) + "\n", durable=True)


def run_baseline_job(
    dataset: Path,
    header: bool,
    output_dir: Path,
    baseline_statistics: Path | None = None,
    baseline_constraints: Path | None = None,
) -> BaselineResult:
    """Profile ``dataset`` into ``output_dir``; check it when a baseline is given.

    statistics.json and constraints.json describe ``dataset`` and are always written;
    constraint_violations.json is written when ``baseline_constraints`` is given (drift
    also needs ``baseline_statistics``), and a stale one is removed otherwise. Nothing is
    written when the input is unusable.
    """
    if baseline_statistics is not None and baseline_constraints is None:
        raise MonitorError(
            f"{baseline_statistics}: baseline statistics need baseline constraints too "
            "(--baseline-constraints), which hold the thresholds of the check."
        )
    base_statistics = load_json(baseline_statistics, "statistics") if baseline_statistics else None
    base_constraints = (
        load_json(baseline_constraints, "constraints") if baseline_constraints else None
    )
    frame = read_dataset(dataset, header)
    statistics = compute_statistics(frame)
    del frame
    constraints = suggest_constraints(statistics)
    report = None
    if base_constraints is not None:
        try:
            report = check_violations(statistics, base_statistics, base_constraints)
        except MonitorError as exc:
            raise MonitorError(f"{baseline_constraints}: {exc}") from None
    output_dir.mkdir(parents=True, exist_ok=True)
    statistics_path = output_dir / STATISTICS_FILE
    constraints_path = output_dir / CONSTRAINTS_FILE
    violations_path = output_dir / VIOLATIONS_FILE
    write_json_atomic(statistics_path, statistics)
    write_json_atomic(constraints_path, constraints)
    if report is None:
        violations_path.unlink(missing_ok=True)
    else:
        write_json_atomic(violations_path, report)
    return BaselineResult(
        statistics_path=statistics_path,
        constraints_path=constraints_path,
        violations_path=violations_path if report is not None else None,
        violations=report["violations"] if report is not None else [],
        item_count=int(statistics["dataset"]["item_count"]),
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.monitor",
        description="Local Model Monitor analyzer: data-quality baseline and constraint check.",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="CSV file, or directory whose *.csv files form the data set",
    )
    parser.add_argument(
        "--no-header",
        dest="header",
        action="store_false",
        help="the CSV files have no header row (columns become _c0, _c1, ...)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        required=True,
        help="where statistics.json, constraints.json and violations go",
    )
    parser.add_argument(
        "--baseline-statistics",
        type=Path,
        help="statistics.json of the baseline (enables the drift check)",
    )
    parser.add_argument(
        "--baseline-constraints",
        type=Path,
        help="constraints.json of the baseline (enables the constraint checks)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0 ran, 2 unusable input)."""
    args = _parse_args(argv)
    try:
        result = run_baseline_job(
            args.dataset,
            args.header,
            args.output_dir,
            args.baseline_statistics,
            args.baseline_constraints,
        )
    except MonitorError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    written = [result.statistics_path.name, result.constraints_path.name]
    if result.violations_path is not None:
        written.append(result.violations_path.name)
    checked = "" if result.violations_path is None else f"; {len(result.violations)} violation(s)"
    print(
        f"{args.dataset}: {result.item_count} rows; wrote {', '.join(written)} "
        f"to {args.output_dir}{checked}"
    )
    for violation in result.violations:
        print(
            f"  {violation['feature_name']}: {violation['constraint_check_type']}: "
            f"{violation['description']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
