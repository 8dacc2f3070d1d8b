"""The built-in default data set: a seeded, churn-like binary problem with known probabilities.

Each row is a customer (numeric and categorical features, a few percent missing in several
columns) and ``label`` says whether they churned. Labels are drawn as
Bernoulli(:func:`true_probability`), and that probability is a function of the *observed*
row only, so :func:`oracle_auc` is the best AUC any model can reach on the same rows.

A missing value contributes exactly what the feature's typical value contributes: the
population median for a numeric feature, the most frequent level for a categorical one.
These are what the preprocessing job imputes (median / most-frequent), so imputation
loses nothing and the oracle is reachable. The logit has non-linear terms (a decaying
new-customer effect, a threshold on support calls, a U-shape in age, logarithmic spend)
and two interactions (basic plan x many support calls, new customer x spend).

Generation runs in blocks of :data:`BLOCK_ROWS` rows, each from its own generator seeded
with ``(seed, block index)``, so the output depends only on ``(rows, seed)``, is the same
whether written in one piece or block by block, and needs memory for one block at a time.

Command line (exit codes: 0 done, 2 bad arguments)::

    python -m pipelines.sample_data --rows 100000 --seed 7 --out build/local/data/default.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from config.paths import LOCAL_WORKSPACE
from tabular.files import atomic_path, write_atomic

DEFAULT_OUT = LOCAL_WORKSPACE / "data" / "default.csv"
DEFAULT_ROWS = 100_000
DEFAULT_SEED = 7
BLOCK_ROWS = 250_000
"""Rows per generator block. Part of the data set's definition: changing it changes the data."""
FORMAT_VERSION = 1
"""Bump when the generator changes, so :func:`ensure_dataset` regenerates old files."""
META_SUFFIX = ".meta.json"
EXIT_BAD_INPUT = 2

TARGET = "label"
AGE = "age"
TENURE = "tenure_months"
SPEND = "monthly_spend"
INCOME = "annual_income"
CALLS = "support_calls"
USAGE = "data_usage_gb"
LAST_LOGIN = "days_since_last_login"
OPEN_RATE = "email_open_rate"
REGION = "region"
PLAN = "plan"
CHANNEL = "channel"


