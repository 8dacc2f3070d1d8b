"""What the feature transformer is fitted from: train-split statistics, in mergeable form.

Preprocess reads its input in chunks (and may run on several instances), so the transformer
is not fitted on the rows themselves but on statistics gathered chunk by chunk and merged
(:func:`merge`, one function for chunks and for shards):

* categorical columns: the exact count of every value, from which come the most frequent value
  (ties: the smallest, as scikit-learn's imputer picks), the categories and, under
  ``data.high_cardinality: top_k``, the most frequent ones;
* numeric columns: the median. Exact while a column has at most :data:`EXACT_VALUES` distinct
  values in the train split (the count of each value); beyond that, from a log-bucket sketch
  (DDSketch's buckets: Masson, Rim and Lee, VLDB 2019) whose answer is within a relative
  error of :data:`RELATIVE_ACCURACY` of the exact median (the mean of the two middle values).

:func:`fit_transformer` then fits the same scikit-learn transformer as before on a few
synthetic rows that have exactly these medians, categories and frequency ranks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import features
from .errors import DataError

EXACT_VALUES = 1 << 16
"""Distinct values per numeric column counted exactly; past this, the sketch answers."""
RELATIVE_ACCURACY = 0.001
"""The sketch's median is within this relative error of the exact one."""
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = float(np.log(_GAMMA))


