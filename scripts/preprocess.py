"""Preprocessing job: validate a CSV data set, split it and fit the feature transformer.

Runs inside the SageMaker scikit-learn processing container. Behaviour:

* Input: one or more ``*.csv`` files under ``--input-dir`` (searched recursively and
  concatenated in sorted path order; all must share one header) or a single CSV file.
  With ``--columns`` the files have no header row and the names come from the option.
  Every value is read as text so both pandas CSV engines give identical results.
* Validation fails loudly with a :class:`DataError` naming the file, the column or
  line, the problem and the fix. Nothing is written when validation fails.
* Rows with a missing target are dropped (the count is logged and recorded in
  ``schema.json``); every other problem with the target is an error.
* Binary targets are encoded to 0/1. Targets that already are 0/1 stay as they are;
  otherwise ``--positive-class`` names the class encoded as 1 (default: the second
  value in sorted order, numeric order when both values are numbers).
* Feature typing: a column whose non-null values all parse as finite numbers is
  numeric; one where at least 90 % (but not all) parse is an error (probably a
  stray text value); anything else is categorical.
* Split: train/validation/test with a fixed seed, stratified for binary targets;
  every split must contain both classes.
* Transformer (fitted on the train split only): numeric columns get median
  imputation, categorical columns most-frequent imputation plus one-hot encoding
  with ``handle_unknown="ignore"``, so a category never seen in training becomes an
  all-zero row block instead of an error. Output is dense so that numeric zeros stay
  zeros for XGBoost (sparse zeros would read as missing values).
* Outputs (each file written to a temporary name and renamed when complete):
  ``train``, ``validation``, ``test``: header row, encoded target first, then the raw
  feature values as read; ``scoring``: the test features only, no header and no
  target (batch-transform input); ``transformer``: ``transformer.joblib`` and
  ``schema.json``.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import json
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

PROCESSING_ROOT = "/opt/ml/processing"
INPUT_DIR = f"{PROCESSING_ROOT}/input/data"
OUTPUT_ROOT = f"{PROCESSING_ROOT}/output"

TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
SCORING = "scoring"
TRANSFORMER = "transformer"
OUTPUT_NAMES = (TRAIN, VALIDATION, TEST, SCORING, TRANSFORMER)

TRAIN_FILE = "train.csv"
VALIDATION_FILE = "validation.csv"
TEST_FILE = "test.csv"
SCORING_FILE = "scoring.csv"
TRANSFORMER_FILE = "transformer.joblib"
SCHEMA_FILE = "schema.json"

BINARY = "binary"
REGRESSION = "regression"
PROBLEM_TYPES = (BINARY, REGRESSION)

DEFAULT_VALIDATION_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
DEFAULT_SEED = 42
DEFAULT_DATA_VERSION = "manual"
NUMERIC_SHARE_FOR_ERROR = 0.9
CSV_SUFFIX = ".csv"
FAILURE_REASON_ENV = "SM_FAILURE_REASON_FILE"
ERROR_EXIT_CODE = 2
FILE_COLUMN = "file"
LINE_COLUMN = "line"

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """An input problem the user must fix; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class TargetEncoding:
    """The target after validation: rows kept, 0/1 mapping (binary) and rows dropped."""

    frame: pd.DataFrame
    class_mapping: dict[str, int] | None
    dropped_rows: int


@dataclass(frozen=True)
class FeatureTypes:
    """Feature columns in file order, and the same columns split by type."""

    columns: list[str]
    numeric: list[str]
    categorical: list[str]


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


def list_csv_files(input_path: Path) -> list[Path]:
    """Return the CSV files to read: ``input_path`` itself or every ``*.csv`` below it."""
    if input_path.is_file():
        return [input_path]
    if not input_path.is_dir():
        raise DataError(
            f"{input_path}: input path does not exist. Point the processing input at "
            "the S3 prefix or file holding the CSV data."
        )
    files = sorted(
        (p for p in input_path.rglob("*") if p.is_file()),
        key=lambda p: p.relative_to(input_path).as_posix(),
    )
    csv_files = [p for p in files if p.suffix.lower() == CSV_SUFFIX]
    if not csv_files:
        found = ", ".join(p.relative_to(input_path).as_posix() for p in files[:10])
        raise DataError(
            f"{input_path}: no {CSV_SUFFIX} file found (files: [{found}]). Put the data "
            f"in files ending in {CSV_SUFFIX} under the input prefix."
        )
    return csv_files


