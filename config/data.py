"""The ``data:`` section: where the CSV is, what it predicts and how it is written."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from config.fields import ColumnName, Fraction, Section, Text, data_uri
from tabular.dialect import (
    DECIMAL_MARKS,
    DEFAULT_MISSING_VALUES,
    DELIMITERS,
    THOUSANDS_SEPARATORS,
    dialect_problems,
)
from tabular.names import (
    BINARY,
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_SEED,
    DEFAULT_TEST_FRACTION,
    DEFAULT_VALIDATION_FRACTION,
    HIGH_CARDINALITY_POLICIES,
    PROBLEM_TYPES,
    REFUSE,
)

ProblemType = Literal[PROBLEM_TYPES]  # type: ignore[valid-type]
MIN_TRAINING_SHARE = 0.1
SAMPLE_SCHEME = "sample"
"""The scheme of the built-in data's URI (``sample://default``, :class:`SampleDataSection`)."""
SAMPLE_URI_PREFIX = f"{SAMPLE_SCHEME}://"


def is_sample(uri: str) -> bool:
    """Whether ``uri`` names the built-in data rather than a CSV of the user's."""
    return uri.startswith(SAMPLE_URI_PREFIX)


class DataSection(Section):
    input_uri: Annotated[str, data_uri(("s3", "file", SAMPLE_SCHEME))]
    target: ColumnName
    problem_type: ProblemType
    columns: list[ColumnName] | None = None
    positive_class: Text | None = None
    validation_fraction: Fraction = DEFAULT_VALIDATION_FRACTION
    test_fraction: Fraction = DEFAULT_TEST_FRACTION
    split_seed: int = DEFAULT_SEED
    scoring_uri: Annotated[str, data_uri(("s3", "file"))] | None = None
    delimiter: Literal[DELIMITERS] = ","  # type: ignore[valid-type]
    decimal: Literal[DECIMAL_MARKS] = "."  # type: ignore[valid-type]
    thousands: Literal[THOUSANDS_SEPARATORS] | None = None  # type: ignore[valid-type]
    missing_values: list[Text] = list(DEFAULT_MISSING_VALUES)
    categorical_columns: list[ColumnName] = []
    drop_columns: list[ColumnName] = []
    max_categories: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_MAX_CATEGORIES
    high_cardinality: Literal[HIGH_CARDINALITY_POLICIES] = REFUSE  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> DataSection:
        problems = dialect_problems(self.delimiter, self.decimal, self.thousands)
        if problems:
            raise ValueError(
                "data.delimiter, data.decimal and data.thousands do not fit together: "
                + "; ".join(problems)
            )
        if self.target in self.drop_columns:
            raise ValueError(f"data.drop_columns names the target '{self.target}'; remove it")
        both = sorted(set(self.drop_columns) & set(self.categorical_columns))
        if both:
            raise ValueError(
                f"{both} are both in data.drop_columns and data.categorical_columns; keep one"
            )
        if self.columns is not None:
            if self.target not in self.columns:
                raise ValueError(
                    f"target '{self.target}' is not in columns {self.columns}; "
                    "add it to data.columns or fix data.target"
                )
            if len(set(self.columns)) != len(self.columns):
                raise ValueError("data.columns names a column twice; give each a unique name")
            unknown = [
                c for c in [*self.categorical_columns, *self.drop_columns] if c not in self.columns
            ]
            if unknown:
                raise ValueError(f"{unknown} are not in data.columns {self.columns}; fix the names")
        if self.validation_fraction + self.test_fraction >= 1 - MIN_TRAINING_SHARE:
            raise ValueError(
                "validation_fraction + test_fraction must leave at least 10% for training"
            )
        if self.positive_class is not None and self.problem_type != BINARY:
            raise ValueError("positive_class applies to problem_type 'binary' only; remove it")
        return self


class SampleDataSection(Section):
    rows: Annotated[int, Field(ge=100, le=50_000_000)]
    seed: int
