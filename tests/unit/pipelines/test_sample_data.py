"""The built-in sample data set: determinism, schema, missing values, oracle and learnability."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines import sample_data as sd

NUMERIC = [f.name for f in sd.NUMERIC]
CATEGORICAL = [f.name for f in sd.CATEGORICAL]


def observed(frame: pd.DataFrame) -> pd.DataFrame:
    """Features typed as the preprocessing job sees them: float64 and str/NaN objects."""
    out = {name: frame[name].astype("float64") for name in NUMERIC}
    for name in CATEGORICAL:
        column = frame[name]
        out[name] = column.astype(object).where(column.notna(), np.nan)
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    return sd.generate(30_000, seed=7)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = sd.write_csv(tmp_path / "a.csv", 3_000, seed=7).read_bytes()
    again = sd.write_csv(tmp_path / "b.csv", 3_000, seed=7).read_bytes()
    other = sd.write_csv(tmp_path / "c.csv", 3_000, seed=8).read_bytes()
    assert first == again
    assert first != other
    assert sd.generate(1_000, seed=3).equals(sd.generate(1_000, seed=3))
    assert not sd.generate(1_000, seed=3).equals(sd.generate(1_000, seed=4))


def test_block_by_block_writing_equals_one_shot_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sd, "BLOCK_ROWS", 1_000)
    whole = sd.generate(2_500, seed=11)
    path = sd.write_csv(tmp_path / "data.csv", 2_500, seed=11)

    one_shot = io.BytesIO()
    one_shot.write((",".join(sd.COLUMNS) + "\n").encode())
    sd._write_rows(one_shot, whole)
    assert path.read_bytes() == one_shot.getvalue()

    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(observed(back), observed(whole))
    assert back[sd.TARGET].tolist() == whole[sd.TARGET].tolist()
    # Each block has its own generator: block 1 is not a copy of block 0.
    assert not np.array_equal(whole[sd.TARGET][:1_000], whole[sd.TARGET][1_000:2_000])


def test_a_failed_write_leaves_neither_a_file_nor_a_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sd, "BLOCK_ROWS", 500)
    real_block = sd._block

    def failing_block(rows: int, seed: int, index: int) -> pd.DataFrame:
        if index == 1:
            raise OSError("disk full")
        return real_block(rows, seed, index)

    monkeypatch.setattr(sd, "_block", failing_block)
    with pytest.raises(OSError, match="disk full"):
        sd.write_csv(tmp_path / "data.csv", 1_200)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("rows", "seed", "field"), [(0, 7, "rows"), (True, 7, "rows"), (10, -1, "seed")]
)
def test_bad_sizes_are_refused(rows: int, seed: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        sd.generate(rows, seed)


# --------------------------------------------------------------------------- schema


def test_schema_missing_rates_and_base_rate(medium: pd.DataFrame) -> None:
    assert list(medium.columns) == list(sd.COLUMNS)
    assert 10 <= len(sd.FEATURES) <= 12
    for feature in sd.NUMERIC:
        column = medium[feature.name]
        assert str(column.dtype) == ("Int64" if feature.integer else "float64"), feature.name
        rate = column.isna().mean()
        if feature.missing_rate:
            assert 0.5 * feature.missing_rate < rate < 1.5 * feature.missing_rate, feature.name
        else:
            assert rate == 0, feature.name
    for categorical in sd.CATEGORICAL:
        column = medium[categorical.name]
        assert isinstance(column.dtype, pd.CategoricalDtype), categorical.name
        assert set(column.dropna().unique()) == set(categorical.levels), categorical.name
        rate = column.isna().mean()
        assert 0.5 * categorical.missing_rate < rate < 1.5 * categorical.missing_rate, (
            categorical.name
        )
    assert sum(f.missing_rate > 0 for f in sd.NUMERIC) >= 3
    assert medium[sd.AGE].min() >= 18 and medium[sd.AGE].max() <= 85
    assert medium[sd.TENURE].between(1, 72).all()
    assert medium[sd.OPEN_RATE].dropna().between(0, 1).all()
    assert medium[sd.INCOME].skew() > 1  # income-like: long right tail
    assert medium[sd.TARGET].dtype == np.int64
    assert set(medium[sd.TARGET].unique()) == {0, 1}
    assert 0.20 <= medium[sd.TARGET].mean() <= 0.35


def test_no_feature_is_the_probability_in_disguise(medium: pd.DataFrame) -> None:
    probability = sd.true_probability(medium)
    for name in NUMERIC:
        values = medium[name].astype("float64").to_numpy()
        present = ~np.isnan(values)
        correlation = np.corrcoef(values[present], probability[present])[0, 1]
        assert abs(correlation) < 0.6, name


# --------------------------------------------------------------------------- probability


def test_the_probability_survives_the_csv_read_as_text(tmp_path: Path) -> None:
    frame = sd.generate(4_000, seed=5)
    path = sd.write_csv(tmp_path / "data.csv", 4_000, seed=5)
    as_text = pd.read_csv(path, dtype=str)  # as the preprocessing job reads it
    assert np.array_equal(sd.true_probability(as_text), sd.true_probability(frame))


def test_a_missing_value_counts_as_the_median_or_the_most_frequent_level() -> None:
    frame = sd.generate(3_000, seed=2)
    for feature in sd.NUMERIC:
        missing = frame.assign(**{feature.name: np.nan})
        at_median = frame.assign(**{feature.name: feature.median})
        assert np.array_equal(sd.true_probability(missing), sd.true_probability(at_median)), (
            feature.name
        )
    for categorical in sd.CATEGORICAL:
        missing = frame.assign(**{categorical.name: np.nan})
        at_mode = frame.assign(**{categorical.name: categorical.mode})
        assert np.array_equal(sd.true_probability(missing), sd.true_probability(at_mode)), (
            categorical.name
        )


def test_the_recorded_medians_are_the_data_medians_so_imputation_loses_nothing() -> None:
    frame = sd.generate(200_000, seed=13)
    for feature in sd.NUMERIC:
        median = frame[feature.name].astype("float64").median()
        if feature.integer:
            assert median == feature.median, feature.name
        else:
            spread = frame[feature.name].quantile(0.75) - frame[feature.name].quantile(0.25)
            assert abs(median - feature.median) < 0.01 * spread, feature.name
    for categorical in sd.CATEGORICAL:
        assert frame[categorical.name].value_counts().idxmax() == categorical.mode

    # What the preprocessing job does: impute train medians / most frequent levels.
    features = observed(frame)
    imputed = features.fillna(features[NUMERIC].median())
    for name in CATEGORICAL:
        imputed[name] = imputed[name].fillna(features[name].mode()[0])
    difference = np.abs(sd.true_probability(imputed) - sd.true_probability(frame))
    assert difference.max() < 0.005


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=[sd.PLAN]), "plan"),
        (lambda f: f.assign(region="mars"), "region"),
        (lambda f: f.assign(monthly_spend="lots"), "monthly_spend"),
    ],
)
def test_bad_features_name_the_column(
    change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sd.true_probability(change(sd.generate(50)))


def test_oracle_auc_is_realistic_and_checks_its_labels(medium: pd.DataFrame) -> None:
    oracle = sd.oracle_auc(medium, medium[sd.TARGET])
    assert 0.80 <= oracle <= 0.90
    with pytest.raises(ValueError, match="labels"):
        sd.oracle_auc(medium, medium[sd.TARGET][:-1])


@pytest.mark.slow
def test_gradient_boosting_gets_close_to_the_oracle(medium: pd.DataFrame) -> None:
    xgb = pytest.importorskip("xgboost")
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from tabular.features import build_transformer

    labels = medium[sd.TARGET].to_numpy()
    features = observed(medium)
    rows = np.arange(len(medium))
    train, test = train_test_split(rows, test_size=0.2, random_state=0, stratify=labels)
    train, valid = train_test_split(train, test_size=0.2, random_state=0, stratify=labels[train])
    transformer = build_transformer(NUMERIC, CATEGORICAL).fit(features.iloc[train])

    def matrix(index: np.ndarray) -> Any:
        return xgb.DMatrix(transformer.transform(features.iloc[index]), label=labels[index])

    params = {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "seed": 0,
        "nthread": 2,
    }
    booster = xgb.train(
        params,
        matrix(train),
        num_boost_round=500,
        evals=[(matrix(valid), "valid")],
        early_stopping_rounds=20,
        verbose_eval=False,
    )
    scores = booster.predict(matrix(test), iteration_range=(0, booster.best_iteration + 1))
    model = roc_auc_score(labels[test], scores)
    oracle = sd.oracle_auc(medium.iloc[test], labels[test])
    assert oracle - 0.02 < model < oracle + 0.01, (model, oracle)


# --------------------------------------------------------------------------- files


def test_ensure_dataset_writes_once_then_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data" / "default.csv"
    assert sd.ensure_dataset(path, 1_000, seed=7) == path
    meta = json.loads(sd.metadata_path(path).read_text())
    assert (meta["rows"], meta["seed"]) == (1_000, 7)
    assert path.read_bytes() == sd.write_csv(tmp_path / "fresh.csv", 1_000, 7).read_bytes()

    def no_write(*args: object) -> Path:
        raise AssertionError("the data set was current and must not be rewritten")

    monkeypatch.setattr(sd, "write_csv", no_write)
    assert sd.ensure_dataset(path, 1_000, seed=7) == path


@pytest.mark.parametrize(
    "spoil",
    [
        lambda path: path.write_bytes(path.read_bytes()[:-100]),  # truncated file
        lambda path: sd.metadata_path(path).unlink(),  # no record
        lambda path: sd.metadata_path(path).write_text("{not json"),  # broken record
    ],
    ids=["truncated", "no-record", "broken-record"],
)
def test_ensure_dataset_regenerates_a_damaged_dataset(
    spoil: Callable[[Path], object], tmp_path: Path
) -> None:
    path = tmp_path / "default.csv"
    sd.ensure_dataset(path, 800, seed=7)
    spoil(path)
    sd.ensure_dataset(path, 800, seed=7)
    assert path.read_bytes() == sd.write_csv(tmp_path / "fresh.csv", 800, 7).read_bytes()
    assert sd.dataset_is_current(path, 800, seed=7)


def test_ensure_dataset_regenerates_for_other_rows_or_seed(tmp_path: Path) -> None:
    path = tmp_path / "default.csv"
    sd.ensure_dataset(path, 800, seed=7)
    sd.ensure_dataset(path, 900, seed=7)
    assert len(pd.read_csv(path)) == 900
    sd.ensure_dataset(path, 900, seed=8)
    assert path.read_bytes() == sd.write_csv(tmp_path / "fresh.csv", 900, 8).read_bytes()
    meta = json.loads(sd.metadata_path(path).read_text())
    assert (meta["rows"], meta["seed"]) == (900, 8)


# --------------------------------------------------------------------------- command line


def test_cli_writes_then_reports_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "build" / "default.csv"
    argv = ["--rows", "600", "--seed", "3", "--out", str(out)]
    assert sd.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert out.read_bytes() == sd.write_csv(tmp_path / "fresh.csv", 600, 3).read_bytes()
    assert sd.main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert sd.main([*argv, "--force"]) == 0
    assert "wrote" in capsys.readouterr().out


def test_cli_refuses_bad_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sd.main(["--rows", "0", "--out", str(tmp_path / "x.csv")]) == sd.EXIT_BAD_INPUT
    assert "rows" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_cli_runs_as_a_module(tmp_path: Path) -> None:
    out = tmp_path / "default.csv"
    root = Path(sd.__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.sample_data", "--rows", "300", "--out", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 300
