"""Feature typing: which columns are numbers and which are categories, each value parsed once.

A column whose non-missing values are all numbers is numeric; one of mostly numbers but not all
is refused with its first other value and the fix (:mod:`tabular.values`); anything else is
categorical, as is every column named in ``categorical_columns``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import values
from .dialect import Dialect
from .errors import DataError, describe_source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureTypes:
    """Feature columns in file order, and the same columns split by type."""

    columns: list[str]
    numeric: list[str]
    categorical: list[str]


def infer_feature_types(
    frame: pd.DataFrame, dialect: Dialect | None = None, categorical: Sequence[str] = ()
) -> FeatureTypes:
    """Type each column as numeric or categorical (see :func:`type_features`)."""
    return type_features(frame, dialect, categorical)[0]


def type_features(
    frame: pd.DataFrame, dialect: Dialect | None = None, categorical: Sequence[str] = ()
) -> tuple[FeatureTypes, pd.DataFrame]:
    """Type each column, and return the typed columns (each value parsed once).

    A column whose non-missing values are all numbers is numeric; one of mostly numbers but
    not all is refused with its first other value. Missing-value spellings other tools use
    (``NULL``, ``NA``...) do not count either way, so a category ``NA`` in a text column stays
    a category while ``NULL`` among numbers is refused with the fix (data.missing_values).
    """
    dialect = dialect or Dialect()
    if frame.shape[1] == 0:
        raise DataError(
            "the data has no feature columns besides the target. Add feature columns "
            "to the input files."
        )
    unknown = [n for n in categorical if n not in frame.columns]
    if unknown:
        raise DataError(
            f"data.categorical_columns names {unknown}, which are not feature columns "
            f"(features: {list(frame.columns)}). Fix data.categorical_columns."
        )
    empty: list[str] = []
    numeric: list[str] = []
    categorical_columns: list[str] = []
    typed: dict[str, Any] = {}
    for name in frame.columns:
        stripped = values.strip(frame[name])
        missing = values.missing_mask(stripped, dialect)
        if missing.all():
            empty.append(str(name))
            continue
        present = stripped[~missing]
        numbers = None if name in categorical else values.parse_numbers(present, dialect)
        if numbers is not None and not np.isnan(numbers).any():
            numeric.append(name)
            typed[name] = values.checked_numbers(stripped, missing, numbers, str(name), dialect)
            continue
        if numbers is not None:
            _refuse_mostly_numbers(str(name), present, numbers, dialect)
        categorical_columns.append(name)
        typed[name] = pd.Series(
            values.categorical_values(frame[name], dialect, str(name)), index=frame.index
        )
    if empty:
        raise DataError(
            f"{describe_source(frame)}: feature column(s) {empty} are empty in every row "
            "that has a target. Remove them from the input data (or list them in "
            "data.drop_columns)."
        )
    types = FeatureTypes(
        columns=list(frame.columns), numeric=numeric, categorical=categorical_columns
    )
    return types, pd.DataFrame(typed, index=frame.index)[types.numeric + types.categorical]


def _refuse_mostly_numbers(
    name: str, present: pd.Series, numbers: np.ndarray, dialect: Dialect
) -> None:
    """Refuse a column whose values are mostly numbers (or numbers in another notation)."""
    parsed = ~np.isnan(numbers)
    others = present[~parsed].value_counts()  # each other value once, with its count
    distinct = pd.Series(others.index, dtype=object)
    spelled = int(others[values.missing_spellings(distinct)].sum())
    meant = int(parsed.sum()) + int(others[values.number_like(distinct, dialect)].sum())
    if meant and meant >= values.NUMERIC_INTENT_SHARE * (len(present) - spelled):
        first = int(np.flatnonzero(~parsed)[0])
        raise DataError(
            values.not_a_number(
                name, present.index[first], present.iloc[first], dialect, int((~parsed).sum())
            )
        )


def coerce_features(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    dialect: Dialect | None = None,
) -> pd.DataFrame:
    """The feature columns typed for the transformer (:func:`tabular.values.coerce_features`)."""
    return values.coerce_features(frame, numeric, categorical, dialect or Dialect())


def warn_missing_spellings(typed: pd.DataFrame, categorical: Sequence[str]) -> None:
    """Log categories spelled like a missing value elsewhere: kept, but worth a look."""
    for name in categorical:
        column = pd.Series(pd.unique(typed[name].dropna()), dtype=object)
        spelled = sorted(column[values.missing_spellings(column)])
        if spelled:
            logger.warning(
                "column %r: %s read as categories; add them to data.missing_values if they "
                "mean a missing value",
                name,
                spelled,
            )
