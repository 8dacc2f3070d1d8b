"""Preprocessing job: validate a CSV data set, split it and fit the feature transformer.

Runs inside the SageMaker scikit-learn processing container, with the shared job package
``tabular`` beside it (one set of reading rules for every job; see its modules). Behaviour:

* Settings: a JSON document (``--settings``, :class:`Settings`) holds the target, the problem
  type, column names and every reading rule, so names travel as data, never as command-line
  arguments; single options (``--target=NAME`` ...) override it for runs by hand.
* Input: one or more ``*.csv`` files under ``--input-dir`` (searched recursively and
  concatenated in sorted path order; all must share one header) or a single CSV file, read
  in the configured dialect (delimiter, decimal mark, thousands separator, missing values).
  With ``columns`` the files have no header row.
* Validation fails loudly with a :class:`DataError` naming the file, the column or line, the
  problem and the fix. Nothing is written when validation fails.
* Rows with a missing target are dropped (the count is logged and recorded in
  ``schema.json``); every other problem with the target is an error.
* Binary targets are encoded to 0/1. Targets that already are 0/1 stay as they are;
  otherwise ``positive_class`` names the class encoded as 1 (default: the second value in
  sorted order, numeric order when both values are numbers).
* Feature typing: a column whose non-missing values are all numbers is numeric; one whose
  values are mostly numbers but not all is an error naming the first other value and its fix
  (:mod:`tabular.values`); anything else is categorical, as is every column listed in
  ``categorical_columns``. ``drop_columns`` are removed first.
* Split: train/validation/test with a fixed seed, stratified for binary targets; every split
  must contain both classes.
* Transformer (fitted on the train split only; :mod:`tabular.features`): median imputation of
  numbers, most-frequent imputation and one-hot encoding of categories, a cap on distinct
  values per categorical column (refused, or top-k plus "other").
* Scoring data (``--scoring-dir``, optional): read with the same rules, a header row
  recognised (or refused when it names other columns), checked against the feature columns;
  without it the test split's features are scored.
* Outputs, in the canonical dialect of :mod:`tabular.dialect` (each file written to a
  temporary name and renamed when complete): ``train``, ``validation``, ``test``: header
  row, encoded target first, then the features as read (numbers as numbers); the train split
  as ``train_shards`` files ``train-part-00000.csv`` ... (row ``i`` in file ``i mod n``), which
  Train's hosts share out ShardedByS3Key; ``scoring``:
  one file per scoring input (or ``scoring.csv``), features only, no header (batch-transform
  input); ``transformer``: ``transformer.joblib`` and ``schema.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabular import csvio, features, values
from tabular.dialect import Dialect
from tabular.errors import DataError, describe_source
from tabular.feature_types import (
    FeatureTypes,
    type_features,
    warn_missing_spellings,
)
from tabular.files import write_all
from tabular.job import PROCESSING, JobParser, run_job
from tabular.names import (
    BINARY,
    DATA_DIR,
    DEFAULT_DATA_VERSION,
    DEFAULT_SEED,
    DEFAULT_TEST_FRACTION,
    DEFAULT_TRAIN_SHARDS,
    DEFAULT_VALIDATION_FRACTION,
    PREPROCESS_OUTPUT_ROOT,
    PROBLEM_TYPES,
    SCHEMA_FILE,
    SCORING,
    SCORING_FILE,
    TEST,
    TEST_FILE,
    TOP_K,
    TRAIN,
    TRANSFORMER,
    TRANSFORMER_FILE,
    VALIDATION,
    VALIDATION_FILE,
    shard_file,
)
from tabular.settings import Settings
from tabular.target import (
    prepare_target,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    """The three row subsets of the data set."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def rows(self) -> dict[str, int]:
        """Row count per split, keyed by output name."""
        return {
            TRAIN: len(self.train),
            VALIDATION: len(self.validation),
            TEST: len(self.test),
        }


