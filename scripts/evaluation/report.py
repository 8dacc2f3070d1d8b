"""The evaluation report: one self-contained HTML page and one PNG summary for a reviewer.

Built by the Evaluate job from the numbers it has already computed (the test labels, the scores
the serving code gave, and the metrics of evaluation.json that the gate reads): nothing here
computes a metric the gate uses a second time, it only draws and tabulates. The page holds
every image inline (base64 PNG), no script and no external reference, so it opens offline, on
a phone and in print.

The figure data are pure functions of arrays (tested on tiny frames); :func:`render_html` and
:func:`render_summary_png` turn them into the page and the image with matplotlib's Agg canvas
(its figure and Agg modules only, never pyplot), from one :class:`ChartData` (each curve computed
once), each figure drawn once within fixed margins (:data:`MARGINS`); the summary image shows
the page's key charts as they were drawn for it (:data:`SUMMARY_CHARTS`). Curves are drawn
from at most :data:`MAX_CURVE_POINTS` points and scatter plots from at most
:data:`MAX_SCATTER_POINTS` rows (a seeded sample): the metrics use every row, the pictures need
not, so the report's cost stays flat as the test split grows.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabular.names import AT_LEAST, AT_MOST, BINARY, REGRESSION

MAX_CURVE_POINTS = 400
MAX_SCATTER_POINTS = 4000
HISTOGRAM_BINS = 30
CALIBRATION_BINS = 10
DECILES = 10
SLICE_MIN_ROWS = 20
SLICES_SHOWN = 15
CATEGORIES_PER_FEATURE = 50
IMPORTANCE_SHOWN = 20
SAMPLE_SEED = 0
COMPARISONS = {AT_LEAST: ">=", AT_MOST: "<="}
DPI = 96

# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class MetricValue:
    """A metric as evaluation.json holds it: its value and bootstrap standard deviation."""

    name: str
    value: float | None
    standard_deviation: float | None


@dataclass(frozen=True)
class Gate:
    """The pipeline's condition: ``metric`` compared with ``threshold`` (gte or lte)."""

    metric: str
    comparison: str
    threshold: float

    def passed(self, value: float | None) -> bool:
        """The condition step's verdict on ``value`` (a missing value fails)."""
        if value is None or not math.isfinite(value):
            return False
        return value >= self.threshold if self.comparison == AT_LEAST else value <= self.threshold


@dataclass(frozen=True)
class TrainingCurve:
    """The validation metric per boosting round and the round early stopping kept."""

    metric: str
    values: tuple[float, ...]
    best_iteration: int


@dataclass(frozen=True)
class DataQuality:
    """The DataQuality step's statistics (Model Monitor format), its baseline, its violations."""

    statistics: Mapping[str, Any]
    baseline: Mapping[str, Any] | None = None
    violations: Sequence[Mapping[str, Any]] | None = None
    """None: no violation report was available; []: the check found none."""


@dataclass(frozen=True)
class ReportInputs:
    """Everything the page shows; every number comes from the evaluation itself."""

    problem_type: str
    metrics: tuple[MetricValue, ...]
    rows: int
    labels: np.ndarray
    scores: np.ndarray
    probability_threshold: float = 0.5
    gate: Gate | None = None
    features: pd.DataFrame | None = None
    categorical_columns: tuple[str, ...] = ()
    importance: Mapping[str, float] = field(default_factory=dict)
    training_curve: TrainingCurve | None = None
    data_quality: DataQuality | None = None
    title: str = "Model evaluation"

    def metric(self, name: str) -> MetricValue | None:
        return next((m for m in self.metrics if m.name == name), None)


# --------------------------------------------------------------------------- figure data


