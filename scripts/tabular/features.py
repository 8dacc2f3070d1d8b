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
    if layout == DENSE:
        return np.hstack([values, onehot.toarray()])
    if layout != SPARSE:
        raise ValueError(f"matrix layout {layout!r} is not one of {LAYOUTS}")
    return _csr_with_explicit_values(values, onehot)


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
