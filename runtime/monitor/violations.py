"""constraint_violations.json: a data set's statistics checked against a baseline."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from runtime.monitor.constraints import default_monitoring_config
from runtime.monitor.contract import (
    DISABLED,
    ENABLED,
    NUMERIC_TYPES,
    ROBUST_C_ALPHA,
    TOLERANCE,
    TYPE_COUNTS_KEY,
    CategoricalDriftMethod,
    ComparisonMethod,
    InferredType,
    MonitorError,
)
from runtime.monitor.statistics import common_counts
from tabular.contract import ViolationCheck


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


def _violation(feature: str, check: ViolationCheck, description: str) -> dict[str, str]:
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
        _violation(name, ViolationCheck.MISSING_COLUMN, f"Column '{name}' is missing ({counts}).")
        for name in expected
        if name not in seen
    ] + [
        _violation(
            name, ViolationCheck.EXTRA_COLUMN, f"Column '{name}' is not in the baseline ({counts})."
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
        (ViolationCheck.DATA_TYPE, _data_type_problem(feature, constraint, config)),
        (ViolationCheck.COMPLETENESS, _completeness_problem(feature, constraint, item_count)),
        (ViolationCheck.NON_NEGATIVE, _non_negative_problem(feature, constraint)),
        (ViolationCheck.CATEGORICAL_VALUES, _domain_problem(feature, constraint, config)),
    )
    return [
        _violation(feature["name"], check, problem)
        for check, problem in checks
        if problem is not None
    ]


def _data_type_problem(
    feature: Mapping[str, Any], constraint: Mapping[str, Any], config: Mapping[str, Any]
) -> str | None:
    present = common_counts(feature)["num_present"]
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
    present = common_counts(feature)["num_present"]
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
    present = common_counts(feature)["num_present"]
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
    present = common_counts(feature)["num_present"]
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
    counts = (common_counts(feature)["num_present"], common_counts(baseline)["num_present"])
    if drift["comparison_method"] == ComparisonMethod.ROBUST:
        distance = _robust(distance, *counts)
    if distance <= threshold:
        return None
    return _violation(
        feature["name"],
        ViolationCheck.BASELINE_DRIFT,
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
