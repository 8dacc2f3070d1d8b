"""statistics.json: a data set's profile (counts, moments, KLL sketch, categories)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from runtime.monitor.contract import (
    CARDINALITY_THRESHOLD,
    FORMAT_VERSION,
    INTEGRAL_PATTERN,
    KLL_BUCKETS,
    KLL_C,
    KLL_K,
    NON_INTEGRAL_MARKS,
    NUMERIC_PATTERN,
    NUMERIC_TYPES,
    TYPE_COUNTS_KEY,
    InferredType,
    Profile,
)


def compute_statistics(frame: pd.DataFrame) -> dict[str, Any]:
    """Profile every column of ``frame`` into the statistics.json structure."""
    item_count = len(frame)
    features = [
        _feature_statistics(str(name), _profile(frame[name]), item_count) for name in frame.columns
    ]
    return {"version": FORMAT_VERSION, "dataset": {"item_count": item_count}, "features": features}


def _profile(column: pd.Series) -> Profile:
    if pd.api.types.is_bool_dtype(column.dtype):
        text = column.map({True: "true", False: "false"}).astype("string[pyarrow]")
        return _profile_text(text)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return _profile_numbers(column)
    return _profile_text(column)


def _profile_numbers(column: pd.Series) -> Profile:
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    values = values[~np.isnan(values)]
    integral = int(np.count_nonzero(np.isfinite(values) & (np.floor(values) == values)))
    counts = _type_counts(integral, len(values) - integral, 0)
    return Profile(present=len(values), type_counts=counts, numbers=values)


def _profile_text(column: pd.Series) -> Profile:
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
    return Profile(present=len(numbers), type_counts=counts, numbers=numbers)


def _profile_categories(text: pa.Array) -> Profile:
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
    return Profile(
        present=present, type_counts=type_counts, distinct=len(values), categories=categories
    )


def _type_counts(integral: int, fractional: int, string: int) -> dict[InferredType, int]:
    return {
        InferredType.INTEGRAL: integral,
        InferredType.FRACTIONAL: fractional,
        InferredType.STRING: string,
    }


def _inferred_type(profile: Profile) -> InferredType:
    if profile.present == 0:
        return InferredType.UNKNOWN
    if profile.type_counts[InferredType.STRING]:
        return InferredType.STRING
    if profile.type_counts[InferredType.FRACTIONAL]:
        return InferredType.FRACTIONAL
    return InferredType.INTEGRAL


def _feature_statistics(name: str, profile: Profile, item_count: int) -> dict[str, Any]:
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


def _string_statistics(profile: Profile, common: dict[str, int]) -> dict[str, Any]:
    buckets = [{"value": value, "count": count} for value, count in profile.categories or []]
    return {
        "common": common,
        "distinct_count": profile.distinct,
        "distribution": {"categorical": {"buckets": buckets}},
    }


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def common_counts(feature: Mapping[str, Any]) -> dict[str, int]:
    stats = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
    common = stats.get("common") or {}
    return {
        "num_present": int(common.get("num_present", 0)),
        "num_missing": int(common.get("num_missing", 0)),
    }