# --------------------------------------------------------------------------- reading


def read_dataset(
    input_path: Path, dialect: Dialect | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read and concatenate every CSV file of ``input_path`` (sorted by path), as text."""
    dialect = dialect or Dialect()
    if columns is not None:
        csvio.check_column_names("data.columns", columns)
    frames: list[pd.DataFrame] = []
    for path in csvio.list_csv_files(input_path):
        frame = csvio.read_csv_file(path, dialect, columns)
        if frames and list(frame.columns) != list(frames[0].columns):
            first = frames[0].index[0][0]
            raise DataError(
                f"{path.name}: columns {list(frame.columns)} differ from those of "
                f"{first} {list(frames[0].columns)}. All input files must have the same "
                "columns in the same order."
            )
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pd.concat(frames)


def drop_columns(frame: pd.DataFrame, names: Sequence[str], target: str) -> pd.DataFrame:
    """Remove ``data.drop_columns``; each must be a column and none the target."""
    unknown = [n for n in names if n not in frame.columns]
    if unknown:
        raise DataError(
            f"{describe_source(frame)}: data.drop_columns names {unknown}, which are not "
            f"columns of the data (columns: {list(frame.columns)}). Fix data.drop_columns."
        )
    if target in names:
        raise DataError(f"data.drop_columns names the target {target!r}; remove it from the list.")
    return frame.drop(columns=list(names))


# --------------------------------------------------------------------------- split


def split_sizes(
    rows: int, validation_fraction: float, test_fraction: float
) -> tuple[int, int, int]:
    """Return ``(train, validation, test)`` row counts (validation/test rounded up)."""
    test = math.ceil(rows * test_fraction)
    validation = math.ceil(rows * validation_fraction)
    return rows - validation - test, validation, test


def minimum_rows(validation_fraction: float, test_fraction: float, per_split: int = 1) -> int:
    """Smallest row count giving every split at least ``per_split`` rows."""
    rows = per_split
    while min(split_sizes(rows, validation_fraction, test_fraction)) < per_split:
        rows += 1
    return rows


def split_dataset(
    frame: pd.DataFrame,
    target: str,
    problem_type: str,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = DEFAULT_SEED,
) -> Splits:
    """Split rows into train/validation/test with ``seed`` (stratified for binary)."""
    from sklearn.model_selection import train_test_split

    binary = problem_type == BINARY
    per_split = 2 if binary else 1
    needed = minimum_rows(validation_fraction, test_fraction, per_split)
    _, validation_rows, test_rows = split_sizes(len(frame), validation_fraction, test_fraction)
    if len(frame) < needed:
        raise DataError(
            f"{describe_source(frame)}: {len(frame)} row(s) with a target are too few to split "
            f"with validation fraction {validation_fraction} and test fraction "
            f"{test_fraction}; at least {needed} are needed. Add rows or change the "
            "fractions."
        )
    if binary:
        _check_class_counts(frame, target, validation_fraction, test_fraction)
    labels = frame[target] if binary else None
    rest, test = train_test_split(frame, test_size=test_rows, random_state=seed, stratify=labels)
    train, validation = train_test_split(
        rest,
        test_size=validation_rows,
        random_state=seed,
        stratify=rest[target] if binary else None,
    )
    splits = Splits(train=train, validation=validation, test=test)
    if binary:
        for name, part in ((TRAIN, train), (VALIDATION, validation), (TEST, test)):
            if part[target].nunique() < 2:
                raise DataError(
                    f"{describe_source(frame)}: the {name} split has only one class; each "
                    "split needs both. Add rows of the rarer class or change the fractions."
                )
    return splits


def _check_class_counts(
    frame: pd.DataFrame, target: str, validation_fraction: float, test_fraction: float
) -> None:
    smallest = min(validation_fraction, test_fraction, 1 - validation_fraction - test_fraction)
    needed = max(3, math.ceil(1 / smallest))
    counts = frame[target].value_counts()
    if counts.min() < needed:
        raise DataError(
            f"{describe_source(frame)}: target class {counts.idxmin()} has {int(counts.min())} "
            f"row(s); every split needs both classes, so each class needs at least "
            f"{needed} rows with validation fraction {validation_fraction} and test "
            f"fraction {test_fraction}. Add rows of that class or change the fractions."
        )


# --------------------------------------------------------------------------- scoring data


def read_scoring(
    scoring_path: Path, settings: Settings, types: FeatureTypes, input_columns: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Read every scoring file with the training rules; return its typed features by name.

    A file holds the feature columns, or all the columns of the training input (the target
    and dropped columns are then ignored). A first record that names either list is a header
    row; a first record that looks like a header (a column name, or text where every number
    belongs) but names other columns is refused, as is a record with another field count.
    """
    layouts = {
        "the feature columns": list(types.columns),
        "the training input's columns": list(input_columns),
    }
    expected = "; or ".join(f"{k} {v}" for k, v in layouts.items())
    root = scoring_path if scoring_path.is_dir() else scoring_path.parent
    scored: dict[str, pd.DataFrame] = {}
    for path in csvio.list_csv_files(scoring_path):
        first = csvio.first_record(path, settings.dialect)
        if first is None:
            raise DataError(f"{path.name}: scoring file has no records. Remove it.")
        csvio.check_delimiter(path.name, first, settings.dialect)
        names = csvio.header_names(first)
        if names in layouts.values():
            frame = csvio.read_csv_file(path, settings.dialect)
        elif _looks_like_header(names, types, settings.dialect, layouts.values()):
            raise DataError(
                f"{path.name}: line 1 {names} looks like a header row but does not name "
                f"{expected}. Fix the header row (or remove it)."
            )
        else:
            width = {len(columns): columns for columns in layouts.values()}
            if len(names) not in width:
                raise DataError(
                    f"{path.name}: line 1 has {len(first)} field(s); a scoring file holds "
                    f"{expected} (a header row naming them is optional)."
                )
            frame = csvio.read_csv_file(path, settings.dialect, width[len(names)])
        typed = values.coerce_features(frame, types.numeric, types.categorical, settings.dialect)
        scored[path.relative_to(root).as_posix()] = typed[types.columns]
    return scored


def _looks_like_header(
    names: list[str], types: FeatureTypes, dialect: Dialect, layouts: Iterable[list[str]]
) -> bool:
    """A column's name in the record, or text (not a number) wherever a number belongs."""
    if set(names) & set(types.columns):
        return True
    for columns in layouts:
        if len(columns) != len(names):
            continue
        at = [columns.index(c) for c in types.numeric if c in columns]
        cells = pd.Series([names[i] for i in at], dtype=object)
        if at and np.isnan(values.parse_numbers(cells, dialect)).all():
            return not cells.isin(dialect.missing_values).any()
    return False


# --------------------------------------------------------------------------- schema, outputs


def build_schema(
    settings: Settings,
    types: FeatureTypes,
    class_mapping: dict[str, int] | None,
    splits: Splits,
    dropped_rows: int,
    layout: str = features.DENSE,
    category_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Return the schema.json content describing the features, the target and the rules."""
    return {
        "target": settings.target,
        "problem_type": settings.problem_type,
        "feature_columns": types.columns,
        "numeric_columns": list(types.numeric),
        "categorical_columns": list(types.categorical),
        "class_mapping": class_mapping,
        "rows": splits.rows(),
        "dropped_rows_missing_target": dropped_rows,
        "missing_values": list(settings.dialect.missing_values),
        "matrix_layout": layout,
        "category_counts": category_counts or {},
        "high_cardinality": settings.high_cardinality,
        "max_categories": settings.max_categories,
        "dropped_columns": list(settings.drop_columns),
    }


def output_paths(output_root: Path) -> dict[str, Path]:
    """Return the file path of every output but the train shards, keyed by file name."""
    return {
        VALIDATION_FILE: output_root / VALIDATION / VALIDATION_FILE,
        TEST_FILE: output_root / TEST / TEST_FILE,
        SCORING_FILE: output_root / SCORING / SCORING_FILE,
        TRANSFORMER_FILE: output_root / TRANSFORMER / TRANSFORMER_FILE,
        SCHEMA_FILE: output_root / TRANSFORMER / SCHEMA_FILE,
    }


def split_frame(part: pd.DataFrame, target: str, columns: Sequence[str]) -> pd.DataFrame:
    """Return the split's columns as written: target first, then the features."""
    return part[[target, *columns]]


def shard_rows(rows: int, shards: int) -> list[np.ndarray]:
    """Row positions of each train shard: row ``i`` goes to shard ``i mod n`` (n = ``shards``,
    or ``rows`` when fewer), so every shard holds a stride of the split: the same mix of
    classes, and sizes that differ by one row at most. Whole shards go to training hosts."""
    count = max(1, min(shards, rows))
    positions = np.arange(rows)
    return [positions[index::count] for index in range(count)]


def write_outputs(
    output_root: Path,
    splits: Splits,
    transformer: Any,
    schema: dict[str, Any],
    scoring: dict[str, pd.DataFrame] | None = None,
    train_shards: int = DEFAULT_TRAIN_SHARDS,
) -> dict[str, Path]:
    """Write the splits (train as ``train_shards`` files), scoring files, transformer and
    schema; return the paths."""
    import joblib

    target = schema["target"]
    columns = schema["feature_columns"]
    paths = output_paths(output_root)
    scoring = scoring if scoring is not None else {SCORING_FILE: splits.test[list(columns)]}

    def csv_writer(frame: pd.DataFrame, header: bool) -> Callable[[Path], object]:
        return lambda path: csvio.write_csv(frame, path, header=header)

    def dump_transformer(path: Path) -> None:
        with path.open("wb") as handle:
            joblib.dump(transformer, handle)

    def dump_schema(path: Path) -> None:
        text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")

    train = split_frame(splits.train, target, columns)
    writers: dict[Path, Callable[[Path], object]] = {
        output_root / TRAIN / shard_file(TRAIN, index): csv_writer(train.iloc[rows], True)
        for index, rows in enumerate(shard_rows(len(train), train_shards))
    }
    writers |= {
        paths[VALIDATION_FILE]: csv_writer(split_frame(splits.validation, target, columns), True),
        paths[TEST_FILE]: csv_writer(split_frame(splits.test, target, columns), True),
        paths[TRANSFORMER_FILE]: dump_transformer,
        paths[SCHEMA_FILE]: dump_schema,
    }
    for name, frame in scoring.items():
        writers[output_root / SCORING / name] = csv_writer(frame, False)
    write_all(writers)
    return paths


# --------------------------------------------------------------------------- job


def run(
    input_path: Path,
    output_root: Path,
    settings: Settings,
    data_version: str = DEFAULT_DATA_VERSION,
    scoring_path: Path | None = None,
) -> dict[str, Any]:
    """Validate, split, fit and write everything; return the schema written."""
    dialect = settings.dialect
    frame = read_dataset(input_path, dialect, settings.columns)
    input_columns = list(frame.columns)
    frame = drop_columns(frame, settings.drop_columns, settings.target)
    encoded = prepare_target(
        frame, settings.target, settings.problem_type, settings.positive_class, dialect
    )
    if encoded.dropped_rows:
        logger.warning(
            "dropped %d row(s) with a missing target %r", encoded.dropped_rows, settings.target
        )
    raw = encoded.frame.drop(columns=[settings.target])
    types, typed = type_features(raw, dialect, settings.categorical_columns)
    warn_missing_spellings(typed, types.categorical)
    data = typed.assign(**{settings.target: encoded.frame[settings.target]})
    splits = split_dataset(
        data,
        settings.target,
        settings.problem_type,
        settings.validation_fraction,
        settings.test_fraction,
        settings.seed,
    )
    counts = features.check_cardinality(
        splits.train, types.categorical, settings.max_categories, settings.high_cardinality
    )
    top_k = settings.max_categories if settings.high_cardinality == TOP_K else None
    transformer, layout = features.fit_transformer(
        splits.train, types.numeric, types.categorical, top_k
    )
    scoring = read_scoring(scoring_path, settings, types, input_columns) if scoring_path else None
    schema = build_schema(
        settings, types, encoded.class_mapping, splits, encoded.dropped_rows, layout, counts
    )
    schema["data_version"] = data_version
    write_outputs(output_root, splits, transformer, schema, scoring, settings.train_shards)
    return schema


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not strictly between 0 and 1")
    return value


def _name_list(text: str) -> tuple[str, ...]:
    try:
        names = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not a JSON list of names ({exc})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise argparse.ArgumentTypeError('give a JSON list of names, e.g. ["a", "b,c"]')
    return tuple(names)


OVERRIDES = (
    "target", "problem_type", "columns", "positive_class", "validation_fraction",
    "test_fraction", "seed",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of the job.

    Names are values of ``--settings`` (JSON); the single options are for runs by hand and take
    any name as ``--target=NAME`` (the ``=`` form keeps a leading ``-`` from reading as an
    option).
    """
    parser = JobParser(PROCESSING, __doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=Path(DATA_DIR))
    parser.add_argument("--output-root", type=Path, default=Path(PREPROCESS_OUTPUT_ROOT))
    parser.add_argument("--settings", type=Path, help="the job's settings (JSON, see Settings)")
    parser.add_argument("--scoring-dir", type=Path, default=None, help="scoring data to check")
    parser.add_argument("--target", default=None)
    parser.add_argument("--problem-type", default=None, choices=PROBLEM_TYPES)
    parser.add_argument(
        "--columns",
        type=_name_list,
        default=None,
        help='JSON list of names, only for files without a header row: --columns=\'["a","b"]\'',
    )
    parser.add_argument("--positive-class", default=None)
    parser.add_argument("--validation-fraction", type=_fraction, default=None)
    parser.add_argument("--test-fraction", type=_fraction, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--data-version",
        default=DEFAULT_DATA_VERSION,
        help="which data the input URI held (recorded in schema.json; part of the cache key)",
    )
    return parser


def settings_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """The settings file (if any) with the single options laid over it."""
    document: dict[str, Any] = {}
    if args.settings is not None:
        try:
            document = json.loads(args.settings.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            parser.error(f"--settings {args.settings}: cannot be read as JSON ({exc})")
    for key in OVERRIDES:
        if getattr(args, key) is not None:
            document[key] = getattr(args, key)
    for key in ("target", "problem_type"):
        if document.get(key) is None:
            parser.error(f"the {key} is required (in --settings or as --{key.replace('_', '-')})")
    settings = Settings.from_json(document)
    if settings.validation_fraction + settings.test_fraction >= 1.0:
        parser.error("--validation-fraction plus --test-fraction must be below 1")
    return settings


def main(argv: list[str] | None = None) -> int:
    """Run the preprocessing job; return 0, or 2 after reporting a data error."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def work() -> None:
        settings = settings_from_args(parser, args)
        schema = run(
            input_path=args.input_dir,
            output_root=args.output_root,
            settings=settings,
            data_version=args.data_version,
            scoring_path=args.scoring_dir,
        )
        rows = schema["rows"]
        print(
            f"rows: {TRAIN}={rows[TRAIN]} {VALIDATION}={rows[VALIDATION]} {TEST}={rows[TEST]}"
            f" (dropped {schema['dropped_rows_missing_target']} with a missing target)"
        )

    return run_job(PROCESSING, work)


if __name__ == "__main__":
    sys.exit(main())
