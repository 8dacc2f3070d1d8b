"""schema.json: what Preprocess learned about the data, read by every later job and the model.

Preprocess writes it beside the fitted transformer; Train copies both into the model, so the
serving code reads the data exactly as Preprocess did (:attr:`Schema.dialect`) and builds the
same matrix (:meth:`Schema.encode`). Train and Evaluate read the splits Preprocess wrote with
:func:`read_split`.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .csvio import FEW_RECORDS
from .dialect import DEFAULT_MISSING_VALUES, Dialect
from .errors import DataError, row_index
from .features import DENSE, TableEncoder, feature_matrix, table_encoder
from .files import is_temporary
from .job import find_input
from .names import PARQUET_SUFFIX, SCHEMA_FILE, SHARD_PART, TRANSFORMER_FILE
from .values import categorical_codes, coerce_features, numeric_values

TEXT = pd.StringDtype("pyarrow")
BATCH_ROWS = 20_000
"""Rows per batch of :func:`read_parts` (Train holds one batch of a split at a time)."""


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

    def encode(self, transformer: Any, features: pd.DataFrame, dtype: Any = np.float64) -> Any:
        """The model's input for rows of text features: typed as in training, transformed
        (a dense matrix of ``dtype``, float64 unless given; a sparse one of float32).

        Training, evaluation and serving all build their matrix here, so a value means the
        same in each (a bad value raises DataError naming its row and column). The rows go
        through the transformer's lookup tables (:class:`TableEncoder`): a few rows of plain
        values field by field, more rows column by column with each distinct category read
        and looked up once; the same matrix without scikit-learn's cost per call and per
        value. Rows the tables do not cover (another transformer, a field of another form, a
        refused value) are typed and transformed by the transformer itself.
        """
        encoder = self._encoder(transformer, features)
        matrix = None
        if encoder is not None and len(features) <= FEW_RECORDS:
            matrix = self._few_rows(encoder, features)
        elif encoder is not None:
            matrix = self._many_rows(encoder, features, dtype)
        if matrix is None:
            typed = coerce_features(
                features, self.numeric_columns, self.categorical_columns, self.dialect
            )
            matrix = feature_matrix(
                transformer, typed, self.numeric_columns, self.categorical_columns,
                self.matrix_layout,
            )  # fmt: skip
        return matrix.astype(dtype, copy=False) if isinstance(matrix, np.ndarray) else matrix

    def _encoder(self, transformer: Any, features: pd.DataFrame) -> TableEncoder | None:
        """The transformer's :class:`TableEncoder` (built on first use), when ``features``
        holds every feature column."""
        names = set(features.columns)
        if any(c not in names for c in (*self.numeric_columns, *self.categorical_columns)):
            return None
        key = (tuple(self.numeric_columns), tuple(self.categorical_columns))
        known = _ENCODERS.get(transformer)
        if known is None or known[0] != key:
            known = (key, table_encoder(transformer, *key))
            _ENCODERS[transformer] = known
        return known[1]

    def _few_rows(self, encoder: TableEncoder, features: pd.DataFrame) -> Any:
        columns = [*self.numeric_columns, *self.categorical_columns]
        names = features.columns.tolist()
        at = (
            list(range(len(columns)))
            if names[: len(columns)] == columns
            else [names.index(c) for c in columns]
        )
        return encoder.encode(features.to_numpy(dtype=object)[:, at], self.dialect,
                              self.matrix_layout)  # fmt: skip

    def _many_rows(self, encoder: TableEncoder, features: pd.DataFrame, dtype: Any) -> Any:
        """Each column read as :func:`coerce_features` reads it, a categorical one as codes
        into its distinct values (:func:`categorical_codes`); None for a categorical column
        not held as text."""
        numbers = [
            numeric_values(features[name], self.dialect, name) for name in self.numeric_columns
        ]
        categories = []
        for name in self.categorical_columns:
            coded = categorical_codes(features[name], self.dialect, name)
            if coded is None:
                return None
            categories.append(coded)
        return encoder.encode_columns(numbers, categories, self.matrix_layout, dtype)


_ENCODERS: weakref.WeakKeyDictionary[Any, tuple[Any, TableEncoder | None]] = (
    weakref.WeakKeyDictionary()
)
"""Each fitted transformer's :class:`TableEncoder` (None: it has none), built on first use."""


