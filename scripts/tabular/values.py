"""What a field means: a number, a category or a missing value, and the fix when it is none.

The rules, the same in every job:

* Surrounding spaces, tabs and no-break spaces are not part of a value.
* A value is missing when it is one of the dialect's ``missing_values`` (by default only the
  empty field). Nothing else is missing: ``NA``, ``None``, ``null``, ``nan`` are ordinary
  values, so a category ``NA`` (North America) stays a category.
* A number is an optional sign, digits, an optional decimal part and an optional exponent,
  written with the dialect's decimal mark and (if configured) thousands separator:
  ``-1.5``, ``+3``, ``1e-4``; with ``thousands: ','``, ``1,234.5``. ``inf`` and ``nan`` are
  not numbers, and neither is anything outside float32 (about 3.4e38), which is what XGBoost
  holds.
* A value that is not a number in a numeric column is refused, never turned into a missing
  value; the message names the column, the row and the fix (a setting for numbers written
  with other separators, ``data.missing_values`` for a missing-value spelling, the source for
  a spreadsheet error such as ``#DIV/0!``).
* Spreadsheet error values (``#N/A``, ``#DIV/0!``, ...) are refused in every column unless
  they are listed as missing values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from .dialect import SPACE_LIKE, WHITESPACE, Dialect
from .errors import DataError, describe_row

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest magnitude XGBoost can hold (it stores features and labels as float32)."""
SPREADSHEET_ERRORS = frozenset(
    {"#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!", "#SPILL!", "#CALC!"}
)
MISSING_SPELLINGS = frozenset(
    {"na", "n/a", "nan", "null", "none", "nil", "nat", "missing", "\\n", "-", "--", "?", "."}
)
"""Spellings other tools use for a missing value (compared in lower case); data here."""
CURRENCY_OR_PERCENT = re.compile(r"^[-+]?[$€£¥%]|[$€£¥%]$|^[A-Z]{3} ")
NUMERIC_INTENT_SHARE = 0.5
"""A column whose values are mostly numbers (apart from missing-value spellings) is numeric."""
CATEGORICAL_HINT = "list the column in data.categorical_columns if it is a category"


def strip(values: pd.Series) -> pd.Series:
    """The values as text without surrounding whitespace (missing fields stay missing)."""
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype(object)
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            values = values.map(lambda v: v if isinstance(v, str) or pd.isna(v) else str(v))
    return values.str.strip(WHITESPACE)


def missing_mask(stripped: pd.Series, dialect: Dialect) -> np.ndarray:
    """True where a stripped value is missing under ``dialect``."""
    missing = stripped.isna() | stripped.isin(dialect.missing_values)
    return np.asarray(missing, dtype=bool)


@cache
def number_pattern(decimal: str, thousands: str | None) -> re.Pattern[str]:
    """The full-match pattern of a number written with ``decimal`` and ``thousands``."""
    d = re.escape(decimal)
    if thousands is None:
        integer = r"\d+"
    else:
        t = f"[{re.escape(SPACE_LIKE)}]" if thousands == " " else re.escape(thousands)
        integer = rf"\d{{1,3}}(?:{t}\d{{3}})+|\d+"
    # ASCII digits only: a parser reads no other ("１２" is not 12 to pandas or pyarrow).
    return re.compile(rf"[-+]?(?:(?:{integer})(?:{d}\d*)?|{d}\d+)(?:[eE][-+]?\d+)?", flags=re.ASCII)


def parse_numbers(stripped: pd.Series, dialect: Dialect) -> np.ndarray:
    """float64 of each stripped, non-missing value; NaN where it is not a finite number.

    Text held by pyarrow (how :mod:`tabular.csvio` reads) is parsed in pyarrow: a column of
    plain numbers is cast at once; any other column has each distinct value parsed once by
    the rules below (pyarrow's cast fails on every value those rules do not read as a number
    and reads the same float for the rest: tests/test_tabular.py pins both).
    """
    if len(stripped) == 0:
        return np.empty(0, dtype="float64")
    text = _arrow_text(stripped)
    if text is None:
        return _parse_text(stripped, dialect)
    if dialect.is_plain:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            # A refused cast costs about 0.6 us per value it refuses (an error made for each;
            # 12 ms for 20k words): a column whose first values are not all numbers goes to
            # its distinct values at once.
            pc.cast(text.slice(0, CAST_PROBE), pa.float64())
            return _finite(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))
        except pa.ArrowInvalid:
            pass  # some value is not a plain number
    encoded = text.dictionary_encode()
    distinct = pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    return _parse_text(distinct, dialect)[encoded.indices.to_numpy(zero_copy_only=False)]


