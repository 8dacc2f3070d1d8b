"""What Preprocess is told about the data: one JSON document, written by the builder.

The target, the problem type, column names and every reading rule travel as data (the
``settings`` input), never on the command line, so a name holding a comma, a quote or a
leading ``-`` reaches the job as written. The builder (steps/preprocess.py) fills
:class:`Settings` from the config's ``data:`` section; preprocess.py reads it back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .dialect import Dialect
from .errors import DataError
from .names import (
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_SEED,
    DEFAULT_TEST_FRACTION,
    DEFAULT_TRAIN_SHARDS,
    DEFAULT_VALIDATION_FRACTION,
    REFUSE,
)


@dataclass(frozen=True)
class Settings:
    """Everything the job needs to know about the data (``--settings``: this, as JSON)."""

    target: str
    problem_type: str
    columns: tuple[str, ...] | None = None
    positive_class: str | None = None
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    test_fraction: float = DEFAULT_TEST_FRACTION
    seed: int = DEFAULT_SEED
    dialect: Dialect = field(default_factory=Dialect)
    categorical_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    max_categories: int = DEFAULT_MAX_CATEGORIES
    high_cardinality: str = REFUSE
    train_shards: int = DEFAULT_TRAIN_SHARDS
    """Files the train split is written as (fewer when it has fewer rows)."""

    def to_json(self) -> str:
        document = asdict(self)
        document["dialect"] = self.dialect.to_json()
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(document) - known)
        if unknown:
            raise DataError(f"settings: unknown key(s) {unknown}; known: {sorted(known)}")
        given = dict(document)
        for key in ("columns", "categorical_columns", "drop_columns"):
            if given.get(key) is not None:
                given[key] = tuple(given[key])
        shards = given.get("train_shards", DEFAULT_TRAIN_SHARDS)
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
            raise DataError(f"settings: train_shards must be a whole number >= 1, got {shards!r}")
        try:
            given["dialect"] = Dialect.from_json(document.get("dialect"))
            return cls(**given)
        except (TypeError, ValueError) as exc:
            raise DataError(f"settings: {exc}") from None