def check_utf8(path: Path, chunk_size: int = 1 << 20) -> None:
    """Raise DataError with byte offset and line if ``path`` is not valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    newlines = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                buffer = pending + chunk
                bad = offset - len(pending) + exc.start
                line = newlines + buffer[: exc.start].count(b"\n") + 1
                raise DataError(
                    f"{path.name}: byte 0x{buffer[exc.start]:02x} at byte offset {bad} "
                    f"(line {line}) is not valid UTF-8. Re-export the file with UTF-8 "
                    "encoding."
                ) from None
            if not chunk:
                return
            offset += len(chunk)
            newlines += chunk.count(b"\n")


def read_first_record(path: Path) -> list[str] | None:
    """Return the first non-blank CSV record of ``path``, or None if there is none."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for record in csv.reader(handle):
            if record:
                return record
    return None


def check_column_names(source: str, names: Sequence[str]) -> None:
    """Raise DataError for duplicate or empty column names."""
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DataError(
            f"{source}: duplicate column names {duplicates}. Rename the columns so "
            "that every name is unique."
        )
    blank = [i + 1 for i, n in enumerate(names) if not n.strip()]
    if blank:
        raise DataError(
            f"{source}: column(s) {blank} have an empty name. Name every column (an "
            "unnamed first column is usually a saved index: export with index=False)."
        )


def find_ragged_row(path: Path, expected: int) -> tuple[int, int] | None:
    """Return ``(line, fields)`` of the first non-blank record without ``expected`` fields."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        for record in reader:
            if record and len(record) != expected:
                return reader.line_num, len(record)
    return None


def csv_engine() -> str:
    """Return "pyarrow" (multi-threaded) when pyarrow is importable, else "c"."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return "c"
    return "pyarrow"


