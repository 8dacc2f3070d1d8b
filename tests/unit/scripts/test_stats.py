"""Train statistics: mergeable, exact where promised, within the stated bound where not."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from tabular import features, stats


def _summary(values: np.ndarray) -> stats.NumericSummary:
    summary = stats.NumericSummary()
    summary.add(values)
    return summary


@pytest.mark.parametrize("rows", [1, 2, 7, 1000])
def test_median_is_exact_while_values_are_few(rows: int) -> None:
    values = np.random.default_rng(rows).integers(-50, 50, rows).astype(float)
    values[::5] = np.nan
    np.testing.assert_equal(_summary(values).median(), np.nanmedian(values))


def test_median_past_the_exact_limit_is_within_the_relative_bound() -> None:
    rng = np.random.default_rng(0)
    for values in (rng.lognormal(3, 2, 200_000), rng.normal(-5, 1, 200_000)):
        summary = _summary(values)
        assert not summary.exact
        exact = np.median(values)
        assert abs(summary.median() - exact) <= stats.RELATIVE_ACCURACY * abs(exact) * 1.0001


def test_merging_parts_equals_counting_the_whole() -> None:
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(size=30_000), 2)
    parts = np.array_split(values, 7)
    merged = stats.NumericSummary()
    for part in parts:
        merged = merged.merged(_summary(part))
    whole = _summary(values)
    np.testing.assert_array_equal(merged.keys, whole.keys)
    assert merged.median() == whole.median() == np.median(values)
    many = rng.lognormal(size=100_000)  # one part exact, one sketched: merged as sketches
    mixed = _summary(many[:10]).merged(_summary(many[10:]))
    assert not mixed.exact and abs(mixed.median() / np.median(many) - 1) <= 1.0001e-3


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "n": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows).round(1)),
            "c": pd.Series(rng.choice(list("abcdefg"), rows, p=[.3, .2, .2, .1, .1, .05, .05]),
                           dtype=object),
        }
    )  # fmt: skip
    frame.loc[frame.index[::9], "c"] = np.nan
    return frame


@pytest.mark.parametrize("top_k", [None, 3])
def test_transformer_from_merged_statistics_equals_one_fitted_on_the_rows(
    top_k: int | None,
) -> None:
    frame = _frame(5000, 2)
    total = stats.TrainStats()
    for part in (frame.iloc[i::4] for i in range(4)):
        chunk = stats.TrainStats()
        chunk.add(part, ["n"], ["c"])
        total = stats.merge(total, chunk)
    assert total.rows == 5000
    assert total.categorical["c"] == Counter(frame["c"].dropna())
    from_stats, layout = stats.fit_transformer(total, ["n"], ["c"], top_k)
    direct, direct_layout = features.fit_transformer(frame, ["n"], ["c"], top_k)
    assert layout == direct_layout
    probe = pd.concat([frame.head(50), pd.DataFrame({"n": [np.nan], "c": ["unseen"]})])
    np.testing.assert_array_equal(
        features.feature_matrix(from_stats, probe, ["n"], ["c"], layout),
        features.feature_matrix(direct, probe, ["n"], ["c"], layout),
    )
    assert features.matrix_columns(from_stats, ["n"], ["c"]) == features.matrix_columns(
        direct, ["n"], ["c"]
    )


def test_most_frequent_breaks_ties_by_the_smallest_value() -> None:
    assert stats.most_frequent(Counter({"b": 2, "a": 2, "c": 1})) == "a"
    assert stats.most_frequent(Counter()) is None
