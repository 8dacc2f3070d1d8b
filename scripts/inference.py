"""Serving code: the model_fn/input_fn/predict_fn/output_fn contract of the XGBoost container.

Used as the entry point of the SageMaker XGBoost framework container (endpoint and
batch transform), shipped with the shared job package ``tabular`` beside it, and loaded by
evaluate.py, so that evaluation scores exactly as the endpoint does (both go through
:func:`predict_frame`).

Requests are canonical CSV (:mod:`tabular.dialect`) without a header, one record per line,
fields in the schema's ``feature_columns`` order, read with the rules every job uses
(:mod:`tabular.values`): an empty field, or a spelling the training data declared missing,
is a missing value and gets imputed; a category never seen in training is one-hot encoded
as all zeros (or as "other"); a numeric field that is not a number is an error naming its
line and column, as in training. A record with the wrong number of fields is an error
naming its line. Responses are CSV, one prediction per line: the probability of class 1
(binary) or the predicted value (regression). Set :data:`SERVING_ENV` on the model so
requests without an Accept header get CSV too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabular.csvio import parse_records
from tabular.errors import DataError
from tabular.features import feature_matrix
from tabular.schema import SCHEMA_FILE, TRANSFORMER_FILE, Schema
from tabular.values import coerce_features

CONTENT_TYPE_CSV = "text/csv"
ACCEPT_ANY = "*/*"
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
SERVING_ENV = {DEFAULT_ACCEPT_ENV: CONTENT_TYPE_CSV}
"""Container environment for this code: without it the inference toolkit turns a missing
or ``*/*`` Accept into application/json, which output_fn rejects."""
MODEL_FILE = "xgboost-model.json"
PREDICTION_FORMAT = "{:.9g}"

# The container calls input_fn without the model, so model_fn records the feature
# columns of the model it loaded here; input_fn names and counts fields with them.
_loaded: dict[str, list[str]] = {}


@dataclass(frozen=True)
class ModelBundle:
    """Everything needed to score: the booster, the fitted transformer and the schema."""

    booster: Any
    transformer: Any
    schema: dict[str, Any]

    @property
    def feature_columns(self) -> list[str]:
        """Feature names in request field order."""
        return list(self.schema["feature_columns"])

    @property
    def rules(self) -> Schema:
        """How the model reads and encodes rows (columns, types, missing values, layout)."""
        return Schema.from_json(self.schema)


def model_fn(model_dir: str) -> ModelBundle:
    """Load the booster, transformer and schema written by train.py from ``model_dir``."""
    import joblib
    import xgboost as xgb

    root = Path(model_dir)
    for name in (MODEL_FILE, TRANSFORMER_FILE, SCHEMA_FILE):
        if not (root / name).is_file():
            raise FileNotFoundError(
                f"{root / name}: not found; the model archive must come from train.py "
                f"(it holds {MODEL_FILE}, {TRANSFORMER_FILE} and {SCHEMA_FILE})."
            )
    booster = xgb.Booster()
    booster.load_model(str(root / MODEL_FILE))
    schema = json.loads((root / SCHEMA_FILE).read_text(encoding="utf-8"))
    bundle = ModelBundle(booster, joblib.load(root / TRANSFORMER_FILE), schema)
    _loaded["feature_columns"] = bundle.feature_columns
    return bundle


def media_type(content_type: str | None) -> str:
    """Return the bare, lower-case media type of a Content-Type/Accept value."""
    return (content_type or "").split(";")[0].strip().lower()


def decode_body(request_body: str | bytes) -> str:
    """Return the request body as text (UTF-8, BOM removed)."""
    if isinstance(request_body, (bytes, bytearray)):
        try:
            text = bytes(request_body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"request body: byte offset {exc.start} is not valid UTF-8; send UTF-8 encoded CSV."
            ) from None
    else:
        text = request_body
    return text[1:] if text.startswith("\ufeff") else text


def parse_csv(text: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Parse header-less CSV records into text columns named ``columns`` (see parse_records)."""
    return parse_records(text, columns)


def input_fn(request_body: str | bytes, request_content_type: str) -> pd.DataFrame:
    """Deserialize a CSV request into a DataFrame of the feature columns in schema order.

    Field names and count come from the model loaded by :func:`model_fn`; if none
    was loaded yet, fields are numbered and predict_fn checks the count.
    """
    if media_type(request_content_type) != CONTENT_TYPE_CSV:
        raise ValueError(
            f"content type {request_content_type!r} is not supported; send {CONTENT_TYPE_CSV}."
        )
    text = decode_body(request_body)
    return parse_csv(text, _loaded.get("feature_columns"))


def predict_frame(model: ModelBundle, features: pd.DataFrame) -> np.ndarray:
    """Score a DataFrame holding the schema's feature columns as text (extra columns ignored).

    Returns float64 predictions: probability of class 1 (binary) or the value.
    """
    import xgboost as xgb

    missing = [c for c in model.feature_columns if c not in features.columns]
    if missing:
        raise DataError(
            f"features are missing column(s) {missing}; the model needs {model.feature_columns}."
        )
    rules = model.rules
    typed = coerce_features(
        features, rules.numeric_columns, rules.categorical_columns, rules.dialect
    )
    matrix = feature_matrix(
        model.transformer, typed, rules.numeric_columns, rules.categorical_columns,
        rules.matrix_layout,
    )  # fmt: skip
    return model.booster.predict(xgb.DMatrix(matrix)).astype("float64")


def predict_fn(input_data: pd.DataFrame, model: ModelBundle) -> np.ndarray:
    """Score the frame from :func:`input_fn` (columns in schema order)."""
    expected = model.feature_columns
    if list(input_data.columns) != expected:
        if input_data.shape[1] != len(expected):
            raise DataError(
                f"request records have {input_data.shape[1]} field(s), expected "
                f"{len(expected)}: {expected}."
            )
        input_data = input_data.set_axis(expected, axis=1)
    return predict_frame(model, input_data)


def output_fn(prediction: np.ndarray, accept: str | None) -> str:
    """Serialize predictions as CSV text, one prediction per line."""
    if media_type(accept) not in (CONTENT_TYPE_CSV, ACCEPT_ANY, ""):
        raise ValueError(f"accept type {accept!r} is not supported; use {CONTENT_TYPE_CSV}.")
    values = np.asarray(prediction, dtype="float64").ravel()
    return "".join(PREDICTION_FORMAT.format(v) + "\n" for v in values)