def read_csv_file(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read one CSV file as text; the index is ``(file, line)`` of each record.

    ``columns`` gives the names of a file without a header row. Line numbers assume
    one physical line per record (no embedded newlines, no blank lines).
    """
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: file is empty. Remove it or export the data again.")
    check_utf8(path)
    first = read_first_record(path)
    if first is None:
        raise DataError(
            f"{path.name}: file has no records (only blank lines). Remove it or export "
            "the data again."
        )
    if columns is None:
        names = first
        check_column_names(path.name, names)
    else:
        names = list(columns)
        if first == names:
            raise DataError(
                f"{path.name}: line 1 repeats the --columns names, so the file has a "
                "header row. Drop --columns (data.columns in the config) for files "
                "with a header."
            )
        if len(first) != len(names):
            raise DataError(
                f"{path.name}: --columns names {len(names)} columns but line 1 has "
                f"{len(first)} fields. Give one name per field in data.columns."
            )
    engine = csv_engine()
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            engine=engine,
            header=0 if columns is None else None,
            names=None if columns is None else names,
        )
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path.name}: file is empty. Remove it or export the data again."
        ) from None
    except (pd.errors.ParserError, ValueError) as exc:
        _raise_if_ragged(path, len(names))
        raise DataError(
            f"{path.name}: could not be parsed as CSV ({exc}). Check delimiters and "
            "quoting; the file must be comma-separated with double-quoted text."
        ) from None
    if engine == "c":  # the C engine silently pads short rows; find them ourselves
        _raise_if_ragged(path, len(names))
    if frame.empty:
        raise DataError(
            f"{path.name}: file has a header row but no data rows. Export the data "
            "again with its rows."
        )
    first_line = 2 if columns is None else 1
    frame.index = pd.MultiIndex.from_arrays(
        [np.full(len(frame), path.name, dtype=object), np.arange(len(frame)) + first_line],
        names=[FILE_COLUMN, LINE_COLUMN],
    )
    return frame


def _raise_if_ragged(path: Path, expected: int) -> None:
    ragged = find_ragged_row(path, expected)
    if ragged is not None:
        line, fields = ragged
        raise DataError(
            f"{path.name}: line {line} has {fields} fields but the header has "
            f"{expected}. Fix that row (quote values containing commas) or remove it."
        )


def read_dataset(input_path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and concatenate every CSV file of ``input_path`` (sorted by path)."""
    if columns is not None:
        check_column_names("--columns", columns)
    frames: list[pd.DataFrame] = []
    for path in list_csv_files(input_path):
        frame = read_csv_file(path, columns)
        if frames and list(frame.columns) != list(frames[0].columns):
            first = frames[0].index[0][0]
            raise DataError(
                f"{path.name}: columns {list(frame.columns)} differ from those of "
                f"{first} {list(frames[0].columns)}. All input files must have the same "
                "columns in the same order."
            )
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pd.concat(frames)


def describe_row(label: Any) -> str:
    """Return ``"file.csv line N"`` for an index label of :func:`read_dataset`."""
    if isinstance(label, tuple) and len(label) == 2:
        return f"{label[0]} line {label[1]}"
    return f"row {label}"


# --------------------------------------------------------------------------- target


def drop_missing_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    """Check that ``target`` exists; return the rows that have a target and the drop count."""
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        hint = ""
        if len(frame.columns) == 1 and any(d in frame.columns[0] for d in ";\t|"):
            hint = " The file looks like it is not comma-separated; export it as CSV."
        raise DataError(
            f"{_source(frame)}: target column {target!r} not found; columns are "
            f"[{columns}]. Set data.target in the config to one of them.{hint}"
        )
    missing = frame[target].isna()
    return frame.loc[~missing], int(missing.sum())


def encode_binary_target(
    values: pd.Series, positive_class: str | None = None
) -> tuple[pd.Series, dict[str, int]]:
    """Encode a two-valued target as 0/1; return the codes and ``{original: code}``."""
    classes = list(pd.unique(values.dropna()))
    source = _source(values)
    if len(classes) != 2:
        shown = ", ".join(repr(c) for c in sorted(classes, key=str)[:20])
        raise DataError(
            f"{source}: binary target {values.name!r} has {len(classes)} distinct "
            f"value(s) [{shown}]; exactly 2 are needed. Fix the labels or set "
            "problem_type to regression."
        )
    numbers = pd.to_numeric(pd.Series(classes), errors="coerce")
    if numbers.notna().all():
        ordered = [c for _, c in sorted(zip(numbers.tolist(), classes, strict=True))]
    else:
        ordered = sorted(classes)
    positive = ordered[1]
    if positive_class is not None:
        positive = _match_class(positive_class, ordered, source, str(values.name))
    mapping = {str(c): int(c == positive) for c in ordered}
    return values.map(mapping).astype("int64"), mapping


def _match_class(wanted: str, classes: list[str], source: str, name: str) -> str:
    for value in classes:
        if value == wanted:
            return value
    wanted_number = pd.to_numeric(pd.Series([wanted]), errors="coerce").iloc[0]
    for value in classes:
        number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        if not pd.isna(number) and number == wanted_number:
            return value
    raise DataError(
        f"{source}: positive class {wanted!r} is not a value of target {name!r} "
        f"(values: {classes}). Set data.positive_class to one of them."
    )


def encode_regression_target(values: pd.Series) -> pd.Series:
    """Parse a regression target as finite floats; name the first bad value and line."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{describe_row(values.index[position])}: regression target "
            f"{values.name!r} has value {values.iloc[position]!r}, which is not a "
            f"finite number ({int(bad.sum())} such row(s)). Fix or remove these rows, "
            "or set problem_type to binary for a two-class label."
        )
    return pd.Series(numbers, index=values.index, name=values.name)


def prepare_target(
    frame: pd.DataFrame,
    target: str,
    problem_type: str,
    positive_class: str | None = None,
) -> TargetEncoding:
    """Drop rows without a target and encode it (0/1 for binary, float for regression)."""
    if problem_type not in PROBLEM_TYPES:
        raise DataError(
            f"problem type {problem_type!r} is not supported. Use one of {PROBLEM_TYPES}."
        )
    if positive_class is not None and problem_type != BINARY:
        raise DataError(
            f"positive class {positive_class!r} was given for a {problem_type} problem. "
            "Remove data.positive_class or set problem_type to binary."
        )
    kept, dropped = drop_missing_target(frame, target)
    if kept.empty:
        raise DataError(
            f"{_source(frame)}: target column {target!r} is empty in every row. Fill "
            "in the target or choose another column."
        )
    mapping = None
    if problem_type == BINARY:
        encoded, mapping = encode_binary_target(kept[target], positive_class)
    else:
        encoded = encode_regression_target(kept[target])
    kept = kept.assign(**{target: encoded})
    return TargetEncoding(frame=kept, class_mapping=mapping, dropped_rows=dropped)


# --------------------------------------------------------------------------- features


def infer_feature_types(features: pd.DataFrame) -> FeatureTypes:
    """Type each column as numeric or categorical; error on mostly-numeric text columns."""
    if features.shape[1] == 0:
        raise DataError(
            "the data has no feature columns besides the target. Add feature columns "
            "to the input files."
        )
    empty = [str(c) for c in features.columns if features[c].isna().all()]
    if empty:
        raise DataError(
            f"{_source(features)}: feature column(s) {empty} are empty in every row "
            "that has a target. Remove them from the input data (or from --columns)."
        )
    numeric: list[str] = []
    categorical: list[str] = []
    for name in features.columns:
        column = features[name]
        if pd.api.types.is_bool_dtype(column):
            categorical.append(name)
            continue
        values = column.dropna()
        parsed = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        ok = np.isfinite(parsed)
        share = float(ok.mean())
        if share == 1.0:
            numeric.append(name)
        elif share >= NUMERIC_SHARE_FOR_ERROR:
            position = int(np.flatnonzero(~ok)[0])
            raise DataError(
                f"{describe_row(values.index[position])}: column {name!r} is "
                f"{share:.1%} numeric but has value {values.iloc[position]!r} "
                f"({int((~ok).sum())} non-numeric value(s)). Fix or blank these values "
                "so the column is numeric."
            )
        else:
            categorical.append(name)
    return FeatureTypes(columns=list(features.columns), numeric=numeric, categorical=categorical)


def coerce_features(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """Return the feature columns typed as the transformer expects.

    Numeric columns become float64 (unparseable or infinite values become NaN);
    categorical columns become object columns of ``str`` with NaN for missing values.
    Kept identical in train.py and inference.py.
    """
    out: dict[str, Any] = {}
    for name in numeric:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        out[name] = np.where(np.isfinite(values), values, np.nan)
    for name in categorical:
        column = frame[name]
        present = column.notna().to_numpy()
        values = np.full(len(column), np.nan, dtype=object)
        values[present] = column[present].astype(str).to_numpy(dtype=object)
        out[name] = pd.Series(values, index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index)[list(numeric) + list(categorical)]


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
            f"{_source(frame)}: {len(frame)} row(s) with a target are too few to split "
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
                    f"{_source(frame)}: the {name} split has only one class; each split "
                    "needs both. Add rows of the rarer class or change the fractions."
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
            f"{_source(frame)}: target class {counts.idxmin()} has {int(counts.min())} "
            f"row(s); every split needs both classes, so each class needs at least "
            f"{needed} rows with validation fraction {validation_fraction} and test "
            f"fraction {test_fraction}. Add rows of that class or change the fractions."
        )


# --------------------------------------------------------------------------- transformer


def build_transformer(numeric: Sequence[str], categorical: Sequence[str]) -> Any:
    """Return an unfitted ColumnTransformer (median / most-frequent + one-hot), dense output."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical_pipeline = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), list(numeric)),
            ("categorical", categorical_pipeline, list(categorical)),
        ],
        sparse_threshold=0.0,
    )


