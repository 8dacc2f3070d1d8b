"""Tests of scripts/evaluate.py: archive handling, metrics, bootstrap and the job end to end."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from scripts import evaluate as ev
from scripts.evaluate import EvaluationError
from tabular import contract, names
from tabular.errors import DataError, JobError


def test_metric_json_path() -> None:
    assert names.metric_json_path("binary", "auc") == "binary_classification_metrics.auc.value"
    assert names.metric_json_path("regression", "r2") == "regression_metrics.r2.value"
    with pytest.raises(ValueError, match="'auc' is not reported for problem type 'regression'"):
        names.metric_json_path("regression", "auc")


def test_problem_types_agree_with_preprocess() -> None:
    assert names.PROBLEM_TYPES == names.PROBLEM_TYPES


# --------------------------------------------------------------------------- archive


def _archive(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return path


def test_safe_extract_extracts_regular_files(tmp_path: Path) -> None:
    folder = tarfile.TarInfo("sub")
    folder.type = tarfile.DIRTYPE
    archive = _archive(
        tmp_path / "m.tar.gz", [tarfile.TarInfo("./a.json"), folder, tarfile.TarInfo("sub/b")]
    )
    assert ev.safe_extract(archive, tmp_path / "out") == ["./a.json", "sub/b"]
    assert (tmp_path / "out" / "sub" / "b").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "ok/../../evil"])
def test_safe_extract_refuses_paths_outside(tmp_path: Path, name: str) -> None:
    archive = _archive(tmp_path / "m.tar.gz", [tarfile.TarInfo(name)])
    with pytest.raises(EvaluationError, match="outside the target directory"):
        ev.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_safe_extract_refuses_links(tmp_path: Path) -> None:
    link = tarfile.TarInfo("model.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive = _archive(tmp_path / "m.tar.gz", [link])
    with pytest.raises(EvaluationError, match="is a link or special file"):
        ev.safe_extract(archive, tmp_path / "out")


def test_a_broken_archive_is_reported(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(EvaluationError, match="not a readable tar archive"):
        ev.safe_extract(tmp_path / "model.tar.gz", tmp_path / "out")


def test_missing_archive_and_serving_code_are_named(tmp_path: Path) -> None:
    with pytest.raises(JobError, match=r"model\.tar\.gz: not found"):
        ev.find_model_archive(tmp_path)
    with pytest.raises(EvaluationError, match=r"inference\.py: not found"):
        ev.load_serving_module(tmp_path)


# --------------------------------------------------------------------------- metrics


def _binary_data(rows: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.3).astype(float)
    scores = np.round(np.clip(0.3 * labels + 0.7 * rng.random(rows), 0, 1), 2)  # with ties
    return labels, scores


def _regression_data(rows: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.normal(size=rows)
    return labels, labels + rng.normal(scale=0.5, size=rows)


def _resampled(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row indices of the sample in which row i appears counts[i] times."""
    return np.repeat(np.arange(len(labels)), counts.astype(int))


def _binary_counts(labels: np.ndarray, scores: np.ndarray, rows: list[np.ndarray]) -> tuple:
    groups = ev.ScoreGroups.of(labels, scores)
    size = 2 * len(groups.scores)
    counts = np.vstack([np.bincount(groups.code, weights=r, minlength=size) for r in rows])
    return groups, counts.astype(np.int64)


@pytest.mark.parametrize("threshold", [0.4, 0.5, 0.37])  # 0.37: a score of the data
def test_class_metrics_equal_sklearn_on_the_sample(threshold: float) -> None:
    labels, scores = _binary_data()
    assert (scores == 0.37).any()
    row_counts = np.random.default_rng(1).integers(0, 4, size=len(labels)).astype(float)
    groups, counts = _binary_counts(labels, scores, [np.ones(len(labels)), row_counts])
    vectorised = ev.class_metrics(groups, counts, threshold)
    assert list(vectorised) == list(names.METRICS["binary"])

    unweighted = ev.point_metrics("binary", labels, scores, threshold)
    sample = _resampled(labels, row_counts)
    resampled = ev.point_metrics("binary", labels[sample], scores[sample], threshold)
    for name in names.METRICS["binary"]:
        assert vectorised[name][0] == pytest.approx(unweighted[name], rel=1e-12), name
        assert vectorised[name][1] == pytest.approx(resampled[name], rel=1e-12), name


