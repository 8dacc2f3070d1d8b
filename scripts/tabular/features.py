"""The feature transformer Preprocess fits, and the matrix every job feeds to XGBoost.

Numeric columns get median imputation; categorical columns most-frequent imputation and
one-hot encoding, where a category never seen in training becomes all zeros (or, with
``data.high_cardinality: top_k``, the "other" column). A categorical column with more distinct
values than ``data.max_categories`` is refused, or reduced to its most frequent values plus
"other": one-hot encoding makes one feature per value.

The matrix layout is fixed when the transformer is fitted and recorded in schema.json, so
training, evaluation and serving build the same matrix for the same row:

* ``dense``: a float64 array, one-hot zeros stored as zeros;
* ``sparse`` (when one-hot encoding is wide): CSR with every numeric value stored, zeros
  included (XGBoost reads an absent entry as missing, a stored zero as zero), and only the
  one-hot ones stored, so memory grows with rows x columns of the input, whatever the number
  of categories.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError, describe_source
from .names import TOP_K

DENSE = "dense"
SPARSE = "sparse"
LAYOUTS = (DENSE, SPARSE)
SPARSE_WIDTH_FACTOR = 4
"""Sparse when the one-hot matrix is more than this many times wider than a row's values."""
NUMERIC = "numeric"
CATEGORICAL = "categorical"


def build_transformer(
    numeric: Sequence[str], categorical: Sequence[str], top_k: int | None = None
) -> Any:
    """An unfitted ColumnTransformer: median / most-frequent imputation, sparse one-hot."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    onehot = OneHotEncoder(
        handle_unknown="infrequent_if_exist" if top_k else "ignore",
        max_categories=top_k + 1 if top_k else None,
        sparse_output=True,
        dtype=np.float64,
    )
    categorical_pipeline = Pipeline(
        [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)]
    )
    return ColumnTransformer(
        [
            (NUMERIC, SimpleImputer(strategy="median"), list(numeric)),
            (CATEGORICAL, categorical_pipeline, list(categorical)),
        ],
        sparse_threshold=0.0,
    )


def check_cardinality(
    train: pd.DataFrame, categorical: Sequence[str], max_categories: int, policy: str
) -> dict[str, int]:
    """Distinct values per categorical column of the train split; refuse one over the cap."""
    counts = {name: int(train[name].nunique(dropna=True)) for name in categorical}
    return check_cardinality_counts(describe_source(train), counts, max_categories, policy)


def check_cardinality_counts(
    source: str, counts: dict[str, int], max_categories: int, policy: str
) -> dict[str, int]:
    """Refuse a categorical column with more distinct train values than the cap (``policy``
    refuse); return ``counts``."""
    if policy == TOP_K:
        return counts
    for name, distinct in counts.items():
        if distinct > max_categories:
            raise DataError(
                f"{source}: categorical column {name!r} has {distinct} distinct "
                f"values in the training split, more than data.max_categories "
                f"({max_categories}); one-hot encoding makes one feature per value. If it is "
                f"an identifier, drop it (data.drop_columns: [{name!r}]); to keep the "
                f"{max_categories} most frequent values and group the rest as 'other', set "
                "data.high_cardinality: top_k; or raise data.max_categories."
            )
    return counts


def fit_transformer(
    typed_train: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    top_k: int | None = None,
) -> tuple[Any, str]:
    """Fit :func:`build_transformer` on the typed train split; return it and its layout."""
    transformer = build_transformer(numeric, categorical, top_k)
    transformer.fit(typed_train[list(numeric) + list(categorical)])
    width = len(numeric) + _onehot_width(transformer, categorical)
    values_per_row = max(1, len(numeric) + len(categorical))
    layout = SPARSE if width > SPARSE_WIDTH_FACTOR * values_per_row else DENSE
    return transformer, layout


def _onehot_width(transformer: Any, categorical: Sequence[str]) -> int:
    if not categorical:
        return 0
    encoder = transformer.named_transformers_[CATEGORICAL].named_steps["onehot"]
    return len(encoder.get_feature_names_out())


def matrix_columns(transformer: Any, numeric: Sequence[str], categorical: Sequence[str]) -> list:
    """The model matrix's column names: the numeric features, then one per one-hot category."""
    names = list(numeric)
    if categorical:
        encoder = transformer.named_transformers_[CATEGORICAL].named_steps["onehot"]
        names += [str(name) for name in encoder.get_feature_names_out(list(categorical))]
    return names


