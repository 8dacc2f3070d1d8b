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
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from tabular.contract import (
    INPUT_DATA_DIR,
    MODEL_DIR,
    OUTPUT_DATA_DIR,
    SM_CHANNEL_PREFIX,
    SM_MODEL_DIR,
    SM_OUTPUT_DATA_DIR,
)
from tabular.errors import DataError, JobError
from tabular.files import atomic_path, write_atomic
from tabular.job import TRAINING, JobParser, require_files, run_job
from tabular.names import (
    BOOSTER_FILE,
    DEFAULT_EVAL_METRIC,
    DEFAULT_SEED,
    OBJECTIVES,
    SCHEMA_FILE,
    TRAIN,
    TRANSFORMER,
    TRANSFORMER_FILE,
    VALIDATION,
)
from tabular.schema import Schema, load_fitted, read_split

METRICS_FILE = "metrics.json"
METRIC_LINE_PREFIX = "{dataset}-{metric}: "
METRIC_LINE_FORMAT = METRIC_LINE_PREFIX + "{value:.6f}"
METRIC_VALUE_REGEX = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
CHANNEL_MISSING = "Connect the preprocessing step's {split} output to the {split!r} channel."
SPLIT_MISMATCH = "Use the splits and transformer of one preprocessing run."

DEFAULT_NUM_ROUND = 200
DEFAULT_MAX_DEPTH = 6
DEFAULT_ETA = 0.1
DEFAULT_SUBSAMPLE = 1.0
DEFAULT_COLSAMPLE_BYTREE = 1.0
DEFAULT_MIN_CHILD_WEIGHT = 1.0
DEFAULT_REG_LAMBDA = 1.0
DEFAULT_EARLY_STOPPING_ROUNDS = 10
DEFAULT_NTHREAD = -1

logger = logging.getLogger(__name__)


class TrainingError(JobError):
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
        for dataset in (TRAIN, VALIDATION)
    ]


def channel_dir(channel: str) -> str:
    """Return the container's directory of ``channel`` ($SM_CHANNEL_<NAME> if set)."""
    return os.environ.get(f"{SM_CHANNEL_PREFIX}{channel.upper()}", f"{INPUT_DATA_DIR}/{channel}")


def load_transformer(transformer_dir: Path) -> tuple[Schema, Any]:
    """The schema and the fitted transformer from the transformer channel."""
    try:
        require_files(
            transformer_dir,
            (SCHEMA_FILE, TRANSFORMER_FILE),
            CHANNEL_MISSING.format(split=TRANSFORMER),
        )
    except FileNotFoundError as exc:
        raise TrainingError(str(exc)) from None
    document, transformer = load_fitted(transformer_dir)
    return Schema.from_json(document), transformer


def read_channel(channel: Path, split: str, schema: Schema, transformer: Any) -> tuple[Any, Any]:
    """A split's model matrix and its labels (the split file, or the channel's only CSV)."""
    features, labels = read_split(
        channel, split, schema, CHANNEL_MISSING.format(split=split), SPLIT_MISMATCH
    )
    try:
        return schema.encode(transformer, features), labels
    except DataError as exc:
        raise DataError(f"{exc} Re-run preprocessing.") from None


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
            evals=[(dvalid, VALIDATION)],
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
        best = len(history[VALIDATION][eval_metric]) - 1
    scores = {VALIDATION: float(history[VALIDATION][eval_metric][best])}
    scores[TRAIN] = _final_score(booster.eval(dtrain, TRAIN), eval_metric)
    return TrainingResult(booster, eval_metric, best, scores)


def _final_score(evaluation: str, eval_metric: str) -> float:
    """The value in xgboost's `[0]\ttrain-auc:0.91` evaluation line."""
    suffix = f"{TRAIN}-{eval_metric}:"
    (field,) = [f for f in evaluation.split("\t") if f.startswith(suffix)]
    return float(field.removeprefix(suffix))


def save_model(result: TrainingResult, transformer_dir: Path, model_dir: Path) -> None:
    """Write the booster, transformer.joblib and schema.json into ``model_dir``."""
    # As bytes in JSON: save_model picks the format from the file name, a temporary's is not .json.
    write_atomic(model_dir / BOOSTER_FILE, bytes(result.booster.save_raw(raw_format="json")))
    for name in (TRANSFORMER_FILE, SCHEMA_FILE):
        with atomic_path(model_dir / name) as path:
            shutil.copyfile(transformer_dir / name, path)


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
    schema, transformer = load_transformer(transformer_dir)
    train = read_channel(train_dir, TRAIN, schema, transformer)
    validation = read_channel(validation_dir, VALIDATION, schema, transformer)
    result = train_booster(hp, schema.problem_type, train, validation)
    save_model(result, transformer_dir, model_dir)
    metrics = json.dumps(training_metrics(result, hp), indent=2) + "\n"
    write_atomic(output_data_dir / METRICS_FILE, metrics)
    return result


def build_parser() -> argparse.ArgumentParser:
    """Return the parser; path defaults come from the SageMaker environment."""
    parser = JobParser(TRAINING, __doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=Path(channel_dir(TRAIN)))
    parser.add_argument("--validation", type=Path, default=Path(channel_dir(VALIDATION)))
    parser.add_argument("--transformer", type=Path, default=Path(channel_dir(TRANSFORMER)))
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get(SM_MODEL_DIR, MODEL_DIR))
    )
    parser.add_argument(
        "--output-data-dir",
        type=Path,
        default=Path(os.environ.get(SM_OUTPUT_DATA_DIR, OUTPUT_DATA_DIR)),
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
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        logger.info("ignoring unknown arguments: %s", " ".join(unknown))
    hp = hyperparameters_from_args(args)

    def work() -> None:
        result = run(
            hp, args.train, args.validation, args.transformer, args.model_dir, args.output_data_dir
        )
        print(f"best_iteration: {result.best_iteration}")
        for line in metric_lines(result):
            print(line)

    return run_job(TRAINING, work)


if __name__ == "__main__":
    sys.exit(main())