@dataclass(frozen=True)
class NumericFeature:
    """A numeric column: the value a missing entry stands for and how often it is missing."""

    name: str
    median: float
    """Population median; a missing value contributes what this value contributes."""
    missing_rate: float
    integer: bool


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical column: its levels, their frequencies and their logit effects."""

    name: str
    levels: tuple[str, ...]
    weights: tuple[float, ...]
    effects: tuple[float, ...]
    missing_rate: float

    @property
    def mode(self) -> str:
        """The most frequent level; a missing value contributes what this level contributes."""
        return self.levels[int(np.argmax(self.weights))]


# Medians: analytic where the distribution allows (age, income, support calls, last login),
# otherwise measured once on 10M generated rows and rounded to the columns' precision.
NUMERIC = (
    NumericFeature(AGE, 44.0, 0.02, integer=True),
    NumericFeature(TENURE, 13.0, 0.0, integer=True),
    NumericFeature(SPEND, 54.38, 0.03, integer=False),
    NumericFeature(INCOME, 52_000.0, 0.05, integer=False),
    NumericFeature(CALLS, 1.0, 0.04, integer=True),
    NumericFeature(USAGE, 10.1, 0.05, integer=False),
    NumericFeature(LAST_LOGIN, 5.0, 0.02, integer=True),
    NumericFeature(OPEN_RATE, 0.265, 0.03, integer=False),
)
CATEGORICAL = (
    CategoricalFeature(
        REGION,
        ("north", "south", "east", "west", "central", "coastal"),
        (0.27, 0.20, 0.16, 0.14, 0.13, 0.10),
        (0.0, 0.25, -0.15, 0.35, -0.30, 0.10),
        0.03,
    ),
    CategoricalFeature(
        PLAN,
        ("basic", "standard", "premium", "family"),
        (0.30, 0.36, 0.16, 0.18),
        (0.30, 0.0, -0.45, -0.25),
        0.02,
    ),
    CategoricalFeature(
        CHANNEL,
        ("online", "retail", "phone"),
        (0.52, 0.30, 0.18),
        (0.20, -0.25, 0.0),
        0.01,
    ),
)
FEATURES = tuple(f.name for f in NUMERIC) + tuple(f.name for f in CATEGORICAL)
COLUMNS = (*FEATURES, TARGET)

_NUMERIC_BY_NAME = {f.name: f for f in NUMERIC}
_CATEGORICAL_BY_NAME = {f.name: f for f in CATEGORICAL}
_MODE_CODE = {f.name: f.levels.index(f.mode) for f in CATEGORICAL}
_PLAN_PRICE = np.array([35.0, 55.0, 85.0, 70.0])  # typical monthly spend per plan level
_INTERCEPT = -1.4
_SCALE = 1.35


# --------------------------------------------------------------------------- probability


def _logit(numeric: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray]) -> np.ndarray:
    """Logit of churn from imputed numeric values and level codes (no missing values)."""
    age = numeric[AGE]
    tenure = numeric[TENURE]
    log_spend = np.log(numeric[SPEND] / _NUMERIC_BY_NAME[SPEND].median)
    calls = numeric[CALLS]
    new_customer = tenure < 12
    basic = codes[PLAN] == _CATEGORICAL_BY_NAME[PLAN].levels.index("basic")
    logit = (
        _INTERCEPT
        + 1.6 * np.exp(-tenure / 9.0)  # the first months are the risky ones
        - 0.015 * tenure
        + 0.35 * ((age - 44.0) / 14.0) ** 2  # the young and the old leave more often
        + 0.9 * log_spend
        + 0.25 * np.minimum(calls, 6.0)
        + 0.7 * (calls >= 4)  # threshold: many calls mean an unsolved problem
        - 0.3 * np.sqrt(numeric[USAGE])
        + 0.04 * np.minimum(numeric[LAST_LOGIN], 40.0)
        - 0.12 * np.log(numeric[INCOME] / _NUMERIC_BY_NAME[INCOME].median)  # weak
        + 0.9 * (basic & (calls >= 3))  # interaction: frustrated basic-plan customers
        + 0.6 * new_customer * log_spend  # interaction: new customers are price-sensitive
    )
    for feature in CATEGORICAL:
        logit = logit + np.asarray(feature.effects)[codes[feature.name]]
    # email_open_rate is pure noise: it never enters the logit.
    return _SCALE * logit


def _probability(numeric: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray]) -> np.ndarray:
    """Probability from observed values: NaN (numeric) or -1 (level code) means missing."""
    imputed = {
        name: np.where(np.isnan(values), _NUMERIC_BY_NAME[name].median, values)
        for name, values in numeric.items()
    }
    imputed_codes = {
        name: np.where(values < 0, _MODE_CODE[name], values) for name, values in codes.items()
    }
    return 1.0 / (1.0 + np.exp(-_logit(imputed, imputed_codes)))


def _parse(features: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read the feature columns (typed, or text as read from the CSV) into values and codes."""
    absent = [name for name in FEATURES if name not in features.columns]
    if absent:
        raise ValueError(
            f"features: column(s) {absent} not found; the sample data set needs "
            f"{list(FEATURES)}. Pass the frame from generate() or the CSV it was written to."
        )
    numeric: dict[str, np.ndarray] = {}
    for feature in NUMERIC:
        column = features[feature.name]
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isfinite(values) & column.notna().to_numpy()
        if bad.any():
            example = column[bad].iloc[0]
            raise ValueError(
                f"features: column {feature.name!r} has {int(bad.sum())} non-numeric or "
                f"infinite value(s), e.g. {example!r}. Blank them or fix the values."
            )
        numeric[feature.name] = values
    codes: dict[str, np.ndarray] = {}
    for categorical in CATEGORICAL:
        column = features[categorical.name]
        present = column.notna().to_numpy()
        text = column.astype(object).where(column.notna(), None)
        level_codes = pd.Categorical(text, categories=list(categorical.levels)).codes
        unknown = (level_codes < 0) & present
        if unknown.any():
            example = column[unknown].iloc[0]
            raise ValueError(
                f"features: column {categorical.name!r} has {int(unknown.sum())} value(s) "
                f"outside {list(categorical.levels)}, e.g. {example!r}. Fix or blank them."
            )
        codes[categorical.name] = level_codes.astype(np.int64)
    return numeric, codes