CAST_PROBE = 64
"""Values :func:`parse_numbers` casts first, to tell a column of words from one of numbers."""


def _arrow_text(stripped: pd.Series) -> Any:
    """The values as one pyarrow string array when pyarrow holds them without a gap, else None."""
    dtype = stripped.dtype
    if not isinstance(dtype, pd.StringDtype) or dtype.storage != "pyarrow" or stripped.hasnans:
        return None
    import pyarrow as pa

    text = pa.array(stripped.array)  # zero-copy: the array pandas holds
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def _parse_text(stripped: pd.Series, dialect: Dialect) -> np.ndarray:
    if dialect.is_plain:
        # pandas' parser reads exactly the plain grammar plus inf/nan, removed below; it rounds a
        # number written with a leading "+" less exactly than without, so the sign goes first.
        parsed = pd.to_numeric(
            stripped.astype(object).str.replace(EXPLICIT_PLUS, "", regex=True), errors="coerce"
        )
    else:
        text = stripped.astype(object)
        pattern = number_pattern(dialect.decimal, dialect.thousands)
        ok = text.map(lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None)
        cleaned = text.where(ok.astype(bool)).map(
            lambda v: _plain(v, dialect) if isinstance(v, str) else v
        )
        parsed = pd.to_numeric(cleaned, errors="coerce")
    return _finite(np.asarray(parsed, dtype="float64"))


EXPLICIT_PLUS = r"^\+(?=[\d.])"
"""A "+" that starts a number (not "+-1", not "++1")."""


def field_value(raw: object, dialect: Dialect, numeric: bool) -> float | str | None:
    """One field as :func:`coerce_features` reads it, for a few rows at a time: NaN when
    missing, a float (numeric) or a ``str`` (categorical); None when the field is anything but
    a plain value (a number in another form, a refused value), which the caller then reads
    with :func:`coerce_features` for its value or its error. tests/unit/scripts pins that both
    read every accepted field the same.
    """
    if not isinstance(raw, str):
        return np.nan if pd.api.types.is_scalar(raw) and pd.isna(raw) else None
    value = raw.strip(WHITESPACE)
    if value in dialect.missing_values:
        return np.nan
    if not numeric:
        return None if value in SPREADSHEET_ERRORS else value
    if not (dialect.is_plain and value.isascii() and _plain_number(value)):
        return None
    number = float(value) + 0.0  # "-0" is 0.0, as _finite reads it
    return number if abs(number) <= FLOAT32_MAX else None


def _plain_number(value: str) -> bool:
    return number_pattern(".", None).fullmatch(value) is not None


def _finite(values: np.ndarray) -> np.ndarray:
    """NaN where a value is not finite; ``-0.0`` as ``0.0`` (pandas reads "-0" as the integer 0)."""
    return np.where(np.isfinite(values), values + 0.0, np.nan)


def not_numbers(numbers: np.ndarray) -> np.ndarray:
    """True where :func:`parse_numbers` found no number, or one XGBoost cannot hold."""
    return np.isnan(numbers) | (np.abs(numbers) > FLOAT32_MAX)


def _plain(value: str, dialect: Dialect) -> str:
    if dialect.thousands is not None:
        for separator in SPACE_LIKE if dialect.thousands == " " else dialect.thousands:
            value = value.replace(separator, "")
    return value.replace(dialect.decimal, ".")


READINGS: tuple[tuple[str, str | None], ...] = (
    (".", None), (".", ","), (",", None), (",", "."), (".", " "), (",", " "), (".", "'"),
    (".", "_"),
)  # fmt: skip
"""(decimal mark, thousands separator) pairs spreadsheets and locales write numbers with."""


