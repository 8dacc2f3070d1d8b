"""How a CSV file is written: delimiter, decimal mark, thousands separator, missing values.

The user's files are read in the configured :class:`Dialect` (``data.delimiter``,
``data.decimal``, ``data.thousands``, ``data.missing_values``). Every file a job writes for
another job, and every request the model serves, is in the *canonical* dialect: comma
delimiter, ``.`` decimal mark, no thousands separator, RFC 4180 quoting, UTF-8 without BOM,
LF line endings, an empty field for a missing value. The missing-value spellings travel with
the model (schema.json), so a request spells a missing value as the training data did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

DELIMITERS = (",", ";", "\t", "|")
DECIMAL_MARKS = (".", ",")
THOUSANDS_SEPARATORS = (",", ".", " ", "'", "_")
"""A space separator also matches the no-break spaces spreadsheets write (U+00A0, U+202F)."""
SPACE_LIKE = " \u00a0\u202f"
WHITESPACE = " \t\u00a0\u202f"
"""Surrounding characters that are not part of a value (or of a column name)."""
EMPTY = ""
DEFAULT_MISSING_VALUES: tuple[str, ...] = (EMPTY,)


@dataclass(frozen=True)
class Dialect:
    """The reading rules of one CSV source; the empty field is always a missing value."""

    delimiter: str = ","
    decimal: str = "."
    thousands: str | None = None
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES

    def __post_init__(self) -> None:
        markers = tuple(dict.fromkeys([EMPTY, *(m.strip(WHITESPACE) for m in self.missing_values)]))
        object.__setattr__(self, "missing_values", markers)
        problems = dialect_problems(self.delimiter, self.decimal, self.thousands)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def canonical(self) -> Dialect:
        """The dialect of the files jobs exchange and of requests: same missing values."""
        return replace(self, delimiter=",", decimal=".", thousands=None)

    @property
    def is_plain(self) -> bool:
        """Numbers need no rewriting before they are parsed (``.`` decimals, no separator)."""
        return self.decimal == "." and self.thousands is None

    def to_json(self) -> dict[str, Any]:
        return {
            "delimiter": self.delimiter,
            "decimal": self.decimal,
            "thousands": self.thousands,
            "missing_values": list(self.missing_values),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any] | None) -> Dialect:
        document = document or {}
        return cls(
            delimiter=document.get("delimiter", ","),
            decimal=document.get("decimal", "."),
            thousands=document.get("thousands"),
            missing_values=tuple(document.get("missing_values", DEFAULT_MISSING_VALUES)),
        )


def dialect_problems(delimiter: str, decimal: str, thousands: str | None) -> list[str]:
    """What is wrong with a combination of delimiter, decimal mark and thousands separator."""
    problems = []
    if delimiter not in DELIMITERS:
        problems.append(f"delimiter {delimiter!r} is not one of {list(DELIMITERS)}")
    if decimal not in DECIMAL_MARKS:
        problems.append(f"decimal mark {decimal!r} is not one of {list(DECIMAL_MARKS)}")
    if thousands is not None and thousands not in THOUSANDS_SEPARATORS:
        problems.append(
            f"thousands separator {thousands!r} is not one of {list(THOUSANDS_SEPARATORS)}"
        )
    if thousands is not None and thousands == decimal:
        problems.append(
            f"the thousands separator and the decimal mark are both {decimal!r}; a number "
            "could be read two ways"
        )
    return problems


def other_delimiters(delimiter: str) -> Sequence[str]:
    return [d for d in DELIMITERS if d != delimiter]