def true_probability(features: pd.DataFrame) -> np.ndarray:
    """Return P(label = 1) for each row, from the observed feature values (NaN = missing).

    Accepts the frame from :func:`generate` or the CSV read back (typed or as text); extra
    columns such as ``label`` are ignored. Raises ``ValueError`` naming the column when a
    feature is absent, a numeric value does not parse or a level is unknown.
    """
    numeric, codes = _parse(features)
    return _probability(numeric, codes)


def oracle_auc(features: pd.DataFrame, labels: Sequence[int] | np.ndarray | pd.Series) -> float:
    """ROC AUC of :func:`true_probability` against ``labels``: the best any model can do."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(labels)
    if truth.shape != (len(features),):
        raise ValueError(
            f"labels: {truth.shape[0] if truth.ndim else 0} value(s) for {len(features)} "
            "feature row(s); pass one label per row."
        )
    if np.unique(truth).size != 2:
        raise ValueError("labels: both classes (0 and 1) are needed to compute an AUC.")
    return float(roc_auc_score(truth, true_probability(features)))


# --------------------------------------------------------------------------- generation


def _check_size(rows: int, seed: int) -> None:
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 1:
        raise ValueError(f"rows: {rows!r} is not a positive whole number; pass e.g. 100000.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: {seed!r} is not a non-negative whole number; pass e.g. 7.")


def _block(rows: int, seed: int, index: int) -> pd.DataFrame:
    """Rows of block ``index``: features and label, from the generator for (seed, index)."""
    rng = np.random.default_rng([seed, index])
    codes = {
        f.name: rng.choice(len(f.levels), size=rows, p=np.asarray(f.weights) / sum(f.weights))
        for f in CATEGORICAL
    }
    age = np.clip(np.rint(rng.normal(44.0, 14.0, rows)), 18, 85)
    # Tenure cannot exceed the adult years of the customer.
    tenure = np.minimum(1.0 + np.floor(rng.exponential(19.5, rows)), 72.0)
    tenure = np.minimum(tenure, 1.0 + (age - 18.0) * 12.0)
    spend = np.round(_PLAN_PRICE[codes[PLAN]] * np.exp(rng.normal(0.0, 0.3, rows)), 2)
    income = np.round(np.exp(rng.normal(np.log(52_000.0), 0.55, rows)), -2)
    calls = rng.poisson(1.5, rows).astype(np.float64)
    usage = np.round(rng.gamma(2.0, 6.0, rows), 1)
    last_login = np.floor(rng.exponential(8.0, rows))
    open_rate = np.round(rng.beta(2.0, 5.0, rows), 3)
    numeric = {
        AGE: age,
        TENURE: tenure,
        SPEND: spend,
        INCOME: income,
        CALLS: calls,
        USAGE: usage,
        LAST_LOGIN: last_login,
        OPEN_RATE: open_rate,
    }
    for feature in NUMERIC:
        if feature.missing_rate:
            numeric[feature.name][rng.random(rows) < feature.missing_rate] = np.nan
    for categorical in CATEGORICAL:
        codes[categorical.name][rng.random(rows) < categorical.missing_rate] = -1
    label = (rng.random(rows) < _probability(numeric, codes)).astype(np.int64)

    columns: dict[str, Any] = {}
    for feature in NUMERIC:
        values = numeric[feature.name]
        columns[feature.name] = pd.array(values, dtype="Int64") if feature.integer else values
    for categorical in CATEGORICAL:
        columns[categorical.name] = pd.Categorical.from_codes(
            codes[categorical.name], categories=list(categorical.levels)
        )
    columns[TARGET] = label
    return pd.DataFrame(columns)


def _blocks(rows: int, seed: int) -> Iterator[pd.DataFrame]:
    _check_size(rows, seed)
    for index, start in enumerate(range(0, rows, BLOCK_ROWS)):
        yield _block(min(BLOCK_ROWS, rows - start), seed, index)


def generate(rows: int, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Return ``rows`` customers: the :data:`FEATURES` columns and ``label`` (0/1).

    Integer columns are ``Int64``, the other numeric ones ``float64``, the categorical
    ones ``category``; missing values are ``<NA>``/NaN. Same ``(rows, seed)``, same frame.
    """
    return pd.concat(list(_blocks(rows, seed)), ignore_index=True)


