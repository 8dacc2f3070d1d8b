"""The yardstick: the pipeline's work done bare, in one warm Python process.

`python -m bench.yardstick --csv PATH --target NAME` does what the pipeline's jobs do to a
binary data set, with no pipeline, no job processes and no files between steps: pyarrow's CSV
reader (types inferred), a stratified 70/15/15 split, median / most-frequent imputation and
one-hot encoding fitted on the train split, ``xgb.train`` with the pipeline's hyper-parameters
(configs/base.yaml ``training.hyperparameters``, passed as ``--hyperparameters`` JSON) and early
stopping on the validation split, the test AUC, and the test predictions written as CSV. It
prints one JSON object: seconds per phase, imports included, measured from the interpreter's
start (``started`` below is taken before any third-party import).

Not the project's code on purpose: the bench compares the pipeline with this, the least the
same work can cost on the machine.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

SEED = 42
VALIDATION_FRACTION = 0.15
TEST_FRACTION = 0.15


def run(csv: Path, target: str, hyperparameters: dict[str, Any], out: Path) -> dict[str, Any]:
    """Every phase once, in order; seconds per phase and the test AUC."""
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = time.perf_counter()

    import numpy as np
    import pyarrow.csv as pa_csv
    import xgboost as xgb
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    mark("imports")
    frame = pa_csv.read_csv(csv).to_pandas()
    mark("read")
    labels = frame.pop(target).to_numpy()
    numeric = [c for c in frame.columns if frame[c].dtype.kind in "biuf"]
    categorical = [c for c in frame.columns if c not in numeric]
    rows = np.arange(len(frame))
    rest, test = train_test_split(rows, test_size=TEST_FRACTION, random_state=SEED, stratify=labels)
    train, validation = train_test_split(
        rest,
        test_size=VALIDATION_FRACTION / (1 - TEST_FRACTION),
        random_state=SEED,
        stratify=labels[rest],
    )
    transformer = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ]
    )
    transformer.fit(frame.iloc[train])
    matrices = {name: transformer.transform(frame.iloc[part]) for name, part in
                (("train", train), ("validation", validation), ("test", test))}  # fmt: skip
    mark("preprocess")
    hp = dict(hyperparameters)
    rounds = int(hp.pop("num_round"))
    patience = int(hp.pop("early_stopping_rounds"))
    params = {"objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist"}
    params |= {"lambda" if k == "reg_lambda" else k: v for k, v in hp.items()}
    dtrain = xgb.DMatrix(matrices["train"], label=labels[train])
    dvalid = xgb.DMatrix(matrices["validation"], label=labels[validation])
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=patience,
        verbose_eval=False,
    )
    best = int(booster.best_iteration)
    booster = booster[: best + 1]
    mark("train")
    scores = booster.predict(xgb.DMatrix(matrices["test"]))
    auc = float(roc_auc_score(labels[test], scores))
    mark("evaluate")
    np.savetxt(out, scores, fmt="%.7g")
    mark("predict_write")
    phases = ["imports", "read", "preprocess", "train", "evaluate", "predict_write"]
    seconds = {}
    previous = STARTED
    for name in phases:
        seconds[name] = marks[name] - previous
        previous = marks[name]
    return {
        "rows": len(frame),
        "seconds": previous - STARTED,
        "phases": seconds,
        "read_preprocess_seconds": seconds["read"] + seconds["preprocess"],
        "best_iteration": best,
        "auc": auc,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.yardstick", description=__doc__)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--hyperparameters", required=True, help="JSON object")
    parser.add_argument("--out", type=Path, required=True, help="predictions CSV")
    args = parser.parse_args(argv)
    result = run(args.csv, args.target, json.loads(args.hyperparameters), args.out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