def _counted(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal keys merged: sorted distinct keys and their summed counts."""
    distinct, inverse = np.unique(keys, return_inverse=True)
    return distinct, np.bincount(inverse, weights=counts, minlength=len(distinct)).astype(np.int64)


def _bucket(values: np.ndarray) -> np.ndarray:
    """The sketch's signed bucket of each value: 0 for zero, +-(1 + ceil(log_gamma |x|))."""
    magnitude = np.abs(values)
    with np.errstate(divide="ignore"):
        index = np.ceil(np.log(np.where(magnitude > 0, magnitude, 1.0)) / _LOG_GAMMA)
    return np.where(values == 0, 0, np.sign(values) * (index + (1 << 20))).astype(np.int64)


def _bucket_value(bucket: int) -> float:
    """A value whose relative distance to every value of ``bucket`` is at most the accuracy."""
    if bucket == 0:
        return 0.0
    index = abs(bucket) - (1 << 20)
    return float(np.sign(bucket) * 2 * _GAMMA**index / (_GAMMA + 1))


@dataclass
class NumericSummary:
    """One numeric column of the train split: exact value counts, or the sketch's buckets."""

    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    exact: bool = True

    def add(self, values: np.ndarray) -> None:
        """Count the present values of a chunk (NaN is missing and not counted)."""
        present = values[~np.isnan(values)]
        keys = present if self.exact else _bucket(present)
        self._combine(keys, np.ones(len(present), dtype=np.int64), self.exact)

    def _combine(self, keys: np.ndarray, counts: np.ndarray, exact: bool) -> None:
        if self.exact and not exact:
            self.keys, self.exact = _bucket(self.keys), False
        elif exact and not self.exact:
            keys = _bucket(keys)
        self.keys, self.counts = _counted(
            np.concatenate([self.keys, keys]), np.concatenate([self.counts, counts])
        )
        if self.exact and len(self.keys) > EXACT_VALUES:
            self.keys, self.counts = _counted(_bucket(self.keys), self.counts)
            self.exact = False

    def merged(self, other: NumericSummary) -> NumericSummary:
        out = NumericSummary(self.keys, self.counts, self.exact)
        out._combine(other.keys, other.counts, other.exact)
        return out

    def median(self) -> float:
        """The median (NaN without values): exact, or within the sketch's relative error."""
        total = int(self.counts.sum())
        if total == 0:
            return float("nan")
        cumulative = np.cumsum(self.counts)
        middle = [int(np.searchsorted(cumulative, r, side="right")) for r in
                  ((total - 1) // 2, total // 2)]  # fmt: skip
        if self.exact:
            return float(np.mean(self.keys[middle]))
        return float(np.mean([_bucket_value(int(self.keys[i])) for i in middle]))


@dataclass
class TrainStats:
    """The statistics of the train split the transformer is fitted from."""

    numeric: dict[str, NumericSummary] = field(default_factory=dict)
    categorical: dict[str, Counter[str]] = field(default_factory=dict)
    rows: int = 0

    def add(self, typed: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> None:
        """Count the typed train rows of a chunk."""
        self.rows += len(typed)
        for name in numeric:
            self.numeric.setdefault(name, NumericSummary()).add(typed[name].to_numpy(np.float64))
        for name in categorical:
            counts = typed[name].value_counts(dropna=True)
            self.categorical.setdefault(name, Counter()).update(
                dict(zip(counts.index.astype(str), counts.to_numpy(dtype=np.int64), strict=True))
            )


def check_observed(
    source: str, stats: TrainStats, numeric: Sequence[str], categorical: Sequence[str]
) -> None:
    """Refuse a feature with no value in the train split. The imputers have nothing to learn
    from it and leave it out of the matrix, so every later column would carry the wrong name
    (a numeric one) or the feature names would not fit the matrix at all (a categorical one)."""
    empty = [n for n in numeric if not stats.numeric.get(n, NumericSummary()).counts.sum()]
    empty += [n for n in categorical if not stats.categorical.get(n)]
    if empty:
        listed = ", ".join(repr(n) for n in empty)
        raise DataError(
            f"{source}: {listed} {'has' if len(empty) == 1 else 'have'} no value in the "
            f"training split ({stats.rows} rows); a model cannot learn from a feature it never "
            f"sees. Drop {'it' if len(empty) == 1 else 'them'} (data.drop_columns: "
            f"[{listed}]) or fill in more rows."
        )


def merge(first: TrainStats, second: TrainStats) -> TrainStats:
    """The statistics of two parts of the train split (chunks, or instances' shares)."""
    numeric = dict(first.numeric)
    for name, summary in second.numeric.items():
        numeric[name] = numeric[name].merged(summary) if name in numeric else summary
    categorical = {name: Counter(counts) for name, counts in first.categorical.items()}
    for name, counts in second.categorical.items():
        categorical.setdefault(name, Counter()).update(counts)
    return TrainStats(numeric, categorical, first.rows + second.rows)


def most_frequent(counts: Counter[str]) -> str | None:
    """The most frequent value, the smallest among ties (scikit-learn's choice)."""
    if not counts:
        return None
    top = max(counts.values())
    return min(value for value, count in counts.items() if count == top)


def _ranked(counts: Counter[str], ranks: bool) -> list[str]:
    """Each value once, the most frequent twice; with ``ranks``, each value repeated by the
    dense rank of its count (1 for the rarest): the same order of frequencies as ``counts``."""
    if not ranks:
        top = most_frequent(counts)
        return sorted(counts) + ([top] if top is not None and len(counts) > 1 else [])
    levels = {count: rank for rank, count in enumerate(sorted(set(counts.values())), start=1)}
    return [value for value, count in sorted(counts.items()) for _ in range(levels[count])]


def fit_transformer(
    stats: TrainStats,
    numeric: Sequence[str],
    categorical: Sequence[str],
    top_k: int | None = None,
) -> tuple[Any, str]:
    """:func:`tabular.features.fit_transformer` fitted on rows that have the statistics'
    medians, categories and frequency order, so it equals one fitted on the train rows."""
    columns = {
        name: _ranked(stats.categorical.get(name, Counter()), top_k is not None)
        for name in categorical
    }
    height = max([1, *(len(rows) for rows in columns.values())])
    frame: dict[str, Any] = {
        name: np.full(height, stats.numeric.get(name, NumericSummary()).median())
        for name in numeric
    }
    for name, rows in columns.items():
        pad = most_frequent(stats.categorical.get(name, Counter()))
        frame[name] = pd.Series(rows + [pad] * (height - len(rows)), dtype=object)
    synthetic = pd.DataFrame(frame)[list(numeric) + list(categorical)]
    return features.fit_transformer(synthetic, numeric, categorical, top_k)