def downsample(n: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` evenly spaced points of ``n``, first and last kept."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def roc_points(labels: np.ndarray, scores: np.ndarray, limit: int = MAX_CURVE_POINTS) -> dict:
    """False and true positive rates of the ROC curve (scikit-learn), at most ``limit`` points."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    keep = downsample(len(fpr), limit)
    return {"fpr": fpr[keep], "tpr": tpr[keep]}


def pr_points(labels: np.ndarray, scores: np.ndarray, limit: int = MAX_CURVE_POINTS) -> dict:
    """Precision and recall of the precision-recall curve, at most ``limit`` points."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(labels, scores)
    keep = downsample(len(precision), limit)
    return {"precision": precision[keep], "recall": recall[keep]}


def confusion(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    """Counts at the probability threshold (class 1 when score >= threshold, as the metrics)."""
    predicted = scores >= threshold
    actual = labels == 1
    return {
        "tn": int(np.sum(~actual & ~predicted)),
        "fp": int(np.sum(~actual & predicted)),
        "fn": int(np.sum(actual & ~predicted)),
        "tp": int(np.sum(actual & predicted)),
    }


def operating_point(counts: Mapping[str, int]) -> dict[str, float]:
    """The threshold's point on the ROC and PR curves, from its confusion counts."""

    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    return {
        "fpr": ratio(counts["fp"], counts["fp"] + counts["tn"]),
        "tpr": ratio(counts["tp"], counts["tp"] + counts["fn"]),
        "precision": ratio(counts["tp"], counts["tp"] + counts["fp"]),
    }


def calibration(labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Reliability curve: per equal-width score bin, mean score, observed rate and count."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    score_sum = np.bincount(index, weights=scores, minlength=bins)
    positive = np.bincount(index, weights=labels, minlength=bins)
    filled = count > 0
    return {
        "mean_score": score_sum[filled] / count[filled],
        "observed": positive[filled] / count[filled],
        "count": count[filled],
    }


def class_histograms(labels: np.ndarray, scores: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict:
    """Score histograms of each class on shared bin edges over [0, 1]."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "edges": edges,
        "negative": np.histogram(scores[labels == 0], bins=edges)[0],
        "positive": np.histogram(scores[labels == 1], bins=edges)[0],
    }


def scatter_sample(n: int, limit: int = MAX_SCATTER_POINTS, seed: int = SAMPLE_SEED) -> np.ndarray:
    """A seeded sample of at most ``limit`` row indices (sorted), for scatter plots."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def error_by_decile(labels: np.ndarray, scores: np.ndarray, deciles: int = DECILES) -> pd.DataFrame:
    """Rows grouped by decile of the prediction: count, mean actual and predicted, MAE, RMSE."""
    order = np.argsort(scores, kind="stable")
    decile = np.empty(len(scores), dtype=np.int64)
    decile[order] = np.arange(len(scores)) * deciles // max(1, len(scores))
    rows = np.bincount(decile, minlength=deciles)
    filled = rows > 0
    error = scores - labels

    def mean(values: np.ndarray) -> np.ndarray:
        return (np.bincount(decile, weights=values, minlength=deciles) / np.maximum(rows, 1))[
            filled
        ]

    return pd.DataFrame(
        {
            "decile": np.arange(1, deciles + 1)[filled],
            "rows": rows[filled],
            "mean_actual": mean(labels),
            "mean_predicted": mean(scores),
            "mae": mean(np.abs(error)),
            "rmse": np.sqrt(mean(error**2)),
        }
    )


def _row_losses(problem_type: str, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    if problem_type == BINARY:
        eps = np.finfo("float64").eps
        clipped = np.clip(scores, eps, 1 - eps)
        return -(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    return (scores - labels) ** 2


def worst_slices(
    problem_type: str,
    features: pd.DataFrame,
    categorical_columns: Sequence[str],
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float = 0.5,
    min_rows: int = SLICE_MIN_ROWS,
    shown: int = SLICES_SHOWN,
) -> pd.DataFrame:
    """Each category of each categorical feature with its rows and error, worst first.

    Binary: mean log loss and error rate at the threshold; regression: RMSE and mean error
    (bias). Categories with fewer than ``min_rows`` test rows are left out (their error says
    little); missing values form their own category.
    """
    loss = _row_losses(problem_type, labels, scores)
    if problem_type == BINARY:
        wrong = ((scores >= threshold).astype(float) != labels).astype(float)
    else:
        wrong = scores - labels
    parts = []
    for column in categorical_columns:
        if column not in features.columns:
            continue
        codes, uniques = pd.factorize(features[column], use_na_sentinel=False)
        size = len(uniques)
        rows = np.bincount(codes, minlength=size)
        table = pd.DataFrame(
            {
                "category": ["(missing)" if pd.isna(u) else str(u) for u in uniques],
                "rows": rows,
                "loss": np.bincount(codes, weights=loss, minlength=size) / rows,
                "other": np.bincount(codes, weights=wrong, minlength=size) / rows,
            }
        )
        table = table.nlargest(CATEGORIES_PER_FEATURE, "rows")
        table.insert(0, "feature", column)
        parts.append(table[table["rows"] >= min_rows])
    columns = ["feature", "category", "rows", "loss", "other"]
    if not parts:
        return _slice_names(problem_type, pd.DataFrame(columns=columns))
    table = pd.concat(parts, ignore_index=True)
    table = table.sort_values(["loss", "rows"], ascending=[False, False]).head(shown)
    if problem_type == REGRESSION:
        table["loss"] = np.sqrt(table["loss"])
    return _slice_names(problem_type, table.reset_index(drop=True))


def _slice_names(problem_type: str, table: pd.DataFrame) -> pd.DataFrame:
    names = (
        {"loss": "log_loss", "other": "error_rate"}
        if problem_type == BINARY
        else {"loss": "rmse", "other": "mean_error"}
    )
    return table.rename(columns=names)


def overall_slice_error(problem_type: str, labels: np.ndarray, scores: np.ndarray) -> float:
    """The whole test split's value of the slices' ranking column (for comparison)."""
    mean = float(np.mean(_row_losses(problem_type, labels, scores)))
    return mean if problem_type == BINARY else math.sqrt(mean)


def top_importance(importance: Mapping[str, float], shown: int = IMPORTANCE_SHOWN) -> list:
    """The ``shown`` largest gains, largest first."""
    return sorted(importance.items(), key=lambda item: (-item[1], item[0]))[:shown]


# --------------------------------------------------------------------------- data quality


def _feature_summary(feature: Mapping[str, Any], item_count: int) -> dict[str, Any]:
    """One feature's statistics in a flat form: type, missing share, and its centre."""
    numeric = feature.get("numerical_statistics")
    strings = feature.get("string_statistics")
    common = (numeric or strings or {}).get("common") or {}
    present = common.get("num_present") or 0
    missing = common.get("num_missing") or 0
    total = present + missing or item_count or 1
    summary: dict[str, Any] = {
        "type": feature.get("inferred_type", "?"),
        "missing": missing / total,
    }
    if numeric:
        for key in ("mean", "std_dev", "min", "max"):
            summary[key] = numeric.get(key)
    if strings:
        summary["distinct"] = strings.get("distinct_count")
        buckets = ((strings.get("distribution") or {}).get("categorical") or {}).get("buckets")
        if buckets:
            top = max(buckets, key=lambda b: b.get("count", 0))
            summary["top"] = f"{top.get('value')} ({top.get('count', 0) / total:.0%})"
    return summary


def data_quality_rows(quality: DataQuality) -> list[dict[str, Any]]:
    """Per feature: the run's statistics beside the baseline's, and what changed, in words."""
    current = quality.statistics
    baseline = quality.baseline or {}
    count = int((current.get("dataset") or {}).get("item_count") or 0)
    base_count = int((baseline.get("dataset") or {}).get("item_count") or 0)
    base_features = {f.get("name"): f for f in baseline.get("features") or []}
    rows = []
    for feature in current.get("features") or []:
        name = feature.get("name")
        now = _feature_summary(feature, count)
        before = (
            _feature_summary(base_features[name], base_count) if name in base_features else None
        )
        change = _change(now, before) if quality.baseline is not None else ""
        rows.append({"feature": name, "now": now, "before": before, "change": change})
    for name, feature in base_features.items():
        if name not in {r["feature"] for r in rows}:
            rows.append(
                {
                    "feature": name,
                    "now": None,
                    "before": _feature_summary(feature, base_count),
                    "change": "in the baseline, absent now",
                }
            )
    return rows


def _change(now: Mapping[str, Any], before: Mapping[str, Any] | None) -> str:
    if before is None:
        return "new: not in the baseline"
    words = []
    if now["type"] != before["type"]:
        words.append(f"type {before['type']} -> {now['type']}")
    if abs(now["missing"] - before["missing"]) >= 0.005:
        words.append(f"missing {before['missing']:.1%} -> {now['missing']:.1%}")
    mean, base_mean, spread = now.get("mean"), before.get("mean"), before.get("std_dev")
    if isinstance(mean, int | float) and isinstance(base_mean, int | float):
        shift = (mean - base_mean) / spread if spread else 0.0
        if abs(shift) >= 0.1:
            words.append(f"mean {_fmt(base_mean)} -> {_fmt(mean)} ({shift:+.2f} sd)")
    if now.get("distinct") is not None and before.get("distinct") not in (None, now["distinct"]):
        words.append(f"distinct {before['distinct']} -> {now['distinct']}")
    return "; ".join(words) or "no notable change"


def violation_sentence(violation: Mapping[str, Any]) -> str:
    """A Model Monitor violation as a sentence a reviewer reads."""
    kinds = {
        "data_type_check": "has values of another type than in the baseline",
        "completeness_check": "has more missing values than the baseline allows",
        "baseline_drift_check": "drifted from the baseline distribution",
        "missing_column_check": "is missing from the data",
        "extra_column_check": "is not in the baseline",
        "categorical_values_check": "has categories the baseline did not have",
        "non_negative_check": "has negative values, the baseline had none",
    }
    kind = str(violation.get("constraint_check_type", "?"))
    feature = violation.get("feature_name", "?")
    said = kinds.get(kind, f"failed {kind}")
    detail = str(violation.get("description") or "").strip()
    return f"Feature {feature} {said}" + (f": {detail}" if detail else ".")


# --------------------------------------------------------------------------- drawing


MARGINS = (0.95, 0.3, 0.6, 0.35)
"""A chart's margins in inches (left, right, bottom, top): fixed, so each figure is drawn once,
not laid out by a measuring draw first (``tight_layout``). They hold tick labels of up to seven
characters beside the axis label (longer numbers get matplotlib's offset notation), the x tick
labels and axis label below, the title above."""
SUMMARY_CHARTS = {
    BINARY: ("roc", "pr", "calibration"),
    REGRESSION: ("predicted_actual", "residuals", "deciles"),
}
"""The page's charts the summary image shows, in its first three cells of two by two."""
SUMMARY_PAD = 12
"""Pixels around and between the summary image's cells."""
SUMMARY_TITLE = 44
"""Pixels above the summary image's cells, for its title."""
LABEL_PAD = 0.25
"""Inches beside the widest feature name on the importance chart (tick, padding, margin)."""


def _new_figure(
    size: tuple[float, float], margins: tuple[float, float, float, float] = MARGINS
) -> Any:
    """A figure on its own Agg canvas: no pyplot (no global figure registry, no backend
    selection, no GUI modules), nothing kept once its PNG is written. Its axes go within
    ``margins`` (inches)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=size, dpi=DPI)
    FigureCanvasAgg(figure)
    (width, height), (left, right, bottom, top) = size, margins
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height
    )
    return figure


def _png(figure: Any) -> bytes:
    """The figure drawn once, as PNG (zlib level 3: the 100k run's eight images 3% larger than
    at PIL's default level 6, encoded in 43-52 ms instead of 59-64 ms)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def _axes(
    title: str, size: tuple[float, float] = (4.6, 3.6), margins: tuple = MARGINS
) -> tuple[Any, Any]:
    figure = _new_figure(size, margins)
    ax = figure.subplots()
    # y given: the title sits at the axes' top as matplotlib would put it, without the
    # y-axis measurement by which it moves a title clear of top tick labels (there are none).
    ax.set_title(title, fontsize=10, y=1.0)
    ax.grid(True, alpha=0.3)
    return figure, ax


def _draw_roc(ax: Any, data: Mapping[str, Any], point: Mapping[str, float], auc: Any) -> None:
    ax.plot(data["fpr"], data["tpr"], label=f"ROC (AUC {_fmt(auc)})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.scatter([point["fpr"]], [point["tpr"]], color="red", zorder=3, label="operating point")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)


def _draw_pr(ax: Any, data: Mapping[str, Any], point: Mapping[str, float], base: float) -> None:
    ax.plot(data["recall"], data["precision"], label="precision-recall")
    ax.axhline(base, linestyle=":", color="grey", label=f"base rate {base:.2f}")
    ax.scatter([point["tpr"]], [point["precision"]], color="red", zorder=3, label="operating point")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)


def _draw_confusion(ax: Any, counts: Mapping[str, int], threshold: float) -> None:
    matrix = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    ax.imshow(matrix, cmap="Blues")
    ax.grid(False)
    total = max(1, int(matrix.sum()))
    for (i, j), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        ax.text(j, i, f"{value}\n{value / total:.1%}", ha="center", va="center", color=colour)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["predicted 0", "predicted 1"])
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["actual 0", "actual 1"])
    ax.set_title(f"Confusion at threshold {threshold:g}", fontsize=10)


def _draw_calibration(ax: Any, data: Mapping[str, Any]) -> None:
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    ax.plot(data["mean_score"], data["observed"], marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate of class 1")
    ax.legend(loc="upper left", fontsize=8)


def _draw_histograms(ax: Any, data: Mapping[str, Any]) -> None:
    edges = data["edges"]
    ax.stairs(data["negative"], edges, label="actual 0", fill=True, alpha=0.5)
    ax.stairs(data["positive"], edges, label="actual 1", fill=True, alpha=0.5)
    ax.set_xlabel("predicted probability of class 1")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)


def _points(ax: Any, x: np.ndarray, y: np.ndarray) -> None:
    """A scatter of small dots, drawn as one line's markers: Agg stamps one cached marker per
    point, where ``ax.scatter`` draws a path per point (the same picture, several times faster)."""
    ax.plot(x, y, linestyle="none", marker="o", markersize=2, markeredgewidth=0, alpha=0.4)


def _draw_predicted_actual(ax: Any, labels: np.ndarray, scores: np.ndarray) -> None:
    pick = scatter_sample(len(labels))
    _points(ax, labels[pick], scores[pick])
    low = float(min(labels.min(), scores.min()))
    high = float(max(labels.max(), scores.max()))
    ax.plot([low, high], [low, high], linestyle=":", color="grey")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")


def _draw_residuals(ax: Any, labels: np.ndarray, scores: np.ndarray) -> None:
    pick = scatter_sample(len(labels))
    _points(ax, scores[pick], (labels - scores)[pick])
    ax.axhline(0, linestyle=":", color="grey")
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")


def _draw_residual_histogram(ax: Any, labels: np.ndarray, scores: np.ndarray) -> None:
    counts, edges = np.histogram(labels - scores, bins=HISTOGRAM_BINS)
    ax.stairs(counts, edges, fill=True, alpha=0.6)
    ax.set_xlabel("residual (actual - predicted)")
    ax.set_ylabel("rows")


def _draw_deciles(ax: Any, table: pd.DataFrame) -> None:
    ax.bar(table["decile"], table["mae"], label="MAE")
    ax.plot(table["decile"], table["rmse"], color="red", marker="o", label="RMSE")
    ax.set_xlabel("decile of the prediction")
    ax.set_ylabel("error")
    ax.legend(fontsize=8)


def _draw_importance(ax: Any, top: list) -> None:
    names = [name for name, _ in reversed(top)]
    ax.barh(names, [gain for _, gain in reversed(top)])
    ax.set_xlabel("gain")
    ax.tick_params(axis="y", labelsize=8)


def _draw_curve(ax: Any, curve: TrainingCurve) -> None:
    rounds = np.arange(len(curve.values))
    keep = downsample(len(rounds), MAX_CURVE_POINTS)
    ax.plot(rounds[keep], np.asarray(curve.values)[keep], label=f"validation {curve.metric}")
    ax.axvline(curve.best_iteration, color="red", linestyle="--", label="kept (early stopping)")
    ax.set_xlabel("boosting round")
    ax.set_ylabel(curve.metric)
    ax.legend(fontsize=8)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    png: bytes
    caption: str = ""
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The drawn image, RGBA rows from the top (what the summary image shows again)."""


def _chart(key: str, title: str, figure: Any, caption: str = "") -> Figure:
    """The chart's PNG and, from the same draw, its pixels."""
    png = _png(figure)
    return Figure(key, title, png, caption, np.asarray(figure.canvas.buffer_rgba()).copy())


def _figure(key: str, title: str, draw: Any, caption: str = "") -> Figure:
    figure, ax = _axes(title)
    draw(ax)
    return _chart(key, title, figure, caption)


@dataclass(frozen=True)
class ChartData:
    """What the charts and the tables beside them show, computed once for the page."""

    counts: dict[str, int] | None = None
    point: dict[str, float] | None = None
    roc: dict | None = None
    pr: dict | None = None
    calibration: dict | None = None
    histograms: dict | None = None
    deciles: pd.DataFrame | None = None

    @classmethod
    def of(cls, inputs: ReportInputs) -> ChartData:
        labels, scores = inputs.labels, inputs.scores
        if inputs.problem_type != BINARY:
            return cls(deciles=error_by_decile(labels, scores))
        counts = confusion(labels, scores, inputs.probability_threshold)
        return cls(
            counts=counts,
            point=operating_point(counts),
            roc=roc_points(labels, scores),
            pr=pr_points(labels, scores),
            calibration=calibration(labels, scores),
            histograms=class_histograms(labels, scores),
        )


def _importance_margins(names: Sequence[str]) -> tuple[float, float, float, float]:
    """:data:`MARGINS` with room on the left for the widest of ``names`` (8 pt tick labels)."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer, font = RendererAgg(1, 1, DPI), FontProperties(size=8)
    widest = max(
        (renderer.get_text_width_height_descent(n, font, ismath=False)[0] for n in names),
        default=0.0,
    )
    return (widest / DPI + LABEL_PAD, *MARGINS[1:])


def figures(inputs: ReportInputs, data: ChartData | None = None) -> list[Figure]:
    """Every chart of the page, as PNG bytes."""
    labels, scores = inputs.labels, inputs.scores
    data = ChartData.of(inputs) if data is None else data
    found: list[Figure] = []
    if inputs.problem_type == BINARY:
        counts, point, roc, pr = data.counts, data.point, data.roc, data.pr
        cal, hist = data.calibration, data.histograms
        assert counts is not None and point is not None and roc is not None and pr is not None
        assert cal is not None and hist is not None
        auc = inputs.metric("auc")
        threshold = f"threshold {inputs.probability_threshold:g}"
        found += [
            _figure("roc", "ROC curve", lambda ax: _draw_roc(ax, roc, point, auc and auc.value),
                    f"Red: the operating point at {threshold}."),
            _figure("pr", "Precision-recall curve",
                    lambda ax: _draw_pr(ax, pr, point, float(np.mean(labels))),
                    f"Red: the operating point at {threshold}."),
        ]  # fmt: skip
        figure, ax = _axes("Confusion")
        _draw_confusion(ax, counts, inputs.probability_threshold)
        found.append(_chart("confusion", "Confusion matrix", figure, threshold))
        found += [
            _figure("calibration", "Calibration (reliability)",
                    lambda ax: _draw_calibration(ax, cal),
                    "Points on the diagonal: predicted probabilities match observed rates."),
            _figure("scores", "Score distribution per class",
                    lambda ax: _draw_histograms(ax, hist)),
        ]  # fmt: skip
    else:
        deciles = data.deciles
        found += [
            _figure("predicted_actual", "Predicted vs actual",
                    lambda ax: _draw_predicted_actual(ax, labels, scores)),
            _figure("residuals", "Residuals vs predicted",
                    lambda ax: _draw_residuals(ax, labels, scores)),
            _figure("residual_histogram", "Residual distribution",
                    lambda ax: _draw_residual_histogram(ax, labels, scores)),
            _figure("deciles", "Error by decile of the prediction",
                    lambda ax: _draw_deciles(ax, deciles)),
        ]  # fmt: skip
    if inputs.importance:
        top = top_importance(inputs.importance)
        figure, ax = _axes(
            "Feature importance (gain)", (4.6, max(2.5, 0.28 * len(top) + 1)),
            _importance_margins([name for name, _ in top]),
        )  # fmt: skip
        _draw_importance(ax, top)
        found.append(_chart("importance", "Feature importance (gain)", figure))
    if inputs.training_curve is not None and inputs.training_curve.values:
        curve = inputs.training_curve
        found.append(
            _figure("training", "Training curve", lambda ax: _draw_curve(ax, curve),
                    f"Early stopping kept round {curve.best_iteration}.")
        )  # fmt: skip
    return found


def gate_verdict(inputs: ReportInputs) -> tuple[bool, str] | None:
    """Whether the gate passes on evaluation.json's value, and the sentence that says so."""
    gate = inputs.gate
    if gate is None:
        return None
    measured = inputs.metric(gate.metric)
    value = measured.value if measured else None
    passed = gate.passed(value)
    symbol = COMPARISONS.get(gate.comparison, gate.comparison)
    if passed:
        return True, (
            f"PASS: {gate.metric} = {_fmt(value)} {symbol} {_fmt(gate.threshold)}; the model "
            "goes on to registration and review."
        )
    return False, (
        f"FAIL: {gate.metric} = {_fmt(value)}, but the gate requires {gate.metric} {symbol} "
        f"{_fmt(gate.threshold)}. The pipeline stops before registration; nothing is registered."
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


def _img(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    klass = f' class="{css}"' if css else ""
    table = f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:12px;color:#1b1b1b;line-height:1.4}
h1{font-size:1.5em;margin:.3em 0}h2{font-size:1.2em;border-bottom:1px solid #ddd;margin-top:1.4em}
.verdict{padding:10px 12px;border-radius:6px;font-weight:600}
.pass{background:#e6f4ea;border:1px solid #34a853}.fail{background:#fce8e6;border:1px solid #d93025}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
figure{margin:0;break-inside:avoid;page-break-inside:avoid}
figure img{width:100%;height:auto;display:block}figcaption{font-size:.85em;color:#555}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;white-space:nowrap}
th{background:#f4f4f4}ul{padding-left:1.2em}
.muted{color:#666;font-size:.9em}
@media print{body{max-width:none;padding:0}.grid{display:block}
figure{width:48%;display:inline-block;vertical-align:top}.scroll{overflow:visible}}
"""


def render_html(
    inputs: ReportInputs, data: ChartData | None = None, charts: list[Figure] | None = None
) -> str:
    """The self-contained page (every image inline, no script, no external reference)."""
    data = ChartData.of(inputs) if data is None else data
    charts = figures(inputs, data) if charts is None else charts
    by_key = {c.key: c for c in charts}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(inputs.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(inputs.title)}</h1>",
        f'<p class="muted">{html.escape(inputs.problem_type)} model, {inputs.rows} test rows.</p>',
    ]
    verdict = gate_verdict(inputs)
    parts.append('<section id="gate"><h2>Gate</h2>')
    if verdict is None:
        parts.append("<p>No gate was given to this evaluation.</p>")
    else:
        passed, sentence = verdict
        gate = inputs.gate
        assert gate is not None
        parts.append(
            f'<p class="verdict {"pass" if passed else "fail"}">{html.escape(sentence)}</p>'
        )
        measured = inputs.metric(gate.metric)
        parts.append(
            _table(
                ["metric", "value", "comparison", "threshold", "result"],
                [[gate.metric, measured.value if measured else None,
                  COMPARISONS.get(gate.comparison, gate.comparison), gate.threshold,
                  "pass" if passed else "fail"]],
            )
        )  # fmt: skip
    parts.append("</section>")
    parts.append('<section id="metrics"><h2>Metrics</h2>')
    rows = []
    for m in inputs.metrics:
        low = high = None
        if m.value is not None and m.standard_deviation is not None:
            low, high = m.value - 1.96 * m.standard_deviation, m.value + 1.96 * m.standard_deviation
        rows.append([m.name, m.value, m.standard_deviation, low, high])
    parts.append(_table(["metric", "value", "bootstrap sd", "95% low", "95% high"], rows))
    parts.append(
        '<p class="muted">Intervals: value ± 1.96 bootstrap standard deviations over test rows.'
        + (
            f" Binary metrics other than auc and log_loss use the probability threshold "
            f"{inputs.probability_threshold:g}."
            if inputs.problem_type == BINARY
            else ""
        )
        + "</p></section>"
    )
    performance = [k for k in by_key if k not in ("importance", "training")]
    parts.append('<section id="performance"><h2>Performance</h2><div class="grid">')
    for key in performance:
        parts.append(_figure_html(by_key[key]))
    parts.append("</div>")
    if data.deciles is not None:
        table = data.deciles
        parts.append(
            _table(
                ["decile", "rows", "mean actual", "mean predicted", "MAE", "RMSE"],
                table[["decile", "rows", "mean_actual", "mean_predicted", "mae", "rmse"]]
                .astype(object)
                .to_numpy()
                .tolist(),
            )
        )
    elif (counts := data.counts) is not None:
        parts.append(
            _table(
                ["", "predicted 0", "predicted 1"],
                [
                    ["actual 0", counts["tn"], counts["fp"]],
                    ["actual 1", counts["fn"], counts["tp"]],
                ],
            )
        )
    parts.append("</section>")
    parts.append(_slices_html(inputs))
    parts.append('<section id="importance"><h2>Feature importance</h2>')
    if "importance" in by_key:
        parts.append(_figure_html(by_key["importance"]))
    else:
        parts.append("<p>The booster reports no feature importance (no split was made).</p>")
    parts.append("</section>")
    parts.append('<section id="training"><h2>Training curve</h2>')
    if "training" in by_key:
        parts.append(_figure_html(by_key["training"]))
    else:
        parts.append("<p>The model archive holds no training history.</p>")
    parts.append("</section>")
    parts.append(_data_quality_html(inputs.data_quality))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _figure_html(figure: Figure) -> str:
    caption = f"<figcaption>{html.escape(figure.caption)}</figcaption>" if figure.caption else ""
    return f'<figure id="fig-{figure.key}">{_img(figure.png, figure.title)}{caption}</figure>'


def _slices_html(inputs: ReportInputs) -> str:
    parts = ['<section id="slices"><h2>Where the model is worst</h2>']
    if inputs.features is None or not inputs.categorical_columns:
        parts.append("<p>The model has no categorical features to slice by.</p></section>")
        return "".join(parts)
    table = worst_slices(
        inputs.problem_type, inputs.features, inputs.categorical_columns, inputs.labels,
        inputs.scores, inputs.probability_threshold,
    )  # fmt: skip
    overall = overall_slice_error(inputs.problem_type, inputs.labels, inputs.scores)
    measure = "log loss" if inputs.problem_type == BINARY else "RMSE"
    parts.append(
        f"<p>Categories of each categorical feature (at least {SLICE_MIN_ROWS} test rows), "
        f"highest {measure} first; the whole test split: {_fmt(overall)}.</p>"
    )
    if table.empty:
        parts.append(f"<p>No category has {SLICE_MIN_ROWS} test rows or more.</p>")
    else:
        parts.append(_table(list(table.columns), table.astype(object).to_numpy().tolist()))
    parts.append("</section>")
    return "".join(parts)


def _data_quality_html(quality: DataQuality | None) -> str:
    parts = ['<section id="data-quality"><h2>Data quality</h2>']
    if quality is None:
        parts.append("<p>No data-quality statistics were given to this evaluation.</p></section>")
        return "".join(parts)
    if quality.violations is None:
        parts.append(
            "<p>Violations: the drift check's report is not an input of the evaluation; "
            "`approve --dry-run` lists them. With data_quality.fail_on_violation on, a run "
            "with violations stops before it is evaluated.</p>"
        )
    elif not quality.violations:
        parts.append("<p>Violations: none; the data passed every constraint of the baseline.</p>")
    else:
        items = "".join(
            f"<li>{html.escape(violation_sentence(v))}</li>" for v in quality.violations
        )
        parts.append(f"<p>Violations ({len(quality.violations)}):</p><ul>{items}</ul>")
    if quality.baseline is None:
        parts.append("<p>No baseline: these statistics start one.</p>")
    rows = []
    for row in data_quality_rows(quality):
        now, before = row["now"] or {}, row["before"] or {}
        missing = [f"{s['missing']:.1%}" if "missing" in s else None for s in (now, before)]
        rows.append(
            [row["feature"], now.get("type"), *missing,
             now.get("mean", now.get("top")), before.get("mean", before.get("top")),
             row["change"]]
        )  # fmt: skip
    parts.append(
        _table(
            ["feature", "type", "missing now", "missing baseline", "mean / top now",
             "mean / top baseline", "change"],
            rows,
        )
    )  # fmt: skip
    parts.append("</section>")
    return "".join(parts)


def render_summary_png(inputs: ReportInputs, charts: list[Figure] | None = None) -> bytes:
    """One image for places that cannot show HTML: the page's key charts (:data:`SUMMARY_CHARTS`,
    their pixels as drawn for the page), the gate and the metrics."""
    charts = figures(inputs) if charts is None else charts
    by_key = {c.key: c.pixels for c in charts}
    panels = [
        p for p in (by_key[key] for key in SUMMARY_CHARTS[inputs.problem_type]) if p is not None
    ]
    assert len(panels) == len(SUMMARY_CHARTS[inputs.problem_type])
    height, width = max(p.shape[0] for p in panels), max(p.shape[1] for p in panels)
    pad = SUMMARY_PAD
    size = (2 * width + 3 * pad, SUMMARY_TITLE + 2 * height + 2 * pad)
    figure = _new_figure((size[0] / DPI, size[1] / DPI))
    for index, pixels in enumerate(panels):  # cells left to right, top to bottom
        row, column = divmod(index, 2)
        left, top = pad + column * (width + pad), SUMMARY_TITLE + row * (height + pad)
        figure.figimage(pixels, xo=left, yo=size[1] - top - pixels.shape[0], origin="upper")
    lines = [f"{m.name}: {_fmt(m.value)} ± {_fmt(m.standard_deviation)}" for m in inputs.metrics]
    verdict = gate_verdict(inputs)
    if verdict is not None:
        lines = [verdict[1].split(";")[0].split(". ")[0], "", *lines]
    # In the fourth cell, level with the axes of the chart beside it.
    left, top = 2 * pad + width + MARGINS[0] * DPI, SUMMARY_TITLE + height + pad + MARGINS[3] * DPI
    figure.text(
        left / size[0], 1 - top / size[1], "\n".join(lines), va="top", family="monospace",
        fontsize=9, wrap=True,
    )  # fmt: skip
    figure.suptitle(f"{inputs.title}: {inputs.problem_type}, {inputs.rows} test rows")
    return _png(figure)