def feature_matrix(
    transformer: Any,
    typed: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    layout: str = DENSE,
) -> Any:
    """The model's input for typed rows: a dense float64 array or a CSR matrix (``layout``)."""
    from scipy import sparse

    rows = len(typed)
    values = (
        np.asarray(transformer.named_transformers_[NUMERIC].transform(typed[list(numeric)]))
        if numeric
        else np.empty((rows, 0))
    ).astype("float64", copy=False)
    if categorical:
        with warnings.catch_warnings():  # unseen categories are expected: they encode as zeros
            warnings.simplefilter("ignore", UserWarning)
            onehot = transformer.named_transformers_[CATEGORICAL].transform(
                typed[list(categorical)]
            )
        onehot = sparse.csr_matrix(onehot)
    else:
        onehot = sparse.csr_matrix((rows, 0))
    return assemble(values, onehot, layout)


def assemble(values: np.ndarray, onehot: Any, layout: str) -> Any:
    """``[values | onehot]`` (numeric columns, CSR or dense one-hot columns) in the matrix
    ``layout``."""
    if layout == DENSE:
        return np.hstack([values, onehot if isinstance(onehot, np.ndarray) else onehot.toarray()])
    if layout != SPARSE:
        raise ValueError(f"matrix layout {layout!r} is not one of {LAYOUTS}")
    return _csr_with_explicit_values(values, onehot)


UNSEEN = "\x00unseen\x00"
"""A category no training value can be: what the transformer makes of an unseen value."""


Block = tuple[np.ndarray, np.ndarray]
"""The one-hot columns (from the column's first) and values a category sets."""


