"""Feature typing: which columns are numbers and which are categories, each value parsed once.

A column whose non-missing values are all numbers is numeric; one of mostly numbers but not all
is refused with its first other value and the fix (:mod:`tabular.values`); anything else is
categorical, as is every column named in ``categorical_columns``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass
class _Column:
    """What the values of one column seen so far say about its type."""

    present: int = 0
    numbers: int = 0
    others: int = 0
    spelled: int = 0
    number_like: int = 0
    first_other: tuple[Any, str] | None = None
    padded: bool = False
    """Some field, a missing one too, has surrounding whitespace, so a reader parsing the
    column as numbers would not read it as it stands (read as text, it is stripped)."""


@dataclass
class TypeProfile:
    """Feature typing over chunks: counts per column, then :meth:`types`.

    A column whose non-missing values are all numbers is numeric; one of mostly numbers but
    not all is refused with its first other value. Missing-value spellings other tools use
    (``NULL``, ``NA``...) do not count either way, so a category ``NA`` in a text column stays
    a category while ``NULL`` among numbers is refused with the fix (data.missing_values).
    """

    dialect: Dialect
    categorical: Sequence[str] = ()
    columns: dict[str, _Column] = field(default_factory=dict)
    source: str = "input data"

    def add(self, frame: pd.DataFrame) -> None:
        """Count the values of a chunk of text features; a float64 column is one the reader
        parsed, every field a number XGBoost holds or a missing value as written
        (:func:`tabular.csvio.read_chunks`). A value outside float32 is not a number
        (:mod:`tabular.values`): counted with the column's other values, so the column is
        refused here with the value as written."""
        if not self.columns:
            _check_feature_names(frame, self.categorical)
            self.source = describe_source(frame)
        for name in frame.columns:
            column = self.columns.setdefault(str(name), _Column())
            raw = frame[name]
            if raw.dtype == np.float64:
                count = int(raw.notna().sum())
                column.present += count
                column.numbers += 0 if name in self.categorical else count
                continue
            if values.is_text(raw):
                self._add_text(column, str(name), raw)
                continue
            stripped = values.strip(raw)
            missing = values.missing_mask(stripped, self.dialect)
            present = stripped[~missing]
            column.present += len(present)
            if not column.padded and name not in self.categorical:
                # Any field, a missing one too (" " is missing), that is not as it stands.
                written = raw.notna().to_numpy(dtype=bool)
                column.padded = bool((raw[written] != stripped[written]).any())
            if name in self.categorical or not len(present):
                continue
            parsed = ~values.not_numbers(values.parse_numbers(present, self.dialect))
            column.numbers += int(parsed.sum())
            if parsed.all():
                continue
            others = present[~parsed]
            if column.first_other is None:
                column.first_other = (others.index[0], str(others.iloc[0]))
            counts = others.value_counts()
            distinct = pd.Series(counts.index, dtype=object)
            column.others += len(others)
            column.spelled += int(counts[values.missing_spellings(distinct)].sum())
            column.number_like += int(counts[values.number_like(distinct, self.dialect)].sum())

    def _add_text(self, column: _Column, name: str, raw: pd.Series) -> None:
        """:meth:`add`'s counts for a column of text, each distinct value read once and
        counted as often as it occurs."""
        codes, found = pd.factorize(raw, use_na_sentinel=True)
        counts = np.bincount(codes[codes >= 0], minlength=len(found))
        distinct = pd.Series(found)
        stripped = values.strip(distinct)
        missing = values.missing_mask(stripped, self.dialect)
        column.present += int(counts[~missing].sum())
        if name in self.categorical:
            return
        if not column.padded:  # any field, a missing one too (" " is missing), not as it stands
            column.padded = bool((distinct != stripped).any())
        if missing.all():
            return
        present = np.flatnonzero(~missing)
        parsed = ~values.not_numbers(values.parse_numbers(stripped.iloc[present], self.dialect))
        column.numbers += int(counts[present[parsed]].sum())
        if parsed.all():
            return
        other = present[~parsed]
        if column.first_other is None:
            row = int(np.flatnonzero(np.isin(codes, other))[0])
            column.first_other = (raw.index[row], str(stripped.iloc[codes[row]]))
        text = pd.Series(stripped.iloc[other].to_numpy(dtype=object), dtype=object)
        weights = counts[other]
        column.others += int(weights.sum())
        column.spelled += int(weights[values.missing_spellings(text)].sum())
        column.number_like += int(weights[values.number_like(text, self.dialect)].sum())

    def types(self) -> FeatureTypes:
        """The feature types; refuse empty columns and columns of mostly numbers."""
        empty = [name for name, column in self.columns.items() if not column.present]
        if empty:
            raise DataError(
                f"{self.source}: feature column(s) {empty} are empty in every row "
                "that has a target. Remove them from the input data (or list them in "
                "data.drop_columns)."
            )
        numeric, categorical = [], []
        for name, column in self.columns.items():
            if name in self.categorical or column.first_other is not None:
                _refuse_mostly_numbers(name, column, self.dialect)
                categorical.append(name)
            else:
                numeric.append(name)
        return FeatureTypes(columns=list(self.columns), numeric=numeric, categorical=categorical)

    def plain_numbers(self, numeric: Sequence[str]) -> list[str]:
        """Numeric columns whose values are numbers as written (no surrounding whitespace):
        a reader may parse them as numbers directly."""
        return [name for name in numeric if not self.columns[name].padded]


def _check_feature_names(frame: pd.DataFrame, categorical: Sequence[str]) -> None:
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


def type_features(
    frame: pd.DataFrame, dialect: Dialect | None = None, categorical: Sequence[str] = ()
) -> tuple[FeatureTypes, pd.DataFrame]:
    """Type each column (:class:`TypeProfile`), and return the typed columns."""
    dialect = dialect or Dialect()
    profile = TypeProfile(dialect, categorical)
    if frame.shape[1] == 0:
        _check_feature_names(frame, categorical)
    profile.add(frame)
    types = profile.types()
    return types, values.coerce_features(frame, types.numeric, types.categorical, dialect)


def _refuse_mostly_numbers(name: str, column: _Column, dialect: Dialect) -> None:
    """Refuse a column whose values are mostly numbers (or numbers in another notation)."""
    meant = column.numbers + column.number_like
    if column.first_other is None or not meant:
        return
    if meant >= values.NUMERIC_INTENT_SHARE * (column.present - column.spelled):
        label, value = column.first_other
        raise DataError(values.not_a_number(name, label, value, dialect, column.others))


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


def merge_typing(first: TypeProfile, second: TypeProfile) -> TypeProfile:
    """The typing of two parts of the input (each host's files, ``first`` the one whose files
    come first): counts added, the first other value the earliest by (file, line), as one
    profile of both parts would have it. A part that saw no rows adds nothing."""
    if not second.columns:
        return first
    if not first.columns:
        return second
    merged = TypeProfile(first.dialect, first.categorical, source=first.source)
    for name, one in first.columns.items():
        two = second.columns.get(name, _Column())
        others = [c for c in (one.first_other, two.first_other) if c is not None]
        merged.columns[name] = _Column(
            present=one.present + two.present,
            numbers=one.numbers + two.numbers,
            others=one.others + two.others,
            spelled=one.spelled + two.spelled,
            number_like=one.number_like + two.number_like,
            first_other=min(others, key=lambda item: item[0]) if others else None,
            padded=one.padded or two.padded,
        )
    return merged