def load_fitted(folder: Path) -> tuple[dict[str, Any], Any]:
    """schema.json (as a document) and the fitted transformer in ``folder``."""
    import joblib

    document = json.loads((folder / SCHEMA_FILE).read_text(encoding="utf-8"))
    return document, joblib.load(folder / TRANSFORMER_FILE)


def split_files(folder: Path, split: str, missing_fix: str) -> list[Path]:
    """The files of split ``split`` in ``folder``, in name order: its shards
    (``<split>-part-*.parquet``, all or the share a host was given), else ``<split>.parquet``
    or the folder's only Parquet file."""
    found = folder.glob(f"{split}{SHARD_PART}*{PARQUET_SUFFIX}") if folder.is_dir() else ()
    shards = sorted(p for p in found if not is_temporary(p))
    return shards or [find_input(folder, split + PARQUET_SUFFIX, missing_fix)]


def _split_frames(
    path: Path, schema: Schema, mismatch_fix: str, rows: int | None
) -> Iterator[pd.DataFrame]:
    """One split file as Preprocess wrote it (Parquet: the target, then the typed features),
    whole (``rows`` None) or in frames of at most ``rows`` rows, indexed ``(file, row)``.

    Parquet is read with pyarrow, which the SageMaker XGBoost images install
    (sagemaker-xgboost-container, docker/3.0-5/base/Dockerfile.cpu: pyarrow==22.0.0).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = [schema.target, *schema.feature_columns]
    with _parquet_errors(path, mismatch_fix):
        handle = pq.ParquetFile(path)
    if handle.schema_arrow.names != expected:
        raise DataError(
            f"{path.name}: columns {handle.schema_arrow.names} do not match the schema "
            f"{expected}. {mismatch_fix}"
        )
    with _parquet_errors(path, mismatch_fix):
        batches = [handle.read()] if rows is None else handle.iter_batches(batch_size=rows)
        start = 0
        for batch in batches:
            # Text as pyarrow strings, as tabular.csvio reads it: stripping and matching
            # missing-value spellings then run in pyarrow, not value by value in Python.
            frame = batch.to_pandas(types_mapper={pa.string(): TEXT}.get)
            frame.index = row_index(path.name, np.arange(start + 1, start + len(frame) + 1))
            start += len(frame)
            yield frame


@contextmanager
def _parquet_errors(path: Path, mismatch_fix: str) -> Iterator[None]:
    """pyarrow's read errors (ArrowInvalid is a ValueError) as a DataError naming the file."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path.name}: not a readable Parquet file ({exc}). {mismatch_fix}"
        ) from None


def _labelled(
    frame: pd.DataFrame, schema: Schema, mismatch_fix: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """A split's rows as features and float64 labels; a missing target is an error."""
    labels = numeric_values(frame[schema.target], schema.dialect, schema.target)
    missing = np.flatnonzero(np.isnan(labels))
    if missing.size:
        file, row = frame.index[missing[0]]
        raise DataError(f"{file} row {row}: target {schema.target!r} is missing. {mismatch_fix}")
    return frame[schema.feature_columns], labels


def read_parts(
    folder: Path,
    split: str,
    schema: Schema,
    missing_fix: str,
    mismatch_fix: str,
    rows: int = BATCH_ROWS,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The split ``split`` in ``folder`` (see :func:`split_files`) in batches of at most
    ``rows`` rows, file after file: features and float labels. A job that can take the split a
    batch at a time (Train's data iterator) holds one batch, never a whole file."""
    for path in split_files(folder, split, missing_fix):
        for frame in _split_frames(path, schema, mismatch_fix, rows):
            yield _labelled(frame, schema, mismatch_fix)


def read_split(
    folder: Path, split: str, schema: Schema, missing_fix: str, mismatch_fix: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """The split ``split`` in ``folder``, whole (every part file, in name order): the features
    and the labels as float64; ``mismatch_fix`` is what to do when a file does not fit."""
    frames = [
        frame
        for path in split_files(folder, split, missing_fix)
        for frame in _split_frames(path, schema, mismatch_fix, None)
    ]
    return _labelled(frames[0] if len(frames) == 1 else pd.concat(frames), schema, mismatch_fix)
