"""The evaluation report's figure data on tiny frames, and the page's sections."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from report_support import sample_inputs

from evaluation import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_confusion_counts_at_the_threshold_include_the_cut_off() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    scores = np.array([0.1, 0.5, 0.7, 0.2, 0.5, 0.9])
    # score >= threshold is class 1, as accuracy, f1, precision and recall count it
    assert report.confusion(labels, scores, 0.5) == {"tn": 1, "fp": 2, "fn": 1, "tp": 2}
    point = report.operating_point(report.confusion(labels, scores, 0.5))
    assert point == pytest.approx({"fpr": 2 / 3, "tpr": 2 / 3, "precision": 0.5})


def test_roc_and_pr_points_of_a_known_ranking() -> None:
    labels = np.array([0, 0, 1, 1], dtype=float)
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    roc = report.roc_points(labels, scores)
    assert roc["fpr"].tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert roc["tpr"].tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    pr = report.pr_points(labels, scores)
    assert pr["recall"][0] == 1.0 and pr["recall"][-1] == 0.0
    assert pr["precision"][-1] == 1.0


def test_curves_are_downsampled_keeping_both_ends() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.random(50_000) < 0.4).astype(float)
    scores = rng.random(50_000)
    roc = report.roc_points(labels, scores, limit=100)
    assert len(roc["fpr"]) <= 100
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert report.downsample(5, 10).tolist() == [0, 1, 2, 3, 4]
    kept = report.downsample(1000, 7)
    assert kept[0] == 0 and kept[-1] == 999 and len(kept) == 7


def test_calibration_bins_hold_mean_score_observed_rate_and_count() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0], dtype=float)
    scores = np.array([0.05, 0.15, 0.12, 0.95, 1.0, 0.91])
    curve = report.calibration(labels, scores, bins=10)
    assert curve["count"].tolist() == [1, 2, 3]  # empty bins are left out; 1.0 is in the last
    assert curve["mean_score"] == pytest.approx([0.05, 0.135, (0.95 + 1.0 + 0.91) / 3])
    assert curve["observed"] == pytest.approx([0.0, 0.5, 2 / 3])


def test_class_histograms_count_each_class_on_shared_edges() -> None:
    labels = np.array([0, 0, 1, 1], dtype=float)
    scores = np.array([0.01, 0.02, 0.99, 0.5])
    hist = report.class_histograms(labels, scores, bins=2)
    assert hist["negative"].tolist() == [2, 0]
    assert hist["positive"].tolist() == [0, 2]


def test_error_by_decile_groups_by_the_prediction() -> None:
    predicted = np.arange(20, dtype=float)
    actual = predicted + np.where(predicted >= 10, 2.0, 0.0)
    table = report.error_by_decile(actual, predicted, deciles=2)
    assert table["decile"].tolist() == [1, 2]
    assert table["rows"].tolist() == [10, 10]
    assert table["mae"].tolist() == [0.0, 2.0]
    assert table["rmse"].tolist() == [0.0, 2.0]
    assert table["mean_predicted"].tolist() == [4.5, 14.5]


def test_worst_slices_rank_categories_with_enough_rows_worst_first() -> None:
    features = pd.DataFrame({"plan": ["a"] * 30 + ["b"] * 30 + ["c"] * 5, "n": ["1"] * 65})
    labels = np.array([1.0] * 65)
    scores = np.array([0.9] * 30 + [0.2] * 30 + [0.01] * 5)
    table = report.worst_slices("binary", features, ("plan",), labels, scores, min_rows=20)
    assert table["category"].tolist() == ["b", "a"]  # c has 5 rows: left out
    assert table["rows"].tolist() == [30, 30]
    assert table["error_rate"].tolist() == [1.0, 0.0]
    assert table.loc[0, "log_loss"] == pytest.approx(-np.log(0.2))


def test_worst_slices_of_a_regression_use_rmse_and_bias() -> None:
    features = pd.DataFrame({"city": ["x"] * 25 + ["y"] * 25 + [None] * 25})
    labels = np.zeros(75)
    scores = np.array([1.0] * 25 + [-3.0] * 25 + [0.0] * 25)
    table = report.worst_slices("regression", features, ("city",), labels, scores, min_rows=20)
    assert table["category"].tolist() == ["y", "x", "(missing)"]
    assert table["rmse"].tolist() == [3.0, 1.0, 0.0]
    assert table["mean_error"].tolist() == [-3.0, 1.0, 0.0]


def test_the_gate_verdict_follows_the_condition_step() -> None:
    gte, lte = report.Gate("auc", "gte", 0.8), report.Gate("rmse", "lte", 2.0)
    assert gte.passed(0.8) and not gte.passed(0.79)
    assert lte.passed(2.0) and not lte.passed(2.1)
    assert not gte.passed(None) and not gte.passed(float("nan"))


def test_data_quality_rows_put_the_run_beside_the_baseline() -> None:
    def stats(mean: float, missing: int) -> dict:
        return {
            "dataset": {"item_count": 100},
            "features": [
                {
                    "name": "age",
                    "inferred_type": "Fractional",
                    "numerical_statistics": {
                        "common": {"num_present": 100 - missing, "num_missing": missing},
                        "mean": mean,
                        "std_dev": 10.0,
                    },
                }
            ],
        }

    quality = report.DataQuality(stats(45.0, 10), stats(40.0, 0), [])
    (row,) = report.data_quality_rows(quality)
    assert row["now"]["missing"] == pytest.approx(0.10)
    assert row["before"]["mean"] == 40.0
    assert row["change"] == "missing 0.0% -> 10.0%; mean 40 -> 45 (+0.50 sd)"
    sentence = report.violation_sentence(
        {"feature_name": "age", "constraint_check_type": "baseline_drift_check",
         "description": "distance 0.3 exceeds 0.1"}
    )  # fmt: skip
    assert (
        sentence == "Feature age drifted from the baseline distribution: distance 0.3 exceeds 0.1"
    )


SECTIONS = {
    "binary": ("fig-roc", "fig-pr", "fig-confusion", "fig-calibration", "fig-scores"),
    "regression": ("fig-predicted_actual", "fig-residuals", "fig-residual_histogram",
                   "fig-deciles"),
}  # fmt: skip
COMMON = ("gate", "metrics", "performance", "slices", "importance", "fig-importance", "training",
          "fig-training", "data-quality")  # fmt: skip


@pytest.mark.parametrize(
    ("problem_type", "gate"),
    [("binary", report.Gate("auc", "gte", 0.8)), ("regression", report.Gate("rmse", "lte", 2.0))],
)
def test_the_page_holds_every_section_inline(problem_type: str, gate: report.Gate) -> None:
    page = report.render_html(sample_inputs(problem_type, gate))
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert set(SECTIONS[problem_type]) | set(COMMON) <= ids
    assert "PASS" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(SECTIONS[problem_type]) + 2
    assert all(src.startswith("data:image/png;base64,") for src in images)
    # self-contained: nothing to fetch, nothing to run
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert '<meta name="viewport"' in page and "@media print" in page
    assert "Feature plan has values of another type than in the baseline." in page


def test_a_failing_gate_is_explained_on_the_page_and_the_image() -> None:
    inputs = sample_inputs("binary", report.Gate("auc", "gte", 0.95))
    page = report.render_html(inputs)
    assert 'class="verdict fail"' in page
    assert "FAIL: auc = 0.83, but the gate requires auc &gt;= 0.95" in page
    assert "nothing is registered" in page
    assert report.render_summary_png(inputs).startswith(PNG_MAGIC)


def test_missing_parts_are_said_not_left_out() -> None:
    inputs = sample_inputs("regression", report.Gate("rmse", "lte", 2.0))
    bare = report.ReportInputs(
        "regression", inputs.metrics, inputs.rows, inputs.labels, inputs.scores
    )
    page = report.render_html(bare)
    assert "No gate was given" in page
    assert "no categorical features" in page
    assert "no training history" in page
    assert "No data-quality statistics" in page


def _drawn_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record every figure the report encodes (drawn by its own savefig)."""
    drawn: list = []
    encode = report._png

    def recording(figure):  # type: ignore[no-untyped-def]
        drawn.append(figure)
        return encode(figure)

    monkeypatch.setattr(report, "_png", recording)
    return drawn