class TableEncoder:
    """The fitted transformer as lookup tables: a few rows of text fields (:meth:`encode`) or
    many rows given column by column (:meth:`encode_columns`).

    scikit-learn checks its input on every call, which costs milliseconds for one row, and
    transforms a batch value by value through Python objects. The tables hold what the
    transformer itself makes of each value it can meet: the numeric imputer's fill value of a
    missing number, and the categorical pipeline's output for every category it was fitted
    on, a missing value and an unseen one (transformed once, when the tables are built);
    :func:`table_encoder` checks them against the transformer.
    """

    def __init__(self, fill: np.ndarray, blocks: list[tuple[int, dict[str | None, Block]]],
                 width: int) -> None:  # fmt: skip
        self.fill = fill
        self.blocks = blocks  # per categorical column: its first one-hot column, value -> block
        self.width = width

    def encode(self, fields: np.ndarray, dialect: Any, layout: str) -> Any:
        """The matrix of rows of text fields (numeric columns first, then categorical), or
        None when a field is not a plain value (read it with the transformer's path)."""
        from scipy import sparse

        from .values import field_value

        k = len(self.fill)
        values = np.empty((len(fields), k))
        columns: list[np.ndarray] = []
        data: list[np.ndarray] = []
        indptr = [0]
        stored = 0
        for r, record in enumerate(fields):
            for c in range(k):
                number = field_value(record[c], dialect, numeric=True)
                if number is None:
                    return None
                values[r, c] = self.fill[c] if number != number else number
            for c, (start, table) in enumerate(self.blocks):
                category = field_value(record[k + c], dialect, numeric=False)
                if category is None:
                    return None
                at, ones = (
                    table.get(category if isinstance(category, str) else MISSING_KEY)
                    or (table[UNSEEN])
                )
                columns.append(at + start)
                data.append(ones)
                stored += len(at)
            indptr.append(stored)
        stored_data = np.concatenate(data) if data else np.empty(0)
        stored_columns = np.concatenate(columns) if columns else np.empty(0, dtype=np.int64)
        shape = (len(fields), self.width)
        if layout == DENSE:  # toarray()'s matrix (entries summed alike), without the CSR one
            dense = np.zeros(shape)
            rows = np.repeat(np.arange(len(fields)), np.diff(indptr))
            np.add.at(dense, (rows, stored_columns), stored_data)
            return assemble(values, dense, layout)
        onehot = sparse.csr_matrix((stored_data, stored_columns, np.asarray(indptr)), shape=shape)
        return assemble(values, onehot, layout)

    def encode_columns(
        self,
        numbers: Sequence[np.ndarray],
        categories: Sequence[tuple[np.ndarray, Sequence[Any]]],
        layout: str,
        dtype: Any = np.float64,
    ) -> Any:
        """The matrix of rows given column by column (dense: of ``dtype``), or None when a
        category sets more than one entry (read such rows with the transformer's path).

        ``numbers``: each numeric column as :func:`tabular.values.numeric_values` reads it
        (float64, NaN where missing); ``categories``: each categorical column as codes into
        its distinct values as :func:`tabular.values.categorical_codes` reads them (``str``,
        NaN where missing), code -1 a missing value. The tables are looked up once per distinct
        value and the rows filled with numpy: the transformer's matrix, entry for entry
        (tests/unit/scripts/test_few_rows.py).
        """
        k = len(self.fill)
        rows = len(numbers[0]) if numbers else len(categories[0][0]) if categories else 0
        at = np.empty((len(self.blocks), rows), dtype=np.int64)  # per categorical column
        ones = np.empty((len(self.blocks), rows))
        for c, ((codes, distinct), (start, table)) in enumerate(
            zip(categories, self.blocks, strict=True)
        ):
            column_of = np.full(len(distinct) + 1, -1, dtype=np.int64)  # the last: missing
            value_of = np.zeros(len(distinct) + 1)
            for i, category in enumerate([*distinct, np.nan]):
                found, weights = (
                    table.get(category if isinstance(category, str) else MISSING_KEY)
                    or table[UNSEEN]
                )
                if len(found) > 1:
                    return None
                if len(found):
                    column_of[i], value_of[i] = start + found[0], weights[0]
            np.take(column_of, codes, out=at[c])
            np.take(value_of, codes, out=ones[c])
        dense = np.zeros((rows, k + self.width), dtype=dtype) if layout == DENSE else None
        values = dense[:, :k] if dense is not None else np.empty((rows, k))
        for c, column in enumerate(numbers):
            values[:, c] = column
        np.copyto(values, self.fill, where=np.isnan(values))  # the imputer's fill
        if dense is not None:  # hstack([values, onehot.toarray()]) in place
            flat = dense.reshape(-1)
            first = np.arange(rows) * (k + self.width) + k
            for column, value in zip(at, ones, strict=True):
                stored = column >= 0
                flat[(first + column)[stored]] = value[stored]
            return dense
        from scipy import sparse

        stored = at.T >= 0  # row by row, the columns in order: each row's entries sorted
        indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(stored.sum(axis=1), out=indptr[1:])
        onehot = sparse.csr_matrix((ones.T[stored], at.T[stored], indptr), (rows, self.width))
        return assemble(values, onehot, layout)


MISSING_KEY = None
"""The tables' key of a missing value (no text is None, so no category can be read as it)."""


