"""schema.json: what Preprocess learned about the data, read by every later job and the model.

Preprocess writes it beside the fitted transformer; Train copies both into the model, so the
serving code reads the data exactly as Preprocess did (:attr:`Schema.dialect`) and builds the
same matrix (:meth:`Schema.encode`). Train and Evaluate read the splits Preprocess wrote with
:func:`read_split`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .csvio import check_column_names, read_csv_chunks, read_csv_file
from .dialect import DEFAULT_MISSING_VALUES, Dialect
from .errors import DataError
from .features import DENSE, feature_matrix
from .files import is_temporary
from .job import find_input
from .names import CSV_SUFFIX, SCHEMA_FILE, SHARD_PART, TRANSFORMER_FILE
from .values import coerce_features, numeric_values

BATCH_ROWS = 20_000
"""Rows per batch of :func:`read_parts`: about 70 MiB of text and matrix at a dozen columns."""


@dataclass(frozen=True)
class Schema:
    """The parts of schema.json that decide how rows are read and encoded."""

    target: str
    problem_type: str
    feature_columns: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES
    matrix_layout: str = DENSE

    @property
    def dialect(self) -> Dialect:
        """How split files and requests are read: canonical CSV, the data's missing values."""
        return Dialect(missing_values=self.missing_values)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Schema:
        return cls(
            target=document["target"],
            problem_type=document["problem_type"],
            feature_columns=list(document["feature_columns"]),
            numeric_columns=list(document["numeric_columns"]),
            categorical_columns=list(document["categorical_columns"]),
            missing_values=tuple(document.get("missing_values", DEFAULT_MISSING_VALUES)),
            matrix_layout=document.get("matrix_layout", DENSE),
        )

    def encode(self, transformer: Any, features: pd.DataFrame) -> Any:
        """The model's input for rows of text features: typed as in training, transformed.

        Training, evaluation and serving all build their matrix here, so a value means the
        same in each (a bad value raises DataError naming its row and column).
        """
        typed = coerce_features(
            features, self.numeric_columns, self.categorical_columns, self.dialect
        )
        return feature_matrix(
            transformer, typed, self.numeric_columns, self.categorical_columns, self.matrix_layout
        )


def load_fitted(folder: Path) -> tuple[dict[str, Any], Any]:
    """schema.json (as a document) and the fitted transformer in ``folder``."""
    import joblib

    document = json.loads((folder / SCHEMA_FILE).read_text(encoding="utf-8"))
    return document, joblib.load(folder / TRANSFORMER_FILE)


def read_labelled(path: Path, schema: Schema, fix: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a split Preprocess wrote (header, target first): text features, float labels.

    ``fix`` is what to do when the file does not fit the schema.
    """
    return _labelled(read_csv_file(path, schema.dialect), path.name, schema, fix)


def _labelled(
    frame: pd.DataFrame, name: str, schema: Schema, fix: str
) -> tuple[pd.DataFrame, np.ndarray]:
    expected = [schema.target, *schema.feature_columns]
    check_column_names(name, list(frame.columns))
    if list(frame.columns) != expected:
        raise DataError(
            f"{name}: columns {list(frame.columns)} do not match the schema {expected}. {fix}"
        )
    labels = numeric_values(frame[schema.target], schema.dialect, schema.target)
    missing = np.flatnonzero(np.isnan(labels))
    if missing.size:
        raise DataError(
            f"{name} line {frame.index[missing[0]][1]}: target {schema.target!r} is missing. {fix}"
        )
    return frame[schema.feature_columns], labels


def split_files(folder: Path, split: str, missing_fix: str) -> list[Path]:
    """The files of split ``split`` in ``folder``, in name order: its part files
    (``<split>-part-*.csv``: all of them, or the share a training host was given), else
    ``<split>.csv`` or the folder's only CSV file."""
    found = folder.glob(f"{split}{SHARD_PART}*{CSV_SUFFIX}") if folder.is_dir() else ()
    parts = sorted(p for p in found if not is_temporary(p))
    return parts or [find_input(folder, split + CSV_SUFFIX, missing_fix)]


def read_parts(
    folder: Path,
    split: str,
    schema: Schema,
    missing_fix: str,
    mismatch_fix: str,
    rows: int = BATCH_ROWS,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The split ``split`` in ``folder`` (see :func:`split_files`) in batches of at most
    ``rows`` rows, file after file: text features and float labels. A job that can take the
    split a batch at a time (Train's data iterator) holds one batch's text, never a file's."""
    for path in split_files(folder, split, missing_fix):
        for frame in read_csv_chunks(path, schema.dialect, rows):
            yield _labelled(frame, path.name, schema, mismatch_fix)


def read_split(
    folder: Path, split: str, schema: Schema, missing_fix: str, mismatch_fix: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """The split ``split`` in ``folder``, whole (every part file, in name order)."""
    parts = [
        read_labelled(p, schema, mismatch_fix) for p in split_files(folder, split, missing_fix)
    ]
    if len(parts) == 1:
        return parts[0]
    return pd.concat([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