# --------------------------------------------------------------------------- files


def metadata_path(path: Path) -> Path:
    """The sidecar ``<path>.meta.json`` recording what ``path`` was generated from."""
    return path.with_name(path.name + META_SUFFIX)


def _write_rows(handle: BinaryIO, frame: pd.DataFrame) -> None:
    """Append ``frame``'s rows (no header) as CSV; plain fields, an empty one when missing."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa.Table.from_pandas(frame[list(COLUMNS)], preserve_index=False)
    # "none": no quotes; a value that would need them (none does) raises instead.
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    pa_csv.write_csv(table, handle, options)


def write_csv(path: Path, rows: int, seed: int = DEFAULT_SEED) -> Path:
    """Write :func:`generate` ``(rows, seed)`` as CSV (header row) block by block; return ``path``.

    The file appears complete or not at all: it is written under a temporary name beside
    ``path`` and renamed when done. Memory use is that of one block.
    """
    _check_size(rows, seed)
    path = Path(path)
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        handle.write((",".join(COLUMNS) + "\n").encode("utf-8"))
        for block in _blocks(rows, seed):
            _write_rows(handle, block)
    return path


def _metadata(path: Path, rows: int, seed: int) -> dict[str, Any]:
    return {
        "rows": int(rows),
        "seed": int(seed),
        "format_version": FORMAT_VERSION,
        "bytes": path.stat().st_size,
    }


def dataset_is_current(path: Path, rows: int, seed: int = DEFAULT_SEED) -> bool:
    """True when ``path`` exists and its sidecar records this ``(rows, seed)`` and its size."""
    path = Path(path)
    meta = metadata_path(path)
    if not path.is_file() or not meta.is_file():
        return False
    try:
        recorded = json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False  # an unreadable record is no record: the caller regenerates
    return recorded == _metadata(path, rows, seed)


def ensure_dataset(path: Path, rows: int, seed: int = DEFAULT_SEED) -> Path:
    """Write the data set to ``path`` unless it is already there for this ``(rows, seed)``.

    The sidecar :func:`metadata_path` is written after the CSV, so an interrupted run leaves
    no record and the next call regenerates.
    """
    _check_size(rows, seed)
    path = Path(path)
    if dataset_is_current(path, rows, seed):
        return path
    meta = metadata_path(path)
    meta.unlink(missing_ok=True)
    write_csv(path, rows, seed)
    write_atomic(meta, json.dumps(_metadata(path, rows, seed), indent=2, sort_keys=True) + "\n")
    return path


# --------------------------------------------------------------------------- command line


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m pipelines.sample_data",
        description="Write the built-in churn-like sample data set as CSV (seeded).",
    )
    cli.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="number of rows")
    cli.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (>= 0)")
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV file to write")
    cli.add_argument(
        "--force", action="store_true", help="rewrite even if the file is already current"
    )
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        _check_size(args.rows, args.seed)
    except ValueError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.force and dataset_is_current(args.out, args.rows, args.seed):
        print(f"up to date: {args.out} ({args.rows} rows, seed {args.seed})")
        return 0
    if args.force:
        metadata_path(args.out).unlink(missing_ok=True)
    ensure_dataset(args.out, args.rows, args.seed)
    print(f"wrote {args.out} ({args.rows} rows, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
