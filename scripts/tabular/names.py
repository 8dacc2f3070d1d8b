"""The names the jobs share with the builders: one name per thing, in the package every job ships.

What a job reads and writes is named here once: the splits (Preprocess's outputs, Train's
channels), the files inside them, the container paths our jobs are given, the evaluation report
and its metrics, the objectives, and the defaults a job and the config share. The builders
(steps/), the config (config/) and the CLI import them from here; job code cannot import anything
outside scripts/, because it ships alone.

Only names the jobs need belong here: editing this module changes every job's code, and so the
cache key of every job step. Names of the graph alone (step names, parameters, the approval
callback) live in ``steps.names`` and ``config.parameters``. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .contract import CSV, DEFAULT_ACCEPT_ENV, PROCESSING_ROOT

# --------------------------------------------------------------------------- problems

BINARY = "binary"
REGRESSION = "regression"
PROBLEM_TYPES = (BINARY, REGRESSION)

OBJECTIVES = {
    BINARY: ("binary:logistic",),
    REGRESSION: (
        "reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:squaredlogerror",
        "reg:gamma", "reg:tweedie", "count:poisson",
    ),
}  # fmt: skip
"""XGBoost objectives that fit each problem type (the first is the one the pipeline trains)."""
DEFAULT_EVAL_METRIC = {BINARY: "auc", REGRESSION: "rmse"}
"""XGBoost's early-stopping metric per problem type."""

# --------------------------------------------------------------------------- job code

PREPROCESS_SCRIPT = "preprocess.py"
TRAIN_SCRIPT = "train.py"
EVALUATE_SCRIPT = "evaluate.py"
SERVING_SCRIPT = "inference.py"
"""The serving code: the model's SAGEMAKER_PROGRAM, and what Evaluate scores through."""
SERVING_ENV = {DEFAULT_ACCEPT_ENV: CSV}
"""The model's environment for the serving code: without it the inference toolkit turns a
missing or ``*/*`` Accept into application/json, which the serving code does not write."""
PACKAGE = "tabular"
"""This package, shipped beside every job's script."""

# --------------------------------------------------------------------------- splits

TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
SCORING = "scoring"
TRANSFORMER = "transformer"
BASELINE = "baseline"
"""Preprocess's outputs, named after what they hold; Train's channels take the same names.
``baseline`` is the train split again as CSV with a header row, the data-quality baseline's
input (Model Monitor's analyzer reads CSV)."""
PROFILE = "profile"
STATS = "stats"
"""Preprocess across hosts (``PreprocessInstanceCount``): the first pass's output (each host's
profile of its files: feature types, classes, rows per split) and the second pass's (each host's
train-split statistics), read by the passes after them (scripts/preprocess.py, ``--stage``)."""
PREPROCESS_OUTPUTS = (TRAIN, VALIDATION, TEST, SCORING, BASELINE, STATS)
"""The second pass's outputs (the Preprocess step); the transformer comes from the fit."""
STAGE_PROFILE, STAGE_SPLIT, STAGE_FIT = "profile", "split", "fit"
"""Preprocess's passes (``--stage``): the Profile, Preprocess and FitTransformer steps."""
PROFILE_FILE = "profile.pkl"
STATS_FILE = "stats.pkl"
SPLITS = (TRAIN, VALIDATION, TEST)
CSV_SUFFIX = ".csv"
PARQUET_SUFFIX = ".parquet"
"""The splits Train and Evaluate read are Parquet: typed columns, no text round trip."""
PARQUET = "application/x-parquet"
"""The content type of a Parquet channel (the SageMaker XGBoost container's name for it)."""
TRAIN_FILE = TRAIN + PARQUET_SUFFIX
VALIDATION_FILE = VALIDATION + PARQUET_SUFFIX
TEST_FILE = TEST + PARQUET_SUFFIX
SCORING_FILE = SCORING + CSV_SUFFIX
BASELINE_FILE = BASELINE + CSV_SUFFIX
SHARD_PART = "-part-"
"""The train split is written as ``train-part-00000.parquet``, ... (:func:`shard_file`)."""
SCHEMA_FILE = "schema.json"
TRANSFORMER_FILE = "transformer.joblib"
BOOSTER_FILE = "xgboost-model.json"
MODEL_FILES = (BOOSTER_FILE, TRANSFORMER_FILE, SCHEMA_FILE)
"""What a model archive holds: everything the serving code needs."""
TRAINING_HISTORY_FILE = "training_history.json"
"""Beside the model files: the validation metric per round and the round kept (the report's
training curve); the serving code does not read it."""

DEFAULT_TRAIN_SHARDS = 8
"""How many files Preprocess writes the train split as. Train's hosts take them ShardedByS3Key
(about 1/N of the files each), so a run can use at most this many training instances."""


def shard_file(split: str, index: int, suffix: str = PARQUET_SUFFIX, host: str = "") -> str:
    """The name of shard ``index`` of ``split`` (``train-part-00003.parquet``); written by
    ``host`` of several Preprocess hosts, ``train-part-algo-2-00003.parquet``: in name order
    host by host, so Train's hosts (ShardedByS3Key, every N-th file) each get about 1/N of
    every Preprocess host's shards."""
    tag = f"{host}-" if host else ""
    return f"{split}{SHARD_PART}{tag}{index:05d}{suffix}"


def split_file(split: str, host: str = "") -> str:
    """The file a Preprocess host writes split ``split`` to: ``validation.parquet``; one of
    several hosts, ``validation-part-algo-2.parquet`` (every host writes its own)."""
    return f"{split}{SHARD_PART}{host}{PARQUET_SUFFIX}" if host else split + PARQUET_SUFFIX


