"""Training job: fit an XGBoost booster on the preprocessed splits.

Runs as the entry point of the SageMaker XGBoost framework container (script mode), with the
shared job package ``tabular`` beside it in the code directory. Hyperparameters arrive as
``--name value`` arguments; unknown ones are ignored. Reads the train split's files (its shards
``train-part-*.csv``, or one ``train.csv``) and ``validation.csv`` (header row, target first)
with the same rules every job uses and the fitted ``transformer.joblib`` + ``schema.json``
written by preprocess.py, trains with ``xgb.train`` (``tree_method="hist"``, early stopping on
the validation split) and writes to the model dir: the booster truncated to its best iteration
(``xgboost-model.json``), the transformer and the schema, so that the model archive
is everything inference.py needs. Training metrics go to ``metrics.json`` in the
output data dir and to stdout as ``validation-<metric>: <value>`` lines, which
:func:`metric_definitions` turns into SageMaker metric definitions.

Across hosts (``TrainInstanceCount`` > 1; resourceconfig.json names the hosts): one model is
trained by every host on its own shard files (the train channel is ShardedByS3Key), joined by
XGBoost's own collective, as the SageMaker XGBoost container's distributed helper does
(sagemaker-xgboost-container ``distributed.py``: the tracker on the first host, port 9099, every
host a worker) with XGBoost's tracker API (``xgboost.tracker.RabitTracker`` and
``xgboost.collective.CommunicatorContext``, "Distributed XGBoost" in XGBoost's docs). The
quantile sketch, every histogram and every evaluation are reduced across hosts, so all hosts grow
the same trees and stop at the same round. The validation channel is FullyReplicated: each host
scores the whole split, and the reduced score equals one host's (exact). The train score is
XGBoost's reduction of the per-host scores (exact for sums such as rmse and logloss; for AUC the
per-host AUCs weighted by their positive x negative pairs). Only the first host writes the model
and metrics.json; the metrics name the rows each host trained on.

Each host reads its files a batch at a time into XGBoost's quantile matrix through a data
iterator (``xgb.QuantileDMatrix`` over an ``xgb.DataIter``): while the matrix is built memory
holds one batch's rows as a frame and the encoded shard as float32 (``keep_batches`` false: one
batch, the files read on each of XGBoost's passes); while it trains, the binned matrix only
(one byte per value); never the whole split as a frame.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from tabular.cluster import SINGLE_HOST, Cluster, read_cluster
from tabular.contract import (
    INPUT_CONFIG_DIR,
    INPUT_DATA_DIR,
    LOCAL_HOST_ADDRESSES,
    MODEL_DIR,
    OUTPUT_DATA_DIR,
    SM_CHANNEL_PREFIX,
    SM_INPUT_CONFIG_DIR,
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
    TRAINING_HISTORY_FILE,
    TRANSFORMER,
    TRANSFORMER_FILE,
    VALIDATION,
)
from tabular.schema import Schema, load_fitted, read_parts, split_files

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

TRACKER_PORT = 9099
"""The collective's tracker port on the first host (the XGBoost container's choice)."""
TRACKER_TIMEOUT_SECONDS = 900
"""How long the tracker and the hosts wait for every host to join (instances boot at their own
pace); the container waits up to 15 minutes for host names to resolve."""
CONNECT_RETRIES = 60
HOST_LOOKUP_SECONDS = 900

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
    keep_batches: bool = True
    """Keep each encoded batch while XGBoost builds its matrix (each row read once); False
    reads the host's files again on each of XGBoost's passes: less memory, slower."""


@dataclass(frozen=True)
class TrainingResult:
    """A trained booster (truncated to its best iteration) and its scores."""

    booster: Any
    eval_metric: str
    best_iteration: int
    scores: dict[str, float]
    host_rows: dict[str, int]
    """The train rows each host trained on, by host name."""
    curve: tuple[float, ...] = ()
    """The validation metric per round, all rounds trained (the report's training curve)."""


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


Batch = tuple[Any, np.ndarray]
"""A model matrix and its labels."""


@dataclass(frozen=True)
class SplitReader:
    """A split's part files in a channel, read and encoded a batch at a time, values and labels
    as float32, XGBoost's own type (given float64 labels, XGBoost took 7 ms per batch to set
    them, 1.1 s of the matrix's 2.9 s of CPU at 1M rows; cast here, the same float32 values):
    each pass reads the files again; :func:`quantile_matrix` passes once."""

    channel: Path
    split: str
    schema: Schema
    transformer: Any

    @property
    def files(self) -> list[Path]:
        return split_files(self.channel, self.split, CHANNEL_MISSING.format(split=self.split))

    def __iter__(self) -> Iterator[Batch]:
        missing = CHANNEL_MISSING.format(split=self.split)
        for features, labels in read_parts(
            self.channel, self.split, self.schema, missing, SPLIT_MISMATCH
        ):
            try:
                matrix = self.schema.encode(self.transformer, features, np.float32)
            except DataError as exc:
                raise DataError(f"{exc} Re-run preprocessing.") from None
            yield matrix, labels.astype(np.float32)


def read_channel(channel: Path, split: str, schema: Schema, transformer: Any) -> SplitReader:
    """The split's files in ``channel`` (its shards, the split file or the only CSV); a
    channel without any fails here, before training starts."""
    reader = SplitReader(channel, split, schema, transformer)
    reader.files  # noqa: B018 - raises when the channel holds no file of the split
    return reader


# --------------------------------------------------------------------------- hosts


def host_address(host: str) -> str:
    """The address of ``host``: the local runtime's table, else DNS, retried while the cluster
    boots (host names resolve a little after start-up; SageMaker's "distributed training
    configuration" notes it, the XGBoost container retries for 15 minutes)."""
    table = os.environ.get(LOCAL_HOST_ADDRESSES)
    if table:
        address = json.loads(table).get(host)
        if address:
            return str(address)
    deadline = time.monotonic() + HOST_LOOKUP_SECONDS
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError:
            if time.monotonic() > deadline:
                raise TrainingError(
                    f"host {host!r} of resourceconfig.json does not resolve; the hosts of a "
                    "training job must reach each other (check the job's VPC settings)."
                ) from None
            time.sleep(1.0)


@contextmanager
def collective(cluster: Cluster) -> Iterator[None]:
    """Join the job's hosts in XGBoost's collective (nothing to do for one host).

    The first host starts the tracker; every host connects as a worker whose task id is its
    position in ``hosts``, so ranks follow resourceconfig.json (rank 0 is the first host). A
    host that fails signals the others, which then fail instead of waiting.
    """
    if not cluster.distributed:
        yield
        return
    from xgboost import collective as coll
    from xgboost.tracker import RabitTracker

    address = host_address(cluster.first_host)
    tracker = None
    if cluster.is_first:
        tracker = RabitTracker(
            host_ip=address,
            n_workers=len(cluster.hosts),
            port=TRACKER_PORT,
            sortby="task",
            timeout=TRACKER_TIMEOUT_SECONDS,
        )
        tracker.start()
    rank = cluster.hosts.index(cluster.current_host)
    worker: dict[str, Any] = {
        "dmlc_tracker_uri": address,
        "dmlc_tracker_port": TRACKER_PORT,
        "dmlc_task_id": f"{rank:05d}",
        "dmlc_retry": CONNECT_RETRIES,
        "dmlc_timeout": TRACKER_TIMEOUT_SECONDS,
    }
    logger.info(
        "host %s (%d of %d) joins the collective at %s:%d",
        cluster.current_host, rank + 1, len(cluster.hosts), address, TRACKER_PORT,
    )  # fmt: skip
    with coll.CommunicatorContext(**worker):
        try:
            yield
        except BaseException:
            coll.signal_error()
            raise
    if tracker is not None:
        tracker.wait_for(TRACKER_TIMEOUT_SECONDS)
        tracker.free()


def host_rows(cluster: Cluster, rows: int) -> dict[str, int]:
    """The train rows of every host (a sum across hosts of one slot each)."""
    counts = np.zeros(len(cluster.hosts), dtype=np.float64)
    counts[cluster.hosts.index(cluster.current_host)] = rows
    if cluster.distributed:
        from xgboost import collective as coll

        counts = coll.allreduce(counts, coll.Op.SUM)
    return {host: int(count) for host, count in zip(cluster.hosts, counts, strict=True)}


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


def quantile_matrix(
    batches: Iterable[Batch], nthread: int, ref: Any = None, keep: bool = True
) -> Any:
    """XGBoost's binned matrix of ``batches``, built through a data iterator.

    XGBoost passes over the batches several times (about four: shape, sketch, bin); across hosts
    the sketch is merged, so every host bins with the same cut points (``xgboost.DataIter`` and
    ``xgboost.QuantileDMatrix`` in XGBoost's Python API reference). With ``keep``, ``batches``
    is read once: the first pass keeps each batch for the later ones (each row read and encoded
    once), and the kept batches go with the iterator when the matrix is built, so training holds
    the bins only (one byte per value), not the shard's 4 bytes per value besides. Without
    ``keep``, ``batches`` (re-iterable) is read again on each pass: one batch in memory at a
    time, every pass paying the read and the encoding. The matrix is the same either way. An
    error raised while reading a batch is re-raised as it was once XGBoost stops iterating.
    """
    import xgboost as xgb

    class Feed(xgb.DataIter):
        def __init__(self) -> None:
            self._kept: list[Batch] = []
            self._source: Iterator[Batch] | None = None
            self._read_all = False
            self._position = 0
            super().__init__()

        def next(self, input_data: Callable[..., None]) -> bool:
            if self._position < len(self._kept):
                batch = self._kept[self._position]
            elif self._read_all:
                return False
            else:
                if self._source is None:
                    self._source = iter(batches)
                read = next(self._source, None)
                if read is None:
                    self._source, self._read_all = None, keep
                    return False
                batch = read
                if keep:
                    self._kept.append(batch)
            self._position += 1
            input_data(data=batch[0], label=batch[1])
            return True

        def reset(self) -> None:
            self._position = 0
            if not keep:
                self._source = None

    return xgb.QuantileDMatrix(Feed(), ref=ref, nthread=nthread)


def train_booster(
    hp: Hyperparameters,
    problem_type: str,
    train: Iterable[Batch],
    validation: Iterable[Batch],
    cluster: Cluster | None = None,
) -> TrainingResult:
    """Train with early stopping on ``validation``; keep only the best iteration's trees.

    ``train`` and ``validation`` are re-iterable batches (a list, or a :class:`SplitReader`),
    read once each unless ``hp.keep_batches`` is False (:func:`quantile_matrix`).
    Across hosts (``cluster``), call it inside :func:`collective` on every host at once.
    """
    import xgboost as xgb

    check_objective(hp.objective, problem_type)
    cluster = cluster or Cluster((SINGLE_HOST,), SINGLE_HOST)
    eval_metric = hp.eval_metric or DEFAULT_EVAL_METRIC[problem_type]
    nthread = hp.nthread if hp.nthread > 0 else -1
    history: dict[str, dict[str, list[float]]] = {}
    try:
        dtrain = quantile_matrix(train, nthread, keep=hp.keep_batches)
        dvalid = quantile_matrix(validation, nthread, ref=dtrain, keep=hp.keep_batches)
        rows = host_rows(cluster, dtrain.num_row())
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
        if cluster.distributed:
            raise TrainingError(
                f"XGBoost failed on host {cluster.current_host} while training with "
                f"{len(cluster.hosts)} hosts ({first_line}). When another host failed first, "
                "its log names the cause; otherwise check the hyperparameters."
            ) from exc
        raise TrainingError(
            f"XGBoost rejected the hyperparameters ({first_line}). Fix them in the training config."
        ) from exc
    if hp.early_stopping_rounds:
        best = int(booster.best_iteration)
        booster = booster[: best + 1]
    else:
        best = len(history[VALIDATION][eval_metric]) - 1
    curve = [float(v) for v in history[VALIDATION][eval_metric]]
    scores = {VALIDATION: curve[best]}
    scores[TRAIN] = _final_score(booster.eval(dtrain, TRAIN), eval_metric)
    return TrainingResult(booster, eval_metric, best, scores, rows, tuple(curve))


def _final_score(evaluation: str, eval_metric: str) -> float:
    """The value in xgboost's `[0]\ttrain-auc:0.91` evaluation line."""
    suffix = f"{TRAIN}-{eval_metric}:"
    (field,) = [f for f in evaluation.split("\t") if f.startswith(suffix)]
    return float(field.removeprefix(suffix))


def training_history(result: TrainingResult) -> dict[str, Any]:
    """The validation metric per round and the round kept: the report's training curve."""
    return {
        "eval_metric": result.eval_metric,
        VALIDATION: list(result.curve),
        "best_iteration": result.best_iteration,
    }


def save_model(result: TrainingResult, transformer_dir: Path, model_dir: Path) -> None:
    """Write the booster, transformer.joblib, schema.json and the training history."""
    history = json.dumps(training_history(result), indent=2) + "\n"
    write_atomic(model_dir / TRAINING_HISTORY_FILE, history)
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
        "train_rows": sum(result.host_rows.values()),
        "train_rows_per_host": result.host_rows,
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
    cluster: Cluster | None = None,
) -> TrainingResult:
    """Read the channels, train (with the other hosts, if any), and, on the first host, write
    the model and metrics."""
    cluster = cluster or Cluster((SINGLE_HOST,), SINGLE_HOST)
    schema, transformer = load_transformer(transformer_dir)
    if cluster.distributed and not any(train_dir.glob("*")):
        raise TrainingError(
            f"{train_dir}: host {cluster.current_host} received no {TRAIN} shard: the job has "
            f"{len(cluster.hosts)} instances, more than the {TRAIN} split has files "
            "(ShardedByS3Key gives each instance about 1/N of them). Lower TrainInstanceCount, "
            "or raise training.shards so Preprocess writes at least one file per instance."
        )
    train = read_channel(train_dir, TRAIN, schema, transformer)
    validation = read_channel(validation_dir, VALIDATION, schema, transformer)
    with collective(cluster):
        result = train_booster(hp, schema.problem_type, train, validation, cluster)
    if cluster.is_first:
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
    parser.add_argument("--keep_batches", type=true_or_false, default=True)
    return parser


def true_or_false(text: str) -> bool:
    """A boolean hyperparameter: ``true`` or ``false`` (any case), as SageMaker passes strings."""
    value = {"true": True, "false": False}.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return value


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
        cluster = read_cluster(
            Path(os.environ.get(SM_INPUT_CONFIG_DIR, INPUT_CONFIG_DIR)), TrainingError
        )
        result = run(
            hp,
            args.train,
            args.validation,
            args.transformer,
            args.model_dir,
            args.output_data_dir,
            cluster,
        )
        print(f"train rows on {cluster.current_host}: {result.host_rows[cluster.current_host]}")
        print(f"best_iteration: {result.best_iteration}")  # every host stops at the same round
        if not cluster.is_first:
            return
        for line in metric_lines(result):
            print(line)

    return run_job(TRAINING, work)


if __name__ == "__main__":
    sys.exit(main())