def table_encoder(
    transformer: Any, numeric: Sequence[str], categorical: Sequence[str]
) -> TableEncoder | None:
    """:class:`TableEncoder` of a transformer :func:`build_transformer` made, or None for any
    other (its rows are then encoded by :func:`feature_matrix` alone)."""
    from scipy import sparse
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    named = getattr(transformer, "named_transformers_", {})
    fill = np.empty(0)
    if numeric:
        imputer = named.get(NUMERIC)
        if not isinstance(imputer, SimpleImputer) or imputer.add_indicator:
            return None
        fill = np.asarray(imputer.statistics_, dtype="float64")
        if fill.shape != (len(numeric),) or not np.isfinite(fill).all():
            return None  # a column the imputer drops (no value in training)
    blocks: list[tuple[int, dict[str | None, Block]]] = []
    width = 0
    if categorical:
        pipeline = named.get(CATEGORICAL)
        encoder = getattr(pipeline, "named_steps", {}).get("onehot")
        if (
            pipeline is None
            or not isinstance(encoder, OneHotEncoder)
            or encoder.n_features_in_ != len(categorical)
        ):
            return None
        known = [list(c) for c in encoder.categories_]
        if any(not isinstance(v, str) or v == UNSEEN for c in known for v in c):
            return None
        # Each input column's one-hot columns, counted by the names the encoder gives them.
        tokens = [f"\x1f{j}\x1f_" for j in range(len(categorical))]
        names = [str(n) for n in encoder.get_feature_names_out([t[:-1] for t in tokens])]
        widths = [sum(n.startswith(t) for n in names) for t in tokens]
        owners = [j for j, w in enumerate(widths) for _ in range(w)]
        if (
            sum(widths) != len(names)
            or [next(j for j, t in enumerate(tokens) if n.startswith(t)) for n in names] != owners
        ):
            return None
        probe = pd.DataFrame(
            {name: _cycle([*c, np.nan, UNSEEN], len(max(known, key=len)) + 2)
             for name, c in zip(categorical, known, strict=True)}
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = sparse.csr_matrix(pipeline.transform(probe))

        def block(row: int, start: int, w: int) -> Block:
            at = out.indices[out.indptr[row] : out.indptr[row + 1]]
            ones = out.data[out.indptr[row] : out.indptr[row + 1]]
            mine = (at >= start) & (at < start + w)
            return (at[mine] - start).astype(np.int64), ones[mine].astype("float64")

        for c, w in zip(known, widths, strict=True):
            table = {v: block(i, width, w) for i, v in enumerate(c)}
            table[MISSING_KEY] = block(len(c), width, w)
            table[UNSEEN] = block(len(c) + 1, width, w)
            blocks.append((width, table))
            width += w
    encoder = TableEncoder(fill, blocks, width)
    return encoder if _agrees(encoder, transformer, numeric, categorical) else None


def _cycle(values: list[Any], rows: int) -> pd.Series:
    return pd.Series([values[i % len(values)] for i in range(rows)], dtype=object)


def _agrees(
    encoder: TableEncoder, transformer: Any, numeric: Sequence[str], categorical: Sequence[str]
) -> bool:
    """Both paths give the same matrix for rows that visit every table entry."""
    from .dialect import Dialect
    from .values import coerce_features

    rows = max([len(t) for _, t in encoder.blocks] + [2])
    text = pd.DataFrame(
        {name: _cycle(["", f"{j}.5", "-3e2"], rows) for j, name in enumerate(numeric)}
        | {name: _cycle(["" if k is MISSING_KEY else k for k in table], rows)
           for name, (_, table) in zip(categorical, encoder.blocks, strict=True)}
    )  # fmt: skip
    dialect = Dialect()
    quick = encoder.encode(text.to_numpy(dtype=object), dialect, SPARSE)
    typed = coerce_features(text, numeric, categorical, dialect)
    full = feature_matrix(transformer, typed, numeric, categorical, SPARSE)
    return quick is not None and quick.shape == full.shape and (quick != full).nnz == 0


def _csr_with_explicit_values(values: np.ndarray, onehot: Any) -> Any:
    """CSR of ``[values | onehot]`` keeping every entry of ``values`` (zeros too) stored."""
    from scipy import sparse

    onehot.sort_indices()
    rows, k = values.shape
    per_row = np.diff(onehot.indptr)
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(k + per_row, out=indptr[1:])
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    starts = indptr[:-1]
    numeric_at = (starts[:, None] + np.arange(k)).ravel()
    data[numeric_at] = values.ravel()
    indices[numeric_at] = np.tile(np.arange(k, dtype=np.int32), rows)
    owner = np.repeat(np.arange(rows), per_row)
    onehot_at = starts[owner] + k + (np.arange(onehot.nnz) - onehot.indptr[owner])
    data[onehot_at] = onehot.data
    indices[onehot_at] = onehot.indices + k
    return sparse.csr_matrix((data, indices, indptr), shape=(rows, k + onehot.shape[1]))
