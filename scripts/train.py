"""Training job: fit an XGBoost booster on the preprocessed splits.

Runs as the entry point of the SageMaker XGBoost framework container (script mode), with the
shared job package ``tabular`` beside it in the code directory. Hyperparameters arrive as
``--name value`` arguments; unknown ones are ignored. Reads ``train.csv`` and
``validation.csv`` (header row, target first) with the same rules every job uses and the
fitted ``transformer.joblib`` + ``schema.json`` written by preprocess.py, trains with
``xgb.train`` (``tree_method="hist"``, early stopping on the validation split) and
writes to the model dir: the booster truncated to its best iteration
(``xgboost-model.json``), the transformer and the schema, so that the model archive
is everything inference.py needs. Training metrics go to ``metrics.json`` in the
output data dir and to stdout as ``validation-<metric>: <value>`` lines, which
:func:`metric_definitions` turns into SageMaker metric definitions.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from tabular.errors import DataError
from tabular.failure import TRAINING, write_failure
from tabular.features import feature_matrix
from tabular.schema import SCHEMA_FILE, TRANSFORMER_FILE, Schema, read_labelled

ML_ROOT = "/opt/ml"
INPUT_DATA_DIR = f"{ML_ROOT}/input/data"
MODEL_DIR = f"{ML_ROOT}/model"
OUTPUT_DIR = f"{ML_ROOT}/output"
OUTPUT_DATA_DIR = f"{OUTPUT_DIR}/data"

TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
TRANSFORMER_CHANNEL = "transformer"
CHANNELS = (TRAIN_CHANNEL, VALIDATION_CHANNEL, TRANSFORMER_CHANNEL)

ENV_MODEL_DIR = "SM_MODEL_DIR"
ENV_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
ENV_CHANNEL_PREFIX = "SM_CHANNEL_"

TRAIN_FILE = "train.csv"
VALIDATION_FILE = "validation.csv"
MODEL_FILE = "xgboost-model.json"
METRICS_FILE = "metrics.json"
ERROR_EXIT_CODE = 2

TRAIN_EVAL_NAME = "train"
VALIDATION_EVAL_NAME = "validation"
METRIC_LINE_PREFIX = "{dataset}-{metric}: "
METRIC_LINE_FORMAT = METRIC_LINE_PREFIX + "{value:.6f}"
METRIC_VALUE_REGEX = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

OBJECTIVES = {
    "binary": ("binary:logistic",),
    "regression": (
        "reg:squarederror",
        "reg:absoluteerror",
        "reg:pseudohubererror",
        "reg:squaredlogerror",
        "reg:gamma",
        "reg:tweedie",
        "count:poisson",
    ),
}
DEFAULT_EVAL_METRIC = {"binary": "auc", "regression": "rmse"}

DEFAULT_NUM_ROUND = 200
DEFAULT_MAX_DEPTH = 6
DEFAULT_ETA = 0.1
DEFAULT_SUBSAMPLE = 1.0
DEFAULT_COLSAMPLE_BYTREE = 1.0
DEFAULT_MIN_CHILD_WEIGHT = 1.0
DEFAULT_REG_LAMBDA = 1.0
DEFAULT_EARLY_STOPPING_ROUNDS = 10
DEFAULT_SEED = 42
DEFAULT_NTHREAD = -1

logger = logging.getLogger(__name__)


class TrainingError(ValueError):
    """An input or configuration problem; the message names the file or setting and the fix."""


@dataclass(frozen=True)
class Hyperparameters:
    """The XGBoost settings of one training run."""

    objective: str
    eval_metric: str | None = None
    num_round: int = DEFAULT_NUM_ROUND
    max_depth: int = DEFAULT_MAX_DEPTH
    eta: float = DEFAULT_ETA
    subsample: float = DEFAULT_SUBSAMPLE
    colsample_bytree: float = DEFAULT_COLSAMPLE_BYTREE
    min_child_weight: float = DEFAULT_MIN_CHILD_WEIGHT
    reg_lambda: float = DEFAULT_REG_LAMBDA
    early_stopping_rounds: int = DEFAULT_EARLY_STOPPING_ROUNDS
    seed: int = DEFAULT_SEED
    nthread: int = DEFAULT_NTHREAD


@dataclass(frozen=True)
class TrainingResult:
    """A trained booster (truncated to its best iteration) and its scores."""

    booster: Any
    eval_metric: str
    best_iteration: int
    scores: dict[str, float]


def metric_definitions(eval_metric: str) -> list[dict[str, str]]:
    """Return SageMaker metric definitions matching the lines :func:`main` prints."""
    return [
        {
            "Name": f"{dataset}:{eval_metric}",
            "Regex": re.escape(METRIC_LINE_PREFIX.format(dataset=dataset, metric=eval_metric))
            + METRIC_VALUE_REGEX,
        }
        for dataset in (TRAIN_EVAL_NAME, VALIDATION_EVAL_NAME)
    ]


def channel_dir(channel: str) -> str:
    """Return the container's directory of ``channel`` ($SM_CHANNEL_<NAME> if set)."""
    return os.environ.get(f"{ENV_CHANNEL_PREFIX}{channel.upper()}", f"{INPUT_DATA_DIR}/{channel}")