def fit_transformer(train: pd.DataFrame, types: FeatureTypes) -> Any:
    """Fit :func:`build_transformer` on the train features only."""
    transformer = build_transformer(types.numeric, types.categorical)
    transformer.fit(coerce_features(train, types.numeric, types.categorical))
    return transformer


def build_schema(
    target: str,
    problem_type: str,
    types: FeatureTypes,
    class_mapping: dict[str, int] | None,
    splits: Splits,
    dropped_rows: int,
) -> dict[str, Any]:
    """Return the schema.json content describing the features and the target."""
    return {
        "target": target,
        "problem_type": problem_type,
        "feature_columns": types.columns,
        "numeric_columns": list(types.numeric),
        "categorical_columns": list(types.categorical),
        "class_mapping": class_mapping,
        "rows": splits.rows(),
        "dropped_rows_missing_target": dropped_rows,
    }


# --------------------------------------------------------------------------- writing


def output_paths(output_root: Path) -> dict[str, Path]:
    """Return the file path of every output, keyed by file name."""
    return {
        TRAIN_FILE: output_root / TRAIN / TRAIN_FILE,
        VALIDATION_FILE: output_root / VALIDATION / VALIDATION_FILE,
        TEST_FILE: output_root / TEST / TEST_FILE,
        SCORING_FILE: output_root / SCORING / SCORING_FILE,
        TRANSFORMER_FILE: output_root / TRANSFORMER / TRANSFORMER_FILE,
        SCHEMA_FILE: output_root / TRANSFORMER / SCHEMA_FILE,
    }


def write_files_atomically(writers: dict[Path, Callable[[Path], object]]) -> None:
    """Write every file to a temporary name, then rename all into place.

    If any writer fails, the temporary files are removed and nothing is renamed.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, write in writers.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
            staged.append((temporary, path))
            write(temporary)
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    for temporary, path in staged:
        os.replace(temporary, path)


def split_frame(part: pd.DataFrame, target: str, features: Sequence[str]) -> pd.DataFrame:
    """Return the split's columns as written: target first, then the raw features."""
    return part[[target, *features]]