def _wide_inputs(problem_type: str) -> report.ReportInputs:
    """Labels as wide as the fixed margins allow: seven-character ticks, long category names."""
    inputs = sample_inputs(problem_type, report.Gate("auc", "gte", 0.8), rows=3000)
    rng = np.random.default_rng(5)
    labels, scores = inputs.labels, inputs.scores
    if problem_type == "regression":
        labels = rng.normal(-60_000, 50_000, len(labels))  # ticks such as -200000
        scores = labels + rng.normal(0, 20_000, len(labels))
    importance = {"customer_acquisition_channel_partner_referral": 1e6, "tenure_months": 3.0}
    curve = report.TrainingCurve("rmse", tuple(np.linspace(-123456.0, -12345.0, 300)), 250)
    return report.ReportInputs(
        problem_type, inputs.metrics, inputs.rows, labels, scores, inputs.probability_threshold,
        inputs.gate, inputs.features, inputs.categorical_columns, importance, curve,
    )  # fmt: skip


@pytest.mark.parametrize("problem_type", ["binary", "regression"])
@pytest.mark.parametrize("wide", [False, True])
def test_every_chart_fits_its_fixed_layout(
    problem_type: str, wide: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each figure is drawn once, within fixed margins: nothing it draws leaves its canvas."""
    drawn = _drawn_figures(monkeypatch)
    inputs = _wide_inputs(problem_type) if wide else sample_inputs(problem_type, report.Gate(
        "auc", "gte", 0.8))  # fmt: skip
    data = report.ChartData.of(inputs)
    charts = report.figures(inputs, data)
    page = report.render_html(inputs, data, charts)
    assert page.count("<img") == len(drawn) == len(SECTIONS[problem_type]) + 2
    report.render_summary_png(inputs, charts)
    for figure in drawn:
        assert figure.get_layout_engine() is None  # no measuring layout before the draw
        extent = figure.get_tightbbox(figure.canvas.get_renderer())
        width, height = figure.get_size_inches()
        title = figure.axes[0].get_title() if figure.axes else figure.get_suptitle()
        assert extent.x0 >= 0 and extent.y0 >= 0, title
        assert extent.x1 <= width and extent.y1 <= height, title


@pytest.mark.parametrize("problem_type", ["binary", "regression"])
def test_the_summary_image_shows_the_pages_charts_as_drawn(problem_type: str) -> None:
    import io

    from PIL import Image

    inputs = sample_inputs(problem_type, report.Gate("auc", "gte", 0.8))
    charts = {chart.key: chart for chart in report.figures(inputs)}
    summary = np.asarray(Image.open(io.BytesIO(report.render_summary_png(inputs, [
        *charts.values()]))).convert("RGBA"))  # fmt: skip
    pad, top = report.SUMMARY_PAD, report.SUMMARY_TITLE
    for index, key in enumerate(report.SUMMARY_CHARTS[problem_type]):
        chart = np.asarray(Image.open(io.BytesIO(charts[key].png)).convert("RGBA"))
        height, width = chart.shape[:2]
        row, column = divmod(index, 2)
        y, x = top + row * (height + pad), pad + column * (width + pad)
        assert (summary[y : y + height, x : x + width] == chart).all(), key
    assert summary.shape[:2] == (top + 2 * height + 2 * pad, 2 * width + 3 * pad)
    # the fourth cell holds the metrics, drawn as text: not blank
    assert (summary[top + height + pad :, pad + width + pad :, :3] < 128).any()