def host_file(name: str, host: str = "") -> str:
    """``name`` as one of several hosts writes it: ``baseline-algo-2.csv`` (no host: ``name``)."""
    if not host:
        return name
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}-{host}{dot}{suffix}" if dot else f"{name}-{host}"


# --------------------------------------------------------------------------- container paths

DATA_DIR = f"{PROCESSING_ROOT}/input/data"
SCORING_DIR = f"{PROCESSING_ROOT}/input/scoring"
SETTINGS_DIR = f"{PROCESSING_ROOT}/input/settings"
SETTINGS_FILE = "settings.json"
PROFILE_DIR = f"{PROCESSING_ROOT}/input/profile"
STATS_DIR = f"{PROCESSING_ROOT}/input/stats"
"""Where the passes of Preprocess across hosts get the passes before them (every host's)."""
PREPROCESS_OUTPUT_ROOT = f"{PROCESSING_ROOT}/output"
"""Preprocess writes output ``<name>`` to ``<root>/<name>``."""
MODEL_INPUT_DIR = f"{PROCESSING_ROOT}/model"
TEST_INPUT_DIR = f"{PROCESSING_ROOT}/test"
EVALUATION_OUTPUT = "evaluation"
EVALUATION_OUTPUT_DIR = f"{PROCESSING_ROOT}/{EVALUATION_OUTPUT}"

# --------------------------------------------------------------------------- evaluation report


@dataclass(frozen=True)
class Metric:
    """A metric of the evaluation report: its problem type, direction and range."""

    name: str
    problem_type: str
    higher_is_better: bool
    low: float
    high: float


INF = float("inf")
METRIC_TABLE = (
    Metric("auc", BINARY, True, 0.0, 1.0),
    Metric("accuracy", BINARY, True, 0.0, 1.0),
    Metric("f1", BINARY, True, 0.0, 1.0),
    Metric("precision", BINARY, True, 0.0, 1.0),
    Metric("recall", BINARY, True, 0.0, 1.0),
    Metric("log_loss", BINARY, False, 0.0, INF),
    Metric("mse", REGRESSION, False, 0.0, INF),
    Metric("rmse", REGRESSION, False, 0.0, INF),
    Metric("mae", REGRESSION, False, 0.0, INF),
    Metric("r2", REGRESSION, True, -INF, 1.0),
)
"""Every metric Evaluate writes, in report order: the one list of metrics."""
METRIC_BY_NAME = {metric.name: metric for metric in METRIC_TABLE}
METRICS = {
    problem: tuple(m.name for m in METRIC_TABLE if m.problem_type == problem)
    for problem in PROBLEM_TYPES
}
EVALUATION_FILE = "evaluation.json"
REPORT_KEYS = {BINARY: "binary_classification_metrics", REGRESSION: "regression_metrics"}
"""Each problem type's section of evaluation.json (SageMaker's model-quality layout)."""
VALUE_KEY = "value"
STANDARD_DEVIATION_KEY = "standard_deviation"
ROWS_KEY = "evaluation_rows"

REPORT_HTML = "report.html"
REPORT_PNG = "report.png"
"""Evaluate's report for a reviewer (evaluation.report), beside evaluation.json."""
REPORT_PACKAGE = "evaluation"
"""The package of the report's code, shipped with Evaluate only (scripts/evaluation)."""
REPORT_PROPERTY = "EvaluationReportS3Uri"
REPORT_IMAGE_PROPERTY = "EvaluationReportImageS3Uri"
"""The model package's CustomerMetadataProperties keys: report.html's and report.png's URIs."""
DATA_QUALITY_INPUT_DIR = f"{PROCESSING_ROOT}/data-quality"
DRIFT_BASELINE_INPUT_DIR = f"{PROCESSING_ROOT}/drift-baseline"
"""Evaluate's inputs from the DataQuality step: this run's statistics, the baseline's."""
SMOKE_SAMPLE_FILE = "smoke_sample.json"
"""Evaluate's second output file: test records and the predictions made for them."""
SMOKE_SAMPLE_PROPERTY = "SmokeSampleS3Uri"
"""The model package's CustomerMetadataProperties key naming the smoke sample's S3 URI."""
SMOKE_CONTENT_TYPE_KEY = "content_type"
SMOKE_RECORDS_KEY = "records"
SMOKE_PREDICTIONS_KEY = "predictions"
DEFAULT_SMOKE_ROWS = 20


def metric_json_path(problem_type: str, metric: str) -> str:
    """The JsonGet path of ``metric`` in evaluation.json, e.g. ``"...auc.value"``."""
    if metric not in METRICS.get(problem_type, ()):
        raise ValueError(
            f"metric {metric!r} is not reported for problem type {problem_type!r}; "
            f"choose one of {METRICS.get(problem_type, METRICS)}."
        )
    return f"{REPORT_KEYS[problem_type]}.{metric}.{VALUE_KEY}"


# --------------------------------------------------------------------------- shared defaults
# A job's default and the config's default are one value: configs/base.yaml states it for users.

DEFAULT_VALIDATION_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
DEFAULT_SEED = 42
DEFAULT_DATA_VERSION = "manual"
"""The DataVersion of a run started without one."""
DEFAULT_MAX_CATEGORIES = 1000
REFUSE = "refuse"
TOP_K = "top_k"
HIGH_CARDINALITY_POLICIES = (REFUSE, TOP_K)
DEFAULT_PROBABILITY_THRESHOLD = 0.5
"""Binary models: the class-1 cut-off behind accuracy, f1, precision and recall."""
DEFAULT_BOOTSTRAP_ROUNDS = 50
AT_LEAST = "gte"
AT_MOST = "lte"
GATE_COMPARISONS = (AT_LEAST, AT_MOST)
"""The condition's comparisons: the metric at least (gte) or at most (lte) the threshold."""