def write_outputs(
    output_root: Path,
    splits: Splits,
    transformer: Any,
    schema: dict[str, Any],
) -> dict[str, Path]:
    """Write the splits, scoring file, transformer and schema; return the paths."""
    import joblib

    target = schema["target"]
    features = schema["feature_columns"]
    paths = output_paths(output_root)

    def csv_writer(frame: pd.DataFrame, header: bool) -> Callable[[Path], object]:
        return lambda path: frame.to_csv(path, index=False, header=header)

    def dump_transformer(path: Path) -> None:
        with path.open("wb") as handle:
            joblib.dump(transformer, handle)

    def dump_schema(path: Path) -> None:
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")

    write_files_atomically(
        {
            paths[TRAIN_FILE]: csv_writer(split_frame(splits.train, target, features), True),
            paths[VALIDATION_FILE]: csv_writer(
                split_frame(splits.validation, target, features), True
            ),
            paths[TEST_FILE]: csv_writer(split_frame(splits.test, target, features), True),
            paths[SCORING_FILE]: csv_writer(splits.test[list(features)], False),
            paths[TRANSFORMER_FILE]: dump_transformer,
            paths[SCHEMA_FILE]: dump_schema,
        }
    )
    return paths


# --------------------------------------------------------------------------- job


def run(
    input_path: Path,
    output_root: Path,
    target: str,
    problem_type: str,
    columns: Sequence[str] | None = None,
    positive_class: str | None = None,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = DEFAULT_SEED,
    data_version: str = DEFAULT_DATA_VERSION,
) -> dict[str, Any]:
    """Validate, split, fit and write everything; return the schema written."""
    frame = read_dataset(input_path, columns)
    encoded = prepare_target(frame, target, problem_type, positive_class)
    if encoded.dropped_rows:
        logger.warning("dropped %d row(s) with a missing target %r", encoded.dropped_rows, target)
    types = infer_feature_types(encoded.frame.drop(columns=[target]))
    splits = split_dataset(
        encoded.frame, target, problem_type, validation_fraction, test_fraction, seed
    )
    transformer = fit_transformer(splits.train, types)
    schema = build_schema(
        target, problem_type, types, encoded.class_mapping, splits, encoded.dropped_rows
    )
    schema["data_version"] = data_version
    write_outputs(output_root, splits, transformer, schema)
    return schema


def write_failure_reason(message: str) -> None:
    """Write ``message`` to the file named by $SM_FAILURE_REASON_FILE, if set."""
    target = os.environ.get(FAILURE_REASON_ENV)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(message + "\n", encoding="utf-8")


def _source(data: pd.DataFrame | pd.Series) -> str:
    if isinstance(data.index, pd.MultiIndex) and FILE_COLUMN in data.index.names:
        files = list(dict.fromkeys(data.index.get_level_values(FILE_COLUMN)))
        return ", ".join(map(str, files[:3])) + (" ..." if len(files) > 3 else "")
    return "input data"


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that also records usage errors as the job's failure reason."""

    def error(self, message: str) -> NoReturn:
        write_failure_reason(f"{self.prog}: {message}")
        super().error(message)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not strictly between 0 and 1")
    return value


def _column_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",")]


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of the job."""
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=Path(INPUT_DIR))
    parser.add_argument("--output-root", type=Path, default=Path(OUTPUT_ROOT))
    parser.add_argument("--target", required=True)
    parser.add_argument("--problem-type", required=True, choices=PROBLEM_TYPES)
    parser.add_argument(
        "--columns",
        type=_column_list,
        default=None,
        help="comma-separated names, only for files without a header row",
    )
    parser.add_argument("--positive-class", default=None)
    parser.add_argument(
        "--validation-fraction", type=_fraction, default=DEFAULT_VALIDATION_FRACTION
    )
    parser.add_argument("--test-fraction", type=_fraction, default=DEFAULT_TEST_FRACTION)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--data-version",
        default=DEFAULT_DATA_VERSION,
        help="which data the input URI held (recorded in schema.json; part of the cache key)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the preprocessing job; return 0, or 2 after reporting a data error."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.validation_fraction + args.test_fraction >= 1.0:
        parser.error("--validation-fraction plus --test-fraction must be below 1")
    try:
        schema = run(
            input_path=args.input_dir,
            output_root=args.output_root,
            target=args.target,
            problem_type=args.problem_type,
            columns=args.columns,
            positive_class=args.positive_class,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            seed=args.seed,
            data_version=args.data_version,
        )
    except DataError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        write_failure_reason(str(exc))
        return ERROR_EXIT_CODE
    rows = schema["rows"]
    print(
        f"rows: {TRAIN}={rows[TRAIN]} {VALIDATION}={rows[VALIDATION]} {TEST}={rows[TEST]}"
        f" (dropped {schema['dropped_rows_missing_target']} with a missing target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