def test_regression_metrics_equal_sklearn_on_the_sample() -> None:
    labels, scores = _regression_data()
    row_counts = np.random.default_rng(1).integers(0, 4, size=len(labels)).astype(float)
    weights = np.vstack([np.ones(len(labels)), row_counts])
    vectorised = ev.regression_metrics(labels, scores, weights)
    assert list(vectorised) == list(names.METRICS["regression"])
    unweighted = ev.point_metrics("regression", labels, scores, 0.5)
    sample = _resampled(labels, row_counts)
    resampled = ev.point_metrics("regression", labels[sample], scores[sample], 0.5)
    for name in names.METRICS["regression"]:
        assert vectorised[name][0] == pytest.approx(unweighted[name], rel=1e-9), name
        assert vectorised[name][1] == pytest.approx(resampled[name], rel=1e-9), name


@pytest.mark.parametrize("threshold", [0.5, 0.37, 0.999])  # 0.999: nothing predicted 1
def test_point_metrics_are_sklearn_values(threshold: float) -> None:
    labels, scores = _binary_data()
    values = ev.point_metrics("binary", labels, scores, threshold)
    predicted = scores >= threshold
    assert values == {
        "auc": skm.roc_auc_score(labels, scores),
        "accuracy": skm.accuracy_score(labels, predicted),
        "f1": skm.f1_score(labels, predicted, zero_division=0),
        "precision": skm.precision_score(labels, predicted, zero_division=0),
        "recall": skm.recall_score(labels, predicted, zero_division=0),
        "log_loss": skm.log_loss(labels, scores),
    }


def test_class_metrics_count_ties_half_and_a_missing_class_as_nan() -> None:
    labels = np.array([0.0, 1.0, 0.0, 1.0])
    scores = np.array([0.5, 0.5, 0.1, 0.9])
    groups, counts = _binary_counts(
        labels, scores, [np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 0.0, 1.0, 0.0])]
    )
    assert groups.scores.tolist() == [0.1, 0.5, 0.9]
    assert groups.code.tolist() == [1, 4, 0, 5]  # group, + 3 for class 1
    auc = ev.class_metrics(groups, counts)["auc"]
    assert auc[0] == skm.roc_auc_score(labels, scores) == 0.875
    assert np.isnan(auc[1])


def test_resample_counts_draw_every_row_as_often_as_there_are_rows() -> None:
    counts = ev.resample_counts(np.arange(1000), 1000, 5, np.random.default_rng(0))
    assert counts.shape == (5, 1000)
    assert (counts.sum(axis=1) == 1000).all()
    assert 0.55 < (counts[0] > 0).mean() < 0.71  # about 1 - 1/e of the rows are drawn
    codes = ev.resample_counts(np.arange(1000) % 3, 3, 5, np.random.default_rng(0))
    assert codes.tolist() == [
        [row[i::3].sum() for i in range(3)] for row in counts
    ]  # the same draws, counted per code


def test_bootstrap_is_seeded_and_chunked_consistently(monkeypatch: pytest.MonkeyPatch) -> None:
    labels, scores = _binary_data()
    first = ev.bootstrap_standard_deviations("binary", labels, scores, rounds=20, seed=3)
    assert first == ev.bootstrap_standard_deviations("binary", labels, scores, rounds=20, seed=3)
    assert first != ev.bootstrap_standard_deviations("binary", labels, scores, rounds=20, seed=4)
    assert all(0 < value < 0.1 for value in first.values())
    monkeypatch.setattr(ev, "BOOTSTRAP_CHUNK_CELLS", 3 * len(labels))  # 3 rounds per chunk
    assert ev.bootstrap_standard_deviations(
        "binary", labels, scores, rounds=20, seed=3
    ) == pytest.approx(first)


# The bootstrap as it was computed before it counted (score, class) pairs: a weight per row
# and round, each metric from the weighted rows. The job's numbers must not move.


