"""The target column of a labelled data set: rows without one dropped, its values encoded.

Binary targets become 0/1 (0/1 kept as it is; otherwise ``positive_class`` names the class
encoded as 1, default the second value in sorted order, numeric order when both are numbers);
regression targets must all be numbers. Every other problem is a DataError naming the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import values
from .dialect import Dialect
from .errors import DataError, describe_row, describe_source
from .names import BINARY, PROBLEM_TYPES


@dataclass(frozen=True)
class TargetEncoding:
    """The target after validation: rows kept, 0/1 mapping (binary) and rows dropped."""

    frame: pd.DataFrame
    class_mapping: dict[str, int] | None
    dropped_rows: int


def _cleaned(column: pd.Series, dialect: Dialect) -> pd.Series:
    """Stripped values with missing ones as NaN."""
    stripped = values.strip(column)
    return stripped.where(~values.missing_mask(stripped, dialect))


def drop_missing_target(
    frame: pd.DataFrame, target: str, dialect: Dialect
) -> tuple[pd.DataFrame, int]:
    """Check that ``target`` exists; return the rows that have a target and the drop count."""
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise DataError(
            f"{describe_source(frame)}: target column {target!r} not found; columns are "
            f"[{columns}]. Set data.target in the config to one of them."
        )
    cleaned = _cleaned(frame[target], dialect)
    missing = cleaned.isna().to_numpy()
    kept = frame.loc[~missing].assign(**{target: cleaned[~missing]})
    return kept, int(missing.sum())


def encode_binary_target(
    labels: pd.Series, positive_class: str | None = None
) -> tuple[pd.Series, dict[str, int]]:
    """Encode a two-valued target as 0/1; return the codes and ``{original: code}``."""
    classes = [str(c) for c in pd.unique(labels.dropna())]
    source = describe_source(labels)
    if len(classes) != 2:
        shown = ", ".join(repr(c) for c in sorted(classes, key=str)[:20])
        raise DataError(
            f"{source}: binary target {labels.name!r} has {len(classes)} distinct "
            f"value(s) [{shown}]; exactly 2 are needed. Fix the labels (a missing label is "
            "an empty field, or a spelling in data.missing_values) or set problem_type to "
            "regression."
        )
    numbers = pd.to_numeric(pd.Series(classes, dtype=object), errors="coerce")
    if numbers.notna().all():
        ordered = [c for _, c in sorted(zip(numbers.tolist(), classes, strict=True))]
    else:
        ordered = sorted(classes)
    positive = ordered[1]
    if positive_class is not None:
        positive = _match_class(positive_class, ordered, source, str(labels.name))
    mapping = {c: int(c == positive) for c in ordered}
    return labels.astype(object).map(mapping).astype("int64"), mapping


def _match_class(wanted: str, classes: list[str], source: str, name: str) -> str:
    for value in classes:
        if value == wanted:
            return value
    wanted_number = pd.to_numeric(pd.Series([wanted], dtype=object), errors="coerce").iloc[0]
    for value in classes:
        number = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").iloc[0]
        if not pd.isna(number) and number == wanted_number:
            return value
    raise DataError(
        f"{source}: positive class {wanted!r} is not a value of target {name!r} "
        f"(values: {classes}). Set data.positive_class to one of them."
    )


def encode_regression_target(labels: pd.Series, dialect: Dialect | None = None) -> pd.Series:
    """Parse a regression target as finite float32-range numbers; name the first bad one."""
    dialect = dialect or Dialect()
    numbers = values.parse_numbers(labels, dialect)
    bad = values.not_numbers(numbers)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{describe_row(labels.index[position])}: regression target {labels.name!r}: "
            f"{values.explain(str(labels.iloc[position]), dialect)} ({int(bad.sum())} such "
            "row(s)). Fix or remove these rows, or set problem_type to binary for a two-class "
            "label."
        )
    return pd.Series(numbers, index=labels.index, name=labels.name)


def prepare_target(
    frame: pd.DataFrame,
    target: str,
    problem_type: str,
    positive_class: str | None = None,
    dialect: Dialect | None = None,
) -> TargetEncoding:
    """Drop rows without a target and encode it (0/1 for binary, float for regression)."""
    dialect = dialect or Dialect()
    if problem_type not in PROBLEM_TYPES:
        raise DataError(
            f"problem type {problem_type!r} is not supported. Use one of {PROBLEM_TYPES}."
        )
    if positive_class is not None and problem_type != BINARY:
        raise DataError(
            f"positive class {positive_class!r} was given for a {problem_type} problem. "
            "Remove data.positive_class or set problem_type to binary."
        )
    kept, dropped = drop_missing_target(frame, target, dialect)
    if kept.empty:
        raise DataError(
            f"{describe_source(frame)}: target column {target!r} is empty in every row. Fill "
            "in the target or choose another column."
        )
    mapping = None
    if problem_type == BINARY:
        encoded, mapping = encode_binary_target(kept[target], positive_class)
    else:
        encoded = encode_regression_target(kept[target], dialect)
    kept = kept.assign(**{target: encoded})
    return TargetEncoding(frame=kept, class_mapping=mapping, dropped_rows=dropped)
