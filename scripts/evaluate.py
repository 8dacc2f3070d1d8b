"""Evaluation job: score the test split with the serving code and write evaluation.json.

Runs as a processing job on the SageMaker XGBoost image, its code directory holding this
script, the serving code ``inference.py`` and the shared job package ``tabular``. It extracts
the training job's ``model.tar.gz`` (refusing absolute paths, ``..`` and links), imports
``inference.py`` from ``--serving-code-dir`` (default: this script's directory) and scores
``test.csv`` with its ``model_fn`` and ``predict_frame``, so the numbers describe the
endpoint's own predictions; the test split is read with the rules every job uses. Metrics
are computed with scikit-learn and written in the SageMaker model-quality layout::

    {"binary_classification_metrics": {"auc": {"value": 0.91, "standard_deviation": 0.01},
                                       ...},
     "evaluation_rows": 1234}

The standard deviations come from a seeded bootstrap over test rows, vectorised over the
rounds rather than one scikit-learn call per round: a round is how often each row was drawn,
and for a binary model how often each (distinct score, class) pair was, from which every metric
follows in one pass over the distinct scores.
The report's layout and its metrics are named in :mod:`tabular.names` (one list of metrics,
shared with the config's gate and the builders' JsonGet paths).

Beside it Evaluate writes the reviewer's report (:mod:`evaluation.report`, shipped with this
job only): ``report.html``, one self-contained page, and ``report.png``, its summary, drawn
from these same arrays and this same evaluation.json (the gate's numbers), the gate
(``--gate-*``, the condition step's metric, comparison and MetricThreshold), the booster's gain
per feature, the training curve the model archive holds, and the DataQuality step's statistics
beside its drift baseline (``--data-quality-dir``, ``--drift-baseline-dir``). The model package
points at both files.

It also writes ``smoke_sample.json``: the first ``--smoke-rows`` test records as
the request body the endpoint takes (header-less canonical CSV, feature columns in schema
order) and the predictions the serving code gave for them. The model package points at it
(CustomerMetadataProperties ``SmokeSampleS3Uri``); ``python -m pipelines deploy`` sends those
records to the live endpoint and compares its answers with these predictions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from evaluation.report import (
    ChartData,
    DataQuality,
    Gate,
    MetricValue,
    ReportInputs,
    TrainingCurve,
    figures,
    render_html,
    render_summary_png,
)
from tabular.contract import CSV, MODEL_ARCHIVE, STATISTICS_FILE, VIOLATIONS_FILE
from tabular.csvio import write_csv
from tabular.errors import JobError
from tabular.features import matrix_columns
from tabular.files import UnsafeMember, extract_tar, write_atomic
from tabular.job import PROCESSING, JobParser, find_input, run_job
from tabular.names import (
    BINARY,
    DEFAULT_BOOTSTRAP_ROUNDS,
    DEFAULT_PROBABILITY_THRESHOLD,
    DEFAULT_SEED,
    DEFAULT_SMOKE_ROWS,
    EVALUATION_FILE,
    EVALUATION_OUTPUT_DIR,
    GATE_COMPARISONS,
    METRICS,
    MODEL_INPUT_DIR,
    PROBLEM_TYPES,
    REPORT_HTML,
    REPORT_KEYS,
    REPORT_PNG,
    ROWS_KEY,
    SERVING_SCRIPT,
    SMOKE_CONTENT_TYPE_KEY,
    SMOKE_PREDICTIONS_KEY,
    SMOKE_RECORDS_KEY,
    SMOKE_SAMPLE_FILE,
    STANDARD_DEVIATION_KEY,
    TEST,
    TEST_FILE,
    TEST_INPUT_DIR,
    TRAINING_HISTORY_FILE,
    VALIDATION,
    VALUE_KEY,
)
from tabular.schema import Schema, read_split

SERVING_MODULE_NAME = "serving_inference"
SERVING_FUNCTIONS = ("model_fn", "predict_frame")
BOOTSTRAP_CHUNK_CELLS = 4_000_000
TEST_MISSING = "Pass the preprocessing step's test output as the test input."
TEST_MISMATCH = "Evaluate the model with the test split of the same preprocessing run."


class EvaluationError(JobError):
    """A problem with the model archive, serving code or test data; names the fix."""


# --------------------------------------------------------------------------- inputs


def find_model_archive(model_dir: Path) -> Path:
    """Return ``model_dir/model.tar.gz`` (or the directory's only ``*.tar.gz``)."""
    return find_input(
        model_dir, MODEL_ARCHIVE, "Pass the training step's model artifacts as the model input.",
        recursive=True,
    )  # fmt: skip


def safe_extract(archive: Path, destination: Path) -> list[str]:
    """Extract regular files and directories; refuse absolute paths, '..' and links."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            return extract_tar(tar, destination)
    except UnsafeMember as exc:
        raise EvaluationError(
            f"{archive.name}: {exc}. Rebuild the archive with relative paths and regular files "
            "only."
        ) from None
    except tarfile.TarError as exc:
        raise EvaluationError(
            f"{archive.name}: not a readable tar archive ({exc}). Use the model.tar.gz "
            "written by the training job."
        ) from None


def load_serving_module(code_dir: Path) -> ModuleType:
    """Import ``inference.py`` from ``code_dir`` (the serving code shipped with the model).

    ``code_dir`` goes first on ``sys.path`` while it imports, as the serving container puts its
    code directory there, so the serving code's own ``tabular`` is the one it uses.
    """
    path = code_dir / SERVING_SCRIPT
    if not path.is_file():
        raise EvaluationError(
            f"{path}: not found. Pass the directory holding the serving code "
            f"({SERVING_SCRIPT}) as the serving code input."
        )
    spec = importlib.util.spec_from_file_location(SERVING_MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise EvaluationError(f"{path}: cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[SERVING_MODULE_NAME] = module  # dataclasses resolve their module here
    sys.path.insert(0, str(code_dir))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(code_dir))
    for name in SERVING_FUNCTIONS:
        if not callable(getattr(module, name, None)):
            raise EvaluationError(
                f"{path}: defines no function {name}(). Ship the project's inference.py."
            )
    return module


def check_labels(problem_type: str, labels: np.ndarray, source: str) -> None:
    """Binary labels must be 0/1 with both classes present (AUC needs both)."""
    if problem_type != BINARY:
        return
    values = set(np.unique(labels).tolist())
    if not values <= {0.0, 1.0}:
        raise EvaluationError(
            f"{source}: binary target values {sorted(values)} are not 0/1. Use the test "
            "split written by preprocessing."
        )
    if len(values) < 2:
        raise EvaluationError(
            f"{source}: the test split holds only class {values.pop():g}; AUC needs both "
            "classes. Add rows of the other class or raise the test fraction."
        )


# --------------------------------------------------------------------------- metrics


def point_metrics(
    problem_type: str, labels: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """Compute the report's metrics with scikit-learn."""
    from sklearn import metrics as skm

    if problem_type == BINARY:
        predicted = (scores >= threshold).astype(int)
        # One call for what f1_score, precision_score and recall_score each compute whole
        # (their average "binary": class 1's numbers).
        (precision,), (recall,), (f1,), _ = skm.precision_recall_fscore_support(
            labels, predicted, labels=[1], average=None, zero_division=0
        )
        return {
            "auc": skm.roc_auc_score(labels, scores),
            "accuracy": skm.accuracy_score(labels, predicted),
            "f1": float(f1),
            "precision": float(precision),
            "recall": float(recall),
            "log_loss": skm.log_loss(labels, scores, labels=[0, 1]),
        }
    mse = skm.mean_squared_error(labels, scores)
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": skm.mean_absolute_error(labels, scores),
        "r2": skm.r2_score(labels, scores),
    }


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise division giving 0 where the denominator is 0 (sklearn zero_division=0)."""
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


@dataclass(frozen=True)
class ScoreGroups:
    """The test rows of a binary model grouped by distinct score.

    ``code[i]`` is ``g + label[i] * len(scores)`` for row i of score ``scores[g]`` (ascending),
    so counts over codes are, for each distinct score, its rows of class 0, then of class 1: all
    that every binary metric (AUC with its ties, the threshold's counts, log loss) needs of a
    sample.
    """

    scores: np.ndarray
    code: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray, scores: np.ndarray) -> ScoreGroups:
        distinct, group = np.unique(scores, return_inverse=True)
        return cls(distinct, group.reshape(-1) + labels.astype(np.int64) * len(distinct))


def class_metrics(
    groups: ScoreGroups, counts: np.ndarray, threshold: float = DEFAULT_PROBABILITY_THRESHOLD
) -> dict[str, np.ndarray]:
    """Every binary metric once per row of ``counts`` (rounds x codes of ``groups``).

    Row r of ``counts`` says how often each (score, class) pair is in sample r: the metrics
    equal scikit-learn's on that sample (AUC counts ties one half; a class absent gives NaN).
    """
    negative, positive = counts[:, : len(groups.scores)], counts[:, len(groups.scores) :]
    negatives = negative.sum(axis=1)
    positives = positive.sum(axis=1)
    total = negatives + positives
    below = np.cumsum(negative, axis=1)
    below -= negative
    # Twice the pairs ranked right (ties half): integers, exact, as the halves are.
    pairs = np.einsum("ij,ij->i", positive, 2 * below + negative) / 2
    cut = int(np.searchsorted(groups.scores, threshold, side="left"))  # predicted 1 from here
    tp = positive[:, cut:].sum(axis=1)
    fp = negative[:, cut:].sum(axis=1)
    fn = positives - tp
    eps = np.finfo("float64").eps
    clipped = np.clip(groups.scores, eps, 1 - eps)
    loss = counts @ -np.log(np.concatenate([1 - clipped, clipped]))  # each code's row loss
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = pairs / (positives * negatives)
    return {
        "auc": auc,
        "accuracy": 1 - (fp + fn) / total,
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
        "precision": _divide(tp, tp + fp),
        "recall": _divide(tp, tp + fn),
        "log_loss": loss / total,
    }


def regression_metrics(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Every regression metric once per row of ``weights`` (rounds x rows), vectorised.

    With integer weights (how often each row is in a sample) this equals scikit-learn on the
    sample.
    """
    total = weights.sum(axis=1)
    errors = scores - labels
    mse = (weights @ errors**2) / total
    mean = (weights @ labels) / total
    spread = (weights * (labels[None, :] - mean[:, None]) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1 - (mse * total) / spread
    return {
        "mse": mse,
        "rmse": np.sqrt(mse),
        "mae": (weights @ np.abs(errors)) / total,
        "r2": r2,
    }


def resample_counts(
    code: np.ndarray, size: int, rounds: int, rng: np.random.Generator
) -> np.ndarray:
    """``rounds`` x ``size`` counts: how often each code is drawn in each of ``rounds``
    resamples of the rows (as many draws as rows, with replacement; row i has code
    ``code[i]`` < ``size``), so each row of counts sums to the number of rows."""
    rows = len(code)
    keyed = code[rng.integers(0, rows, size=(rounds, rows))]
    keyed += (np.arange(rounds) * size)[:, None]
    return np.bincount(keyed.reshape(-1), minlength=rounds * size).reshape(rounds, size)


def bootstrap_standard_deviations(
    problem_type: str,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float = DEFAULT_PROBABILITY_THRESHOLD,
    rounds: int = DEFAULT_BOOTSTRAP_ROUNDS,
    seed: int = DEFAULT_SEED,
) -> dict[str, float]:
    """Standard deviation of each metric over ``rounds`` seeded bootstrap resamples.

    A binary sample is counted per (distinct score, class) pair (:class:`ScoreGroups`), from
    which every metric follows in one pass over the distinct scores; a regression sample as
    how often each row is drawn. Rounds go in chunks of at most
    :data:`BOOTSTRAP_CHUNK_CELLS` drawn rows.
    """
    rng = np.random.default_rng(seed)
    rows = len(labels)
    chunk = max(1, BOOTSTRAP_CHUNK_CELLS // max(1, rows))
    groups = ScoreGroups.of(labels, scores) if problem_type == BINARY else None
    code = groups.code if groups is not None else np.arange(rows)
    size = 2 * len(groups.scores) if groups is not None else rows
    collected: dict[str, list[np.ndarray]] = {m: [] for m in METRICS[problem_type]}
    for start in range(0, rounds, chunk):
        counts = resample_counts(code, size, min(chunk, rounds - start), rng)
        metrics = (
            class_metrics(groups, counts, threshold)
            if groups is not None
            else regression_metrics(labels, scores, counts.astype("float64"))
        )
        for name, values in metrics.items():
            collected[name].append(values)
    result = {}
    for name, parts in collected.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        result[name] = float(np.std(values, ddof=1)) if values.size > 1 else float("nan")
    return result


def build_report(
    problem_type: str,
    values: dict[str, float],
    standard_deviations: dict[str, float],
    rows: int,
) -> dict[str, Any]:
    """Return evaluation.json content; non-finite numbers become null."""
    return {
        REPORT_KEYS[problem_type]: {
            name: {
                VALUE_KEY: _finite_or_none(values[name]),
                STANDARD_DEVIATION_KEY: _finite_or_none(standard_deviations[name]),
            }
            for name in METRICS[problem_type]
        },
        ROWS_KEY: rows,
    }


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def smoke_sample(
    features: pd.DataFrame, scores: np.ndarray, rows: int, content_type: str, scratch: Path
) -> dict[str, Any]:
    """The first `rows` test records as a request body, with the predictions made for them.

    The body is written by the same canonical CSV writer that wrote the splits (no header,
    feature columns in schema order), so the endpoint reads it as it reads any request.
    """
    head = features.iloc[:rows]
    body = scratch / "smoke-records.csv"
    write_csv(head, body, header=False)
    return {
        SMOKE_CONTENT_TYPE_KEY: content_type,
        SMOKE_RECORDS_KEY: body.read_text(encoding="utf-8"),
        SMOKE_PREDICTIONS_KEY: [float(v) for v in scores[:rows]],
    }


# --------------------------------------------------------------------------- job


def training_curve(model_dir: Path) -> TrainingCurve | None:
    """The training history the model archive holds (None for archives written without it)."""
    path = model_dir / TRAINING_HISTORY_FILE
    if not path.is_file():
        return None
    history = json.loads(path.read_text(encoding="utf-8"))
    return TrainingCurve(
        history["eval_metric"], tuple(history[VALIDATION]), int(history["best_iteration"])
    )


def gain_by_feature(model: Any) -> dict[str, float]:
    """The booster's total gain per matrix column, named as the transformer names them."""
    rules = model.rules
    names = matrix_columns(model.transformer, rules.numeric_columns, rules.categorical_columns)
    gains = model.booster.get_score(importance_type="total_gain")

    def name(key: str) -> str:
        index = key[1:]
        if key.startswith("f") and index.isdigit() and int(index) < len(names):
            return names[int(index)]
        return key

    return {name(key): float(value) for key, value in gains.items()}


def read_statistics(folder: Path | None, what: str) -> dict[str, Any] | None:
    """Model Monitor's statistics.json in ``folder`` (None when no folder was given)."""
    if folder is None:
        return None
    path = find_input(folder, STATISTICS_FILE, f"Pass the DataQuality step's {what} statistics.")
    return _read_document(path)


def read_violations(folder: Path | None) -> list[dict[str, Any]] | None:
    """The drift check's violations when its report was passed beside the statistics."""
    path = folder / VIOLATIONS_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    return list(_read_document(path).get("violations") or [])


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(
            f"{path}: not JSON ({exc}). Pass the files the DataQuality step wrote."
        ) from None
    if not isinstance(document, dict):
        raise EvaluationError(f"{path}: not a JSON object. Pass the DataQuality step's files.")
    return document


def data_quality(statistics_dir: Path | None, baseline_dir: Path | None) -> DataQuality | None:
    """This run's statistics beside the drift baseline (none when they are the same)."""
    statistics = read_statistics(statistics_dir, "calculated")
    if statistics is None:
        return None
    baseline = read_statistics(baseline_dir, "drift baseline")
    return DataQuality(
        statistics,
        None if baseline == statistics else baseline,  # a first run's baseline is its own
        read_violations(statistics_dir),
    )


def report_inputs(
    problem_type: str,
    report: dict[str, Any],
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    features: pd.DataFrame,
    model: Any,
    curve: TrainingCurve | None,
    gate: Gate | None,
    quality: DataQuality | None,
) -> ReportInputs:
    """What the page shows: evaluation.json's own numbers, the arrays behind them, the model."""
    metrics = tuple(
        MetricValue(name, entry[VALUE_KEY], entry[STANDARD_DEVIATION_KEY])
        for name, entry in report[REPORT_KEYS[problem_type]].items()
    )
    return ReportInputs(
        problem_type=problem_type,
        metrics=metrics,
        rows=int(report[ROWS_KEY]),
        labels=labels,
        scores=scores,
        probability_threshold=threshold,
        gate=gate,
        features=features,
        categorical_columns=tuple(model.rules.categorical_columns),
        importance=gain_by_feature(model),
        training_curve=curve,
        data_quality=quality,
    )


@dataclass(frozen=True)
class Evaluation:
    """What Evaluate writes: the report and the smoke sample."""

    report: dict[str, Any]
    smoke_sample: dict[str, Any]
    page: ReportInputs


def evaluate(
    model_dir: Path,
    test_dir: Path,
    serving_code_dir: Path,
    problem_type: str,
    threshold: float = DEFAULT_PROBABILITY_THRESHOLD,
    bootstrap_rounds: int = DEFAULT_BOOTSTRAP_ROUNDS,
    seed: int = DEFAULT_SEED,
    smoke_rows: int = DEFAULT_SMOKE_ROWS,
    gate: Gate | None = None,
    data_quality_dir: Path | None = None,
    drift_baseline_dir: Path | None = None,
) -> Evaluation:
    """Extract the model, score the test split with the serving code: the metrics, the smoke
    sample and what the reviewer's page shows."""
    serving = load_serving_module(serving_code_dir)
    archive = find_model_archive(model_dir)
    with tempfile.TemporaryDirectory() as extracted:
        safe_extract(archive, Path(extracted))
        try:
            model = serving.model_fn(extracted)
        except FileNotFoundError as exc:
            raise EvaluationError(f"{archive.name}: {exc}") from None
        curve = training_curve(Path(extracted))
    schema = model.schema
    if schema.get("problem_type") != problem_type:
        raise EvaluationError(
            f"{archive.name}: the model was trained for {schema.get('problem_type')!r} "
            f"but --problem-type is {problem_type!r}. Use the same problem type in "
            "both steps."
        )
    features, labels = read_split(
        test_dir, TEST, Schema.from_json(schema), TEST_MISSING, TEST_MISMATCH
    )
    check_labels(problem_type, labels, TEST_FILE)
    scores = np.asarray(serving.predict_frame(model, features), dtype="float64")
    values = point_metrics(problem_type, labels, scores, threshold)
    deviations = bootstrap_standard_deviations(
        problem_type, labels, scores, threshold, bootstrap_rounds, seed
    )
    quality = data_quality(data_quality_dir, drift_baseline_dir)
    with tempfile.TemporaryDirectory() as scratch:
        sample = smoke_sample(features, scores, smoke_rows, CSV, Path(scratch))
    report = build_report(problem_type, values, deviations, len(labels))
    page = report_inputs(
        problem_type, report, labels, scores, threshold, features, model, curve, gate, quality
    )
    return Evaluation(report, sample, page)


def write_report(report: dict[str, Any], output_dir: Path) -> Path:
    """Write evaluation.json whole (a temporary file renamed into place)."""
    return write_atomic(output_dir / EVALUATION_FILE, json.dumps(report, indent=2) + "\n")


def write_page(page: ReportInputs, output_dir: Path) -> tuple[Path, Path]:
    """Write report.html and report.png, each whole (the summary shows charts of the page)."""
    data = ChartData.of(page)
    charts = figures(page, data)
    html = write_atomic(output_dir / REPORT_HTML, render_html(page, data, charts))
    return html, write_atomic(output_dir / REPORT_PNG, render_summary_png(page, charts))


def write_smoke_sample(sample: dict[str, Any], output_dir: Path) -> Path:
    """Write smoke_sample.json whole."""
    return write_atomic(output_dir / SMOKE_SAMPLE_FILE, json.dumps(sample, indent=2) + "\n")


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _rounds(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text} is below 2 (a deviation needs 2 rounds)")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of the job."""
    parser = JobParser(PROCESSING, __doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path(MODEL_INPUT_DIR))
    parser.add_argument("--test-dir", type=Path, default=Path(TEST_INPUT_DIR))
    parser.add_argument("--serving-code-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--output-dir", type=Path, default=Path(EVALUATION_OUTPUT_DIR))
    parser.add_argument("--problem-type", required=True, choices=PROBLEM_TYPES)
    parser.add_argument(
        "--threshold-probability", type=_probability, default=DEFAULT_PROBABILITY_THRESHOLD
    )
    parser.add_argument("--bootstrap-rounds", type=_rounds, default=DEFAULT_BOOTSTRAP_ROUNDS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--smoke-rows", type=_positive, default=DEFAULT_SMOKE_ROWS)
    parser.add_argument("--gate-metric", help="the metric the pipeline's condition compares")
    parser.add_argument("--gate-comparison", choices=GATE_COMPARISONS, default=GATE_COMPARISONS[0])
    parser.add_argument("--gate-threshold", type=float, help="the condition's MetricThreshold")
    parser.add_argument("--data-quality-dir", type=Path, help="the DataQuality step's statistics")
    parser.add_argument("--drift-baseline-dir", type=Path, help="the drift baseline's statistics")
    return parser


def gate_of(args: argparse.Namespace) -> Gate | None:
    """The condition the report judges by, when the job was told it (metric and threshold)."""
    if args.gate_metric is None and args.gate_threshold is None:
        return None
    if args.gate_metric not in METRICS[args.problem_type] or args.gate_threshold is None:
        raise EvaluationError(
            f"--gate-metric {args.gate_metric!r} --gate-threshold {args.gate_threshold!r}: "
            f"give both, the metric one of {list(METRICS[args.problem_type])}."
        )
    return Gate(args.gate_metric, args.gate_comparison, args.gate_threshold)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation job; return 0, or 2 after reporting a known error."""
    args = build_parser().parse_args(argv)

    def work() -> None:
        evaluation = evaluate(
            model_dir=args.model_dir,
            test_dir=args.test_dir,
            serving_code_dir=args.serving_code_dir,
            problem_type=args.problem_type,
            threshold=args.threshold_probability,
            bootstrap_rounds=args.bootstrap_rounds,
            seed=args.seed,
            smoke_rows=args.smoke_rows,
            gate=gate_of(args),
            data_quality_dir=args.data_quality_dir,
            drift_baseline_dir=args.drift_baseline_dir,
        )
        report = evaluation.report
        path = write_report(report, args.output_dir)
        print(f"wrote {path} ({report[ROWS_KEY]} rows)")
        sample = write_smoke_sample(evaluation.smoke_sample, args.output_dir)
        print(f"wrote {sample} ({len(evaluation.smoke_sample[SMOKE_PREDICTIONS_KEY])} rows)")
        for written in write_page(evaluation.page, args.output_dir):
            print(f"wrote {written}")
        for name, entry in report[REPORT_KEYS[args.problem_type]].items():
            print(f"{name}: {entry[VALUE_KEY]} (sd {entry[STANDARD_DEVIATION_KEY]})")

    return run_job(PROCESSING, work)


if __name__ == "__main__":
    sys.exit(main())