def readings(value: str, dialect: Dialect) -> list[str]:
    """The settings under which ``value`` would be a number (none: it is not a number).

    One setting per distinct number the value could be (``1,234``: 1234 or 1.234), the
    simplest first; only what differs from ``dialect`` is named.
    """
    numbers: dict[float, str] = {}
    for decimal, thousands in READINGS:
        if (decimal, thousands) == (dialect.decimal, dialect.thousands):
            continue
        if not number_pattern(decimal, thousands).fullmatch(value):
            continue
        reading = Dialect(
            dialect.delimiter if dialect.delimiter not in (decimal, thousands) else "\t",
            decimal,
            thousands,
        )
        number = float(parse_numbers(pd.Series([value], dtype=object), reading)[0])
        if number in numbers:
            continue
        parts = [] if decimal == dialect.decimal else [f"data.decimal: {decimal!r}"]
        if thousands != dialect.thousands:
            parts.append(f"data.thousands: {thousands!r}" if thousands else "no data.thousands")
        numbers[number] = " and ".join(parts)
    return list(numbers.values())


def explain(value: str, dialect: Dialect) -> str:
    """Why a (stripped) value is not a number, and the fix."""
    if value in SPREADSHEET_ERRORS:
        return (
            f"{value!r} is a spreadsheet formula error; fix the formula in the source, or add "
            f"{value!r} to data.missing_values to read it as a missing value"
        )
    if value.lower() in MISSING_SPELLINGS:
        return (
            f"{value!r} is not a number; if it means a missing value, add {value!r} to "
            "data.missing_values (only the empty field is missing by default)"
        )
    if number_pattern(dialect.decimal, dialect.thousands).fullmatch(value) and not (
        abs(parse_numbers(pd.Series([value], dtype=object), dialect)[0]) <= FLOAT32_MAX
    ):
        return (
            f"{value!r} is outside the range XGBoost holds (float32, +-{FLOAT32_MAX:.3g}); "
            "rescale the column (e.g. divide it or take its log) or remove the value"
        )
    if value.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        return f"{value!r} is not a finite number; remove it or blank it (a missing value)"
    options = readings(value, dialect)
    if options:
        current = f"data.decimal: '{dialect.decimal}'" + (
            f", data.thousands: '{dialect.thousands}'" if dialect.thousands else ""
        )
        return (
            f"{value!r} is a number written with other separators than configured "
            f"({current}); set {' or '.join(options)}"
        )
    if CURRENCY_OR_PERCENT.search(value):
        return (
            f"{value!r} carries a currency or percent sign; export the column as plain "
            "numbers (no currency or percent cell format)"
        )
    return f"{value!r} is not a number"


NUMBER_CHARACTERS = r"[-+]?[$€£¥]?[\d.,'_" + SPACE_LIKE + r"]*\d[\d.,'_" + SPACE_LIKE + r"]*%?"
"""Digits, separators, a sign and a currency or percent sign: what a number-like value holds."""


def is_number_like(value: str, dialect: Dialect) -> bool:
    """Meant as a number by whoever wrote it, although not one under ``dialect``."""
    if readings(value, dialect):
        return True
    bare = re.sub(r"[$€£¥%]", "", value)
    return bare != value and bool(number_pattern(".", ",").fullmatch(bare))


def number_like(stripped: pd.Series, dialect: Dialect) -> np.ndarray:
    """:func:`is_number_like` of each value (only candidates made of number characters tested)."""
    text = stripped.astype(object)
    candidates = text.str.fullmatch(NUMBER_CHARACTERS, flags=re.ASCII).fillna(False).astype(bool)
    verdict = {v: is_number_like(v, dialect) for v in pd.unique(text[candidates])}
    return np.asarray(text.map(lambda v: verdict.get(v, False)), dtype=bool)


def missing_spellings(stripped: pd.Series) -> np.ndarray:
    """Values other tools write for a missing value (``NULL``, ``NA``, ``#N/A`` ...)."""
    text = stripped.astype(object)
    lower = text.str.lower()
    return np.asarray(lower.isin(MISSING_SPELLINGS) | text.isin(SPREADSHEET_ERRORS), dtype=bool)


def not_a_number(column: str, label: object, value: str, dialect: Dialect, count: int) -> str:
    """The message for a numeric column holding ``value`` at ``label`` (``count`` such values)."""
    return (
        f"{describe_row(label)}: column {column!r} is numeric, but {explain(value, dialect)} "
        f"({count} value(s) of this column are not numbers). Fix them in the source, or "
        f"{CATEGORICAL_HINT}."
    )