def _rowwise_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = weights[:, order]
    positive = w * labels[order]
    negative = w - positive
    positive_g = np.add.reduceat(positive, starts, axis=1)
    negative_g = np.add.reduceat(negative, starts, axis=1)
    below = np.cumsum(negative_g, axis=1) - negative_g
    pairs = (positive_g * (below + 0.5 * negative_g)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pairs / (positive_g.sum(axis=1) * negative_g.sum(axis=1))


def _rowwise_binary(labels, scores, weights, threshold):  # type: ignore[no-untyped-def]
    total = weights.sum(axis=1)
    predicted = (scores >= threshold).astype("float64")
    tp = weights @ (labels * predicted)
    fp = weights @ ((1 - labels) * predicted)
    fn = weights @ (labels * (1 - predicted))
    eps = np.finfo("float64").eps
    clipped = np.clip(scores, eps, 1 - eps)
    losses = -(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    return {
        "auc": _rowwise_auc(labels, scores, weights),
        "accuracy": 1 - (fp + fn) / total,
        "f1": ev._divide(2 * tp, 2 * tp + fp + fn),
        "precision": ev._divide(tp, tp + fp),
        "recall": ev._divide(tp, tp + fn),
        "log_loss": (weights @ losses) / total,
    }


def _rowwise_bootstrap(problem_type, labels, scores, threshold, rounds, seed):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    rows = len(labels)
    chunk = max(1, ev.BOOTSTRAP_CHUNK_CELLS // rows)
    collected: dict[str, list[np.ndarray]] = {m: [] for m in names.METRICS[problem_type]}
    for start in range(0, rounds, chunk):
        size = min(chunk, rounds - start)
        picks = rng.integers(0, rows, size=(size, rows))
        flat = (np.arange(size)[:, None] * rows + picks).ravel()
        weights = np.bincount(flat, minlength=size * rows).reshape(size, rows).astype("float64")
        metrics = (
            _rowwise_binary(labels, scores, weights, threshold)
            if problem_type == "binary"
            else ev.regression_metrics(labels, scores, weights)
        )
        for name, values in metrics.items():
            collected[name].append(values)
    result = {}
    for name, parts in collected.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        result[name] = float(np.std(values, ddof=1)) if values.size > 1 else float("nan")
    return result


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    cases = []
    for rows, decimals in [(7, 1), (60, 1), (500, 2), (3000, 3), (20_000, None)]:
        labels = (rng.random(rows) < 0.25).astype(float)
        scores = np.clip(0.35 * labels + 0.65 * rng.random(rows), 0, 1)
        if decimals is not None:
            scores = np.round(scores, decimals)  # many ties, across the classes
        cases.append(("binary", labels, scores))
    labels = np.zeros(50)
    labels[3] = 1.0  # one positive: rounds without it give AUC NaN, left out of its spread
    cases.append(("binary", labels, np.round(rng.random(50), 1)))
    cases.append(("binary", np.array([0.0, 1.0] * 20), np.full(40, 0.5)))  # one tie of all rows
    for rows in (9, 400, 20_000):
        labels = rng.normal(3, 2, size=rows)
        cases.append(("regression", labels, np.round(labels + rng.normal(size=rows), 1)))
    return cases


@pytest.mark.parametrize("chunk_cells", [None, 1, 10_000])
@pytest.mark.parametrize("case", range(len(_cases())))
def test_bootstrap_equals_the_rowwise_computation(
    case: int, chunk_cells: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem_type, labels, scores = _cases()[case]
    if chunk_cells is not None:
        monkeypatch.setattr(ev, "BOOTSTRAP_CHUNK_CELLS", chunk_cells)
    for threshold, seed in [(0.5, 0), (0.3, 7)]:
        expected = _rowwise_bootstrap(problem_type, labels, scores, threshold, 50, seed)
        found = ev.bootstrap_standard_deviations(problem_type, labels, scores, threshold, 50, seed)
        assert list(found) == list(expected)
        for name, value in expected.items():
            if name in ("auc", "accuracy", "f1", "precision", "recall"):
                assert found[name] == value or np.isnan(value) and np.isnan(found[name]), name
            else:
                # abs: the spread of equal log losses (one score for all rows) is rounding noise
                assert found[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_build_report_layout_and_non_finite_values() -> None:
    values = {name: 0.5 for name in names.METRICS["regression"]}
    deviations = {**values, "r2": float("nan")}
    report = ev.build_report("regression", values, deviations, 12)
    assert report["evaluation_rows"] == 12
    assert report["regression_metrics"]["mse"] == {"value": 0.5, "standard_deviation": 0.5}
    assert report["regression_metrics"]["r2"]["standard_deviation"] is None
    json.dumps(report, allow_nan=False)


def test_check_labels() -> None:
    ev.check_labels("binary", np.array([0.0, 1.0]), "test.csv")
    ev.check_labels("regression", np.array([3.5]), "test.csv")
    with pytest.raises(EvaluationError, match=r"test\.csv: the test split holds only class 1"):
        ev.check_labels("binary", np.array([1.0, 1.0]), "test.csv")
    with pytest.raises(EvaluationError, match=r"values \[0\.0, 2\.0\] are not 0/1"):
        ev.check_labels("binary", np.array([0.0, 2.0]), "test.csv")


# --------------------------------------------------------------------------- job


def _main(
    problem_type: str, model_dir: Path, test_dir: Path, scripts_dir: Path, output: Path
) -> int:
    return ev.main(
        [
            "--model-dir", str(model_dir),
            "--test-dir", str(test_dir),
            "--serving-code-dir", str(scripts_dir),
            "--output-dir", str(output),
            "--problem-type", problem_type,
            "--bootstrap-rounds", "20",
        ]
    )  # fmt: skip


@pytest.mark.parametrize("problem_type", ["binary", "regression"])
def test_main_end_to_end(
    job_model_archive: Callable[[str], Path],
    job_prepared: Callable[[str], Path],
    job_scripts_dir: Path,
    tmp_path: Path,
    problem_type: str,
) -> None:
    test_dir = job_prepared(problem_type) / names.TEST
    code = _main(problem_type, job_model_archive(problem_type), test_dir, job_scripts_dir, tmp_path)
    assert code == 0
    report = json.loads((tmp_path / names.EVALUATION_FILE).read_text())
    section = report[names.REPORT_KEYS[problem_type]]
    assert list(section) == list(names.METRICS[problem_type])
    assert report[names.ROWS_KEY] == len(pd.read_parquet(test_dir / names.TEST_FILE))
    for metric, entry in section.items():
        assert set(entry) == {"value", "standard_deviation"}
        assert entry["standard_deviation"] > 0, metric
        resolved = reduce(lambda node, key: node[key], names.metric_json_path(problem_type, metric)
                          .split("."), report)  # fmt: skip
        assert resolved == entry["value"]
    if problem_type == "binary":
        assert 0.8 < section["auc"]["value"] <= 1
        assert all(0 <= section[m]["value"] <= 1 for m in ("accuracy", "f1", "precision"))
        assert 0 < section["log_loss"]["value"] < 0.69
    else:
        assert section["rmse"]["value"] == pytest.approx(section["mse"]["value"] ** 0.5)
        assert 0.5 < section["r2"]["value"] <= 1


def test_main_rejects_a_problem_type_mismatch(
    job_model_archive: Callable[[str], Path],
    job_prepared: Callable[[str], Path],
    job_scripts_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    reason = tmp_path / "output" / "message"  # a processing job's ExitMessage
    test_dir = job_prepared("binary") / names.TEST
    output = tmp_path / "evaluation"
    code = _main("regression", job_model_archive("binary"), test_dir, job_scripts_dir, output)
    assert code == 2
    assert "trained for 'binary' but --problem-type is 'regression'" in capsys.readouterr().err
    assert "trained for 'binary'" in reason.read_text()
    assert not output.exists()


def test_main_rejects_test_data_of_another_run(
    job_model_archive: Callable[[str], Path],
    job_prepared: Callable[[str], Path],
    job_scripts_dir: Path,
    tmp_path: Path,
) -> None:
    test_dir = job_prepared("regression") / names.TEST
    with pytest.raises(DataError, match=r"test\.parquet: columns .* do not match"):
        ev.evaluate(job_model_archive("binary"), test_dir, job_scripts_dir, "binary")


def _statistics(mean: float) -> dict:
    return {
        "version": 0.0,
        "dataset": {"item_count": 100},
        "features": [
            {
                "name": "x1",
                "inferred_type": "Fractional",
                "numerical_statistics": {
                    "common": {"num_present": 100, "num_missing": 0},
                    "mean": mean,
                    "std_dev": 1.0,
                },
            }
        ],
    }


@pytest.mark.parametrize(
    ("problem_type", "metric", "comparison", "threshold", "verdict"),
    [
        ("binary", "auc", "gte", 0.5, "PASS"),
        ("binary", "auc", "gte", 0.9999, "FAIL"),  # a failing gate's report is written too
        ("regression", "rmse", "lte", 0.0001, "FAIL"),
    ],
)
def test_main_writes_the_report_from_the_gates_numbers(
    job_model_archive: Callable[[str], Path],
    job_prepared: Callable[[str], Path],
    job_scripts_dir: Path,
    tmp_path: Path,
    problem_type: str,
    metric: str,
    comparison: str,
    threshold: float,
    verdict: str,
) -> None:
    quality, baseline = tmp_path / "data-quality", tmp_path / "drift-baseline"
    for folder, mean in ((quality, 1.0), (baseline, 0.0)):
        folder.mkdir()
        (folder / contract.STATISTICS_FILE).write_text(json.dumps(_statistics(mean)))
    violation = {"feature_name": "x1", "constraint_check_type": "baseline_drift_check",
                 "description": "distance 0.5 exceeds 0.1"}  # fmt: skip
    (quality / contract.VIOLATIONS_FILE).write_text(json.dumps({"violations": [violation]}))
    output = tmp_path / "evaluation"
    test_dir = job_prepared(problem_type) / names.TEST
    code = ev.main(
        [
            "--model-dir", str(job_model_archive(problem_type)), "--test-dir", str(test_dir),
            "--serving-code-dir", str(job_scripts_dir), "--output-dir", str(output),
            "--problem-type", problem_type, "--bootstrap-rounds", "5",
            "--gate-metric", metric, "--gate-comparison", comparison,
            "--gate-threshold", str(threshold),
            "--data-quality-dir", str(quality), "--drift-baseline-dir", str(baseline),
        ]
    )  # fmt: skip
    assert code == 0
    evaluation = json.loads((output / names.EVALUATION_FILE).read_text())
    page = (output / names.REPORT_HTML).read_text(encoding="utf-8")
    assert (output / names.REPORT_PNG).read_bytes().startswith(b"\x89PNG")
    value = evaluation[names.REPORT_KEYS[problem_type]][metric]["value"]
    # the gate's number, as the condition step reads it, is the one the page judges
    assert f"{verdict}: {metric} = {value:.4g}" in page
    for section in ("gate", "metrics", "performance", "slices", "importance", "training",
                    "data-quality", "fig-importance", "fig-training"):  # fmt: skip
        assert f'id="{section}"' in page, section
    assert "Feature x1 drifted from the baseline distribution: distance 0.5 exceeds 0.1" in page
    assert "mean 0 -&gt; 1 (+1.00 sd)" in page
    assert "<td>color</td>" in page and "<td>plan</td>" in page  # the categorical slices
    assert "Early stopping kept round" in page


def test_main_refuses_half_a_gate(
    job_model_archive: Callable[[str], Path],
    job_prepared: Callable[[str], Path],
    job_scripts_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    output = tmp_path / "evaluation"
    code = ev.main(
        [
            "--model-dir", str(job_model_archive("binary")),
            "--test-dir", str(job_prepared("binary") / names.TEST),
            "--serving-code-dir", str(job_scripts_dir), "--output-dir", str(output),
            "--problem-type", "binary", "--gate-metric", "rmse", "--gate-threshold", "1",
        ]
    )  # fmt: skip
    assert code == 2
    assert "--gate-metric 'rmse'" in capsys.readouterr().err
    assert not output.exists()
