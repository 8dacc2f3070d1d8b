"""Tests of scripts/inference.py: the serving contract on a model trained by the real jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts import inference as inf
from tabular import contract, names
from tabular.csvio import parse_records


@pytest.fixture
def binary_model(job_trained: Callable[[str], Path]) -> inf.ModelBundle:
    return inf.model_fn(str(job_trained("binary")))


def test_model_fn_loads_the_bundle(binary_model: inf.ModelBundle) -> None:
    assert binary_model.feature_columns == ["x1", "x2", "color", "plan"]
    assert binary_model.schema["problem_type"] == "binary"
    assert binary_model.booster.num_boosted_rounds() >= 1


def test_model_fn_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"xgboost-model\.json: not found"):
        inf.model_fn(str(tmp_path))


def test_round_trip_on_the_scoring_file(
    binary_model: inf.ModelBundle, job_prepared: Callable[[str], Path]
) -> None:
    output = job_prepared("binary")
    body = (output / names.SCORING / names.SCORING_FILE).read_bytes()
    frame = inf.input_fn(body, "text/csv; charset=utf-8")
    assert list(frame.columns) == binary_model.feature_columns
    predictions = inf.predict_fn(frame, binary_model)
    text = inf.output_fn(predictions, "text/csv")

    lines = text.splitlines()
    assert len(lines) == len(frame) == body.decode().count("\n")
    values = np.array([float(v) for v in lines])
    assert ((values > 0) & (values < 1)).all()
    np.testing.assert_allclose(values, predictions, rtol=1e-8)

    # Evaluation path: the test split read with its header scores identically.
    test = pd.read_parquet(output / names.TEST / names.TEST_FILE)
    np.testing.assert_allclose(
        inf.predict_frame(binary_model, test.drop(columns=["churn"])), predictions
    )


def test_unseen_category_and_missing_values_get_a_prediction(
    binary_model: inf.ModelBundle,
) -> None:
    frame = inf.input_fn("0.5,3,purple,basic\n,,,\n , 7 ,NA,\n", contract.CSV)
    assert frame.isna().sum().tolist() == [1, 1, 1, 2]
    predictions = inf.predict_fn(frame, binary_model)
    assert predictions.shape == (3,)
    assert np.isfinite(predictions).all()
    assert ((predictions > 0) & (predictions < 1)).all()


def test_a_value_that_is_not_a_number_is_refused_as_in_training(
    binary_model: inf.ModelBundle,
) -> None:
    frame = inf.input_fn("0.5,3,red,pro\nNA,x,red,pro\n", contract.CSV)
    with pytest.raises(ValueError, match=r"request line 2: column 'x1' is numeric, but 'NA'"):
        inf.predict_fn(frame, binary_model)


def test_predictions_follow_the_features(binary_model: inf.ModelBundle) -> None:
    frame = inf.input_fn("-2,0,blue,pro\n2,9,red,basic\n", contract.CSV)
    low, high = inf.predict_fn(frame, binary_model)
    assert low < 0.5 < high


def test_wrong_field_count_names_the_line(binary_model: inf.ModelBundle) -> None:
    with pytest.raises(ValueError, match=r"line 3: 3 field\(s\), expected 4"):
        inf.input_fn("1,2,red,pro\n\n1,2,red\n", contract.CSV)


def test_without_a_loaded_model_fields_are_numbered_and_checked_in_predict_fn(
    binary_model: inf.ModelBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inf, "_loaded", {})
    frame = inf.input_fn("1,2,red,pro\n", contract.CSV)
    assert list(frame.columns) == [0, 1, 2, 3]
    assert inf.predict_fn(frame, binary_model).shape == (1,)
    with pytest.raises(ValueError, match=r"line 2: 2 field\(s\), expected 4"):
        inf.input_fn("1,2,red,pro\n1,2\n", contract.CSV)
    with pytest.raises(ValueError, match=r"have 2 field\(s\), expected 4"):
        inf.predict_fn(inf.input_fn("1,2\n", contract.CSV), binary_model)


def test_unsupported_content_type_is_named(binary_model: inf.ModelBundle) -> None:
    with pytest.raises(ValueError, match=r"content type 'application/json' is not supported"):
        inf.input_fn('{"x1": 1}', "application/json")


def test_empty_and_non_utf8_bodies_are_rejected(binary_model: inf.ModelBundle) -> None:
    with pytest.raises(ValueError, match="no CSV records"):
        inf.input_fn("\n", contract.CSV)
    with pytest.raises(ValueError, match="byte offset 4 is not valid UTF-8"):
        inf.input_fn(b"1,2,\xff,pro\n", contract.CSV)


def test_quoted_fields_and_a_single_empty_record_line() -> None:
    frame = parse_records('"a, b",1\n"",\n', ["c", "n"])
    assert frame["c"].iloc[0] == "a, b"
    assert frame.shape == (2, 2) and frame.iloc[1].isna().all()


def test_predict_frame_needs_every_feature_column(binary_model: inf.ModelBundle) -> None:
    with pytest.raises(ValueError, match=r"missing column\(s\) \['plan'\]"):
        inf.predict_frame(binary_model, pd.DataFrame({"x1": [1], "x2": [2], "color": ["red"]}))


def test_output_fn_writes_one_line_per_prediction() -> None:
    assert inf.output_fn(np.array([0.25, 1e-12, 12345678.9]), "*/*") == (
        "0.25\n1e-12\n12345678.9\n"
    )
    with pytest.raises(ValueError, match="accept type 'application/json' is not supported"):
        inf.output_fn(np.array([0.5]), "application/json")
    default_accept = names.SERVING_ENV[contract.DEFAULT_ACCEPT_ENV]
    assert inf.output_fn(np.array([0.5]), default_accept) == "0.5\n"


def test_regression_model_predicts_values(job_trained: Callable[[str], Path]) -> None:
    model = inf.model_fn(str(job_trained("regression")))
    predictions = inf.predict_fn(
        inf.input_fn("-2,0,blue,pro\n2,9,red,basic\n", contract.CSV), model
    )
    low, high = predictions
    assert low < 5 < 20 < high  # target = 10 + 3 * (1.5 x1 + 0.2 x2 + red - pro)