def numeric_values(raw: pd.Series, dialect: Dialect, column: str) -> np.ndarray:
    """A numeric column's float64 values (NaN where missing); refuse any other value.

    A column already held as numbers (a typed split's floats or integers, or a column a reader
    parsed) is taken as it is, apart from values XGBoost cannot hold.
    """
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        numbers = np.asarray(raw.to_numpy(dtype=np.float64, na_value=np.nan)) + 0.0
        bad = np.isinf(numbers) | (np.abs(numbers) > FLOAT32_MAX)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            value = str(raw.iloc[first])
            raise DataError(not_a_number(column, raw.index[first], value, dialect, int(bad.sum())))
        return numbers
    stripped = strip(raw)
    missing = missing_mask(stripped, dialect)
    numbers = parse_numbers(stripped[~missing], dialect)
    return checked_numbers(stripped, missing, numbers, column, dialect)


def checked_numbers(
    stripped: pd.Series, missing: np.ndarray, numbers: np.ndarray, column: str, dialect: Dialect
) -> np.ndarray:
    """The column's values from the numbers parsed for its present values; refuse a bad one."""
    bad = not_numbers(numbers)
    if bad.any():
        present = stripped[~missing]
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            not_a_number(column, present.index[first], present.iloc[first], dialect, int(bad.sum()))
        )
    values = np.full(len(stripped), np.nan)
    values[~missing] = numbers
    return values


def categorical_values(raw: pd.Series, dialect: Dialect, column: str) -> np.ndarray:
    """A categorical column as ``str`` objects (NaN where missing); refuse spreadsheet errors."""
    coded = categorical_codes(raw, dialect, column)
    if coded is not None:
        codes, distinct = coded
        return np.asarray([*distinct, np.nan], dtype=object)[codes]  # code -1: the NaN
    stripped = strip(raw)
    missing = missing_mask(stripped, dialect)
    values = np.full(len(raw), np.nan, dtype=object)
    present = stripped[~missing]
    errors = np.asarray(present.isin(SPREADSHEET_ERRORS), dtype=bool)
    if errors.any():
        first = int(np.flatnonzero(errors)[0])
        _refuse_category(column, present.index[first], present.iloc[first], dialect, errors)
    values[~missing] = present.astype(object).to_numpy(dtype=object)
    return values


def categorical_codes(
    raw: pd.Series, dialect: Dialect, column: str
) -> tuple[np.ndarray, list[Any]] | None:
    """A column of text as codes into its distinct values, each read once as
    :func:`categorical_values` reads a value (``str``, NaN where missing; code -1 a missing
    field); a spreadsheet error refused, naming its first row. None for a column holding
    anything but text (read value by value: 1 and 1.0 are one distinct value, two categories).
    """
    if not is_text(raw):
        return None
    codes, found = pd.factorize(raw, use_na_sentinel=True)
    distinct = found.tolist()
    read = [field_value(v, dialect, numeric=False) for v in distinct]  # None: refused
    refused = [i for i, v in enumerate(read) if v is None]
    if refused:
        rows = np.isin(codes, refused)
        first = int(np.flatnonzero(rows)[0])
        value = distinct[codes[first]].strip(WHITESPACE)
        _refuse_category(column, raw.index[first], value, dialect, rows)
    return codes, read


def _refuse_category(
    column: str, label: object, value: str, dialect: Dialect, errors: np.ndarray
) -> None:
    raise DataError(
        f"{describe_row(label)}: column {column!r}: {explain(value, dialect)} "
        f"({int(errors.sum())} such value(s))."
    )


def is_text(column: pd.Series) -> bool:
    """Strings (and missing values) only: each distinct value a distinct category."""
    if isinstance(column.dtype, pd.StringDtype):
        return True
    return column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) in (
        "string",
        "empty",
    )


def coerce_features(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], dialect: Dialect
) -> pd.DataFrame:
    """The feature columns typed as the transformer expects: float64 numbers, ``str`` categories.

    Missing values are NaN in both. Used by every job on every row it reads, so a value is
    read the same way in training, evaluation and serving.
    """
    out: dict[str, object] = {}
    for name in numeric:
        out[name] = numeric_values(frame[name], dialect, name)
    for name in categorical:
        out[name] = pd.Series(
            categorical_values(frame[name], dialect, name), index=frame.index, dtype=object
        )
    return pd.DataFrame(out, index=frame.index)[list(numeric) + list(categorical)]