def load_schema(transformer_dir: Path) -> dict[str, Any]:
    """Read schema.json from the transformer channel."""
    path = transformer_dir / SCHEMA_FILE
    if not path.is_file():
        raise TrainingError(
            f"{path}: not found. Connect the preprocessing step's transformer output "
            f"to the {TRANSFORMER_CHANNEL!r} channel."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_transformer(transformer_dir: Path) -> Any:
    """Load the fitted ColumnTransformer from the transformer channel."""
    import joblib

    path = transformer_dir / TRANSFORMER_FILE
    if not path.is_file():
        raise TrainingError(
            f"{path}: not found. Connect the preprocessing step's transformer output "
            f"to the {TRANSFORMER_CHANNEL!r} channel."
        )
    return joblib.load(path)


def find_split_file(channel: Path, file_name: str) -> Path:
    """Return ``channel/file_name``, or the channel's only CSV file."""
    path = channel / file_name
    if path.is_file():
        return path
    candidates = sorted(channel.glob("*.csv")) if channel.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    raise TrainingError(
        f"{path}: not found ({len(candidates)} other CSV file(s) in the channel). "
        "Connect the matching preprocessing output to this channel."
    )


def read_split(path: Path, schema: Schema) -> tuple[Any, np.ndarray]:
    """Read a split file: return its feature columns (as text) and the numeric target."""
    try:
        return read_labelled(
            path, schema, "Use the splits and transformer of one preprocessing run."
        )
    except DataError as exc:
        raise TrainingError(str(exc)) from None


def transform_features(transformer: Any, features: Any, schema: Schema) -> Any:
    """Type the text features and apply the fitted transformer (the model's matrix layout)."""
    from tabular.values import coerce_features

    try:
        typed = coerce_features(
            features, schema.numeric_columns, schema.categorical_columns, schema.dialect
        )
    except DataError as exc:
        raise TrainingError(f"{exc} Re-run preprocessing.") from None
    return feature_matrix(
        transformer, typed, schema.numeric_columns, schema.categorical_columns,
        schema.matrix_layout,
    )  # fmt: skip


def check_objective(objective: str, problem_type: str) -> None:
    """Raise TrainingError if ``objective`` does not fit the schema's problem type."""
    allowed = OBJECTIVES.get(problem_type)
    if allowed is None:
        raise TrainingError(
            f"{SCHEMA_FILE}: problem_type {problem_type!r} is not one of "
            f"{sorted(OBJECTIVES)}. Re-run preprocessing."
        )
    if objective not in allowed:
        raise TrainingError(
            f"hyperparameter objective={objective!r} does not fit the {problem_type} "
            f"problem in {SCHEMA_FILE}; use one of {list(allowed)}."
        )


def booster_params(hp: Hyperparameters, eval_metric: str) -> dict[str, Any]:
    """Return the ``xgb.train`` parameter dict (hist trees; all cores unless nthread > 0)."""
    params: dict[str, Any] = {
        "objective": hp.objective,
        "eval_metric": eval_metric,
        "tree_method": "hist",
        "max_depth": hp.max_depth,
        "eta": hp.eta,
        "subsample": hp.subsample,
        "colsample_bytree": hp.colsample_bytree,
        "min_child_weight": hp.min_child_weight,
        "lambda": hp.reg_lambda,
        "seed": hp.seed,
    }
    if hp.nthread > 0:
        params["nthread"] = hp.nthread
    return params


def train_booster(
    hp: Hyperparameters,
    problem_type: str,
    train: tuple[Any, np.ndarray],
    validation: tuple[Any, np.ndarray],
) -> TrainingResult:
    """Train with early stopping on ``validation``; keep only the best iteration's trees."""
    import xgboost as xgb

    check_objective(hp.objective, problem_type)
    eval_metric = hp.eval_metric or DEFAULT_EVAL_METRIC[problem_type]
    nthread = hp.nthread if hp.nthread > 0 else -1
    dtrain = xgb.DMatrix(train[0], label=train[1], nthread=nthread)
    dvalid = xgb.DMatrix(validation[0], label=validation[1], nthread=nthread)
    history: dict[str, dict[str, list[float]]] = {}
    try:
        booster = xgb.train(
            booster_params(hp, eval_metric),
            dtrain,
            num_boost_round=hp.num_round,
            # Early stopping needs the validation score only; the train score of the kept
            # trees is computed once below (per round it would double the training time).
            evals=[(dvalid, VALIDATION_EVAL_NAME)],
            early_stopping_rounds=hp.early_stopping_rounds or None,
            evals_result=history,
            verbose_eval=False,
        )
    except xgb.core.XGBoostError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TrainingError(
            f"XGBoost rejected the hyperparameters ({first_line}). Fix them in the training config."
        ) from exc
    if hp.early_stopping_rounds:
        best = int(booster.best_iteration)
        booster = booster[: best + 1]
    else:
        best = len(history[VALIDATION_EVAL_NAME][eval_metric]) - 1
    scores = {VALIDATION_EVAL_NAME: float(history[VALIDATION_EVAL_NAME][eval_metric][best])}
    scores[TRAIN_EVAL_NAME] = _final_score(booster.eval(dtrain, TRAIN_EVAL_NAME), eval_metric)
    return TrainingResult(booster, eval_metric, best, scores)


def _final_score(evaluation: str, eval_metric: str) -> float:
    """The value in xgboost's `[0]\ttrain-auc:0.91` evaluation line."""
    suffix = f"{TRAIN_EVAL_NAME}-{eval_metric}:"
    (field,) = [f for f in evaluation.split("\t") if f.startswith(suffix)]
    return float(field.removeprefix(suffix))


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temporary name beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def save_model(result: TrainingResult, transformer_dir: Path, model_dir: Path) -> None:
    """Write the booster, transformer.joblib and schema.json into ``model_dir``."""
    write_atomically(model_dir / MODEL_FILE, lambda path: result.booster.save_model(str(path)))
    for name in (TRANSFORMER_FILE, SCHEMA_FILE):
        source = transformer_dir / name
        write_atomically(model_dir / name, partial(shutil.copyfile, source))


def training_metrics(result: TrainingResult, hp: Hyperparameters) -> dict[str, Any]:
    """Return the metrics.json content."""
    return {
        "objective": hp.objective,
        "eval_metric": result.eval_metric,
        "best_iteration": result.best_iteration,
        "num_boosted_rounds": result.best_iteration + 1,
        "scores": result.scores,
    }


def metric_lines(result: TrainingResult) -> list[str]:
    """Return the ``<dataset>-<metric>: <value>`` lines matched by metric_definitions."""
    return [
        METRIC_LINE_FORMAT.format(dataset=name, metric=result.eval_metric, value=value)
        for name, value in result.scores.items()
    ]


def run(
    hp: Hyperparameters,
    train_dir: Path,
    validation_dir: Path,
    transformer_dir: Path,
    model_dir: Path,
    output_data_dir: Path,
) -> TrainingResult:
    """Read the channels, train, and write the model and metrics."""
    schema = Schema.from_json(load_schema(transformer_dir))
    transformer = load_transformer(transformer_dir)
    splits = []
    for channel, file_name in ((train_dir, TRAIN_FILE), (validation_dir, VALIDATION_FILE)):
        features, labels = read_split(find_split_file(channel, file_name), schema)
        splits.append((transform_features(transformer, features, schema), labels))
    result = train_booster(hp, schema.problem_type, splits[0], splits[1])
    save_model(result, transformer_dir, model_dir)
    metrics = json.dumps(training_metrics(result, hp), indent=2) + "\n"
    write_atomically(
        output_data_dir / METRICS_FILE, lambda p: p.write_text(metrics, encoding="utf-8")
    )
    return result


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that also records usage errors as the job's failure reason."""

    def error(self, message: str) -> NoReturn:
        write_failure(TRAINING, f"{self.prog}: {message}")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser; path defaults come from the SageMaker environment."""
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=Path(channel_dir(TRAIN_CHANNEL)))
    parser.add_argument("--validation", type=Path, default=Path(channel_dir(VALIDATION_CHANNEL)))
    parser.add_argument("--transformer", type=Path, default=Path(channel_dir(TRANSFORMER_CHANNEL)))
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get(ENV_MODEL_DIR, MODEL_DIR))
    )
    parser.add_argument(
        "--output-data-dir",
        type=Path,
        default=Path(os.environ.get(ENV_OUTPUT_DATA_DIR, OUTPUT_DATA_DIR)),
    )
    parser.add_argument("--objective", required=True)
    parser.add_argument("--eval_metric", default=None)
    parser.add_argument("--num_round", type=int, default=DEFAULT_NUM_ROUND)
    parser.add_argument("--max_depth", type=int, default=DEFAULT_MAX_DEPTH)
    parser.add_argument("--eta", type=float, default=DEFAULT_ETA)
    parser.add_argument("--subsample", type=float, default=DEFAULT_SUBSAMPLE)
    parser.add_argument("--colsample_bytree", type=float, default=DEFAULT_COLSAMPLE_BYTREE)
    parser.add_argument("--min_child_weight", type=float, default=DEFAULT_MIN_CHILD_WEIGHT)
    parser.add_argument("--reg_lambda", type=float, default=DEFAULT_REG_LAMBDA)
    parser.add_argument("--early_stopping_rounds", type=int, default=DEFAULT_EARLY_STOPPING_ROUNDS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--nthread", type=int, default=DEFAULT_NTHREAD)
    return parser


def hyperparameters_from_args(args: argparse.Namespace) -> Hyperparameters:
    """Build :class:`Hyperparameters` from the parsed arguments."""
    return Hyperparameters(**{f.name: getattr(args, f.name) for f in fields(Hyperparameters)})


def main(argv: list[str] | None = None) -> int:
    """Run the training job; return 0, or 2 after reporting a known error."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        logger.info("ignoring unknown arguments: %s", " ".join(unknown))
    hp = hyperparameters_from_args(args)
    try:
        result = run(
            hp,
            args.train,
            args.validation,
            args.transformer,
            args.model_dir,
            args.output_data_dir,
        )
    except TrainingError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        write_failure(TRAINING, str(exc))
        return ERROR_EXIT_CODE
    print(f"best_iteration: {result.best_iteration}")
    for line in metric_lines(result):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
