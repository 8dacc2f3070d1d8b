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
(binary) or the predicted value (regression). The model carries ``SERVING_ENV``
(:mod:`tabular.names`), so requests without an Accept header get CSV too.

A request the model cannot score raises :class:`tabular.errors.RequestError`: status 400 for
its content (naming the line and column), 415 for another content type, 406 for another
Accept. Every other error is the server's (500).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabular.contract import ANY, CSV, media_type
from tabular.csvio import parse_records
from tabular.errors import DataError, RequestError
from tabular.job import require_files
from tabular.names import BOOSTER_FILE, MODEL_FILES
from tabular.schema import Schema, load_fitted

PREDICTION_FORMAT = "{:.9g}"
MODEL_MISSING = "The model archive must come from train.py (it holds {files})."

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
    import xgboost as xgb

    root = Path(model_dir)
    require_files(root, MODEL_FILES, MODEL_MISSING.format(files=", ".join(MODEL_FILES)))
    booster = xgb.Booster()
    booster.load_model(str(root / BOOSTER_FILE))
    schema, transformer = load_fitted(root)
    bundle = ModelBundle(booster, transformer, schema)
    _loaded["feature_columns"] = bundle.feature_columns
    return bundle


def decode_body(request_body: str | bytes) -> str:
    """Return the request body as text (UTF-8, BOM removed)."""
    if isinstance(request_body, (bytes, bytearray)):
        try:
            text = bytes(request_body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(
                f"request body: byte offset {exc.start} is not valid UTF-8; send UTF-8 encoded CSV."
            ) from None
    else:
        text = request_body
    return text[1:] if text.startswith("\ufeff") else text


def input_fn(request_body: str | bytes, request_content_type: str) -> pd.DataFrame:
    """Deserialize a CSV request into a DataFrame of the feature columns in schema order.

    Field names and count come from the model loaded by :func:`model_fn`; if none
    was loaded yet, fields are numbered and predict_fn checks the count.
    """
    if media_type(request_content_type) != CSV:
        raise RequestError(
            f"content type {request_content_type!r} is not supported; send {CSV}.",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        )
    text = decode_body(request_body)
    try:
        return parse_records(text, _loaded.get("feature_columns"))
    except DataError as exc:
        raise RequestError(str(exc)) from None


def predict_frame(model: ModelBundle, features: pd.DataFrame) -> np.ndarray:
    """Score a DataFrame holding the schema's feature columns as text (extra columns ignored).

    Returns float64 predictions: probability of class 1 (binary) or the value.
    """
    missing = [c for c in model.feature_columns if c not in features.columns]
    if missing:
        raise DataError(
            f"features are missing column(s) {missing}; the model needs {model.feature_columns}."
        )
    matrix = model.rules.encode(model.transformer, features)
    # The same prediction as predict(DMatrix(matrix)) without building a DMatrix (NaN and,
    # in CSR, an absent entry are missing in both: tests/unit/scripts pins it).
    return np.asarray(model.booster.inplace_predict(matrix), dtype="float64")


def predict_fn(input_data: pd.DataFrame, model: ModelBundle) -> np.ndarray:
    """Score the frame from :func:`input_fn` (columns in schema order)."""
    expected = model.feature_columns
    try:
        if list(input_data.columns) != expected:
            if input_data.shape[1] != len(expected):
                raise DataError(
                    f"request records have {input_data.shape[1]} field(s), expected "
                    f"{len(expected)}: {expected}."
                )
            input_data = input_data.set_axis(expected, axis=1)
        return predict_frame(model, input_data)
    except RequestError:
        raise
    except DataError as exc:
        raise RequestError(str(exc)) from None


def output_fn(prediction: np.ndarray, accept: str | None) -> str:
    """Serialize predictions as CSV text, one prediction per line."""
    if media_type(accept) not in (CSV, ANY, ""):
        raise RequestError(
            f"accept type {accept!r} is not supported; use {CSV}.", HTTPStatus.NOT_ACCEPTABLE
        )
    values = np.asarray(prediction, dtype="float64").ravel()
    return "".join(PREDICTION_FORMAT.format(v) + "\n" for v in values)
