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
  row, encoded target first, then the features as read (numbers as numbers); ``scoring``:
  one file per scoring input (or ``scoring.csv``), features only, no header (batch-transform
  input); ``transformer``: ``transformer.joblib`` and ``schema.json``.
* Across hosts (``--stage``; the pipeline's Profile, Preprocess and FitTransformer steps,
  ``PreprocessInstanceCount``): ``profile``, each host its files (``profile/``); ``split``,
  each host its files, typed and checked by every host's profile merged (tabular.parts), its
  files named after the host (tabular.names), its train statistics in ``stats/``; ``fit``, one
  host: every host's statistics merged, the transformer fitted. ``all`` (the default, by
  hand) runs the three on one host; the result is the same whatever the number of hosts.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabular import csvio, features, memory, values
from tabular.cluster import Cluster, read_cluster
from tabular.contract import PROCESSING_CONFIG_DIR
from tabular.dialect import Dialect
from tabular.errors import FILE_LEVEL, LINE_LEVEL, DataError, describe_source
from tabular.feature_types import FeatureTypes, TypeProfile, warn_missing_spellings
from tabular.files import atomic_path
from tabular.job import PROCESSING, JobParser, run_job
from tabular.names import (
    BASELINE,
    BASELINE_FILE,
    BINARY,
    DATA_DIR,
    DEFAULT_DATA_VERSION,
    PREPROCESS_OUTPUT_ROOT,
    PROBLEM_TYPES,
    PROFILE,
    PROFILE_DIR,
    PROFILE_FILE,
    SCHEMA_FILE,
    SCORING,
    SCORING_FILE,
    SPLITS,
    STAGE_FIT,
    STAGE_PROFILE,
    STAGE_SPLIT,
    STATS,
    STATS_DIR,
    STATS_FILE,
    TEST,
    TOP_K,
    TRAIN,
    TRANSFORMER,
    TRANSFORMER_FILE,
    VALIDATION,
    host_file,
    shard_file,
    split_file,
)
from tabular.partition import FileCursor
from tabular.parts import ProfilePart, merge_parts, read_parts, write_part
from tabular.settings import Settings
from tabular.stats import TrainStats, check_observed, fit_transformer, merge
from tabular.target import drop_missing_target, encode_binary_target, encode_regression_target

MAX_CLASSES_SHOWN = 1000
"""A binary target is refused once this many distinct values are found."""
logger = logging.getLogger(__name__)


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


def check_split_input(
    source: str,
    class_counts: Counter[str],
    binary: bool,
    validation_fraction: float,
    test_fraction: float,
) -> None:
    """Refuse too few rows (or, for binary targets, too few of a class) for three splits."""
    rows = sum(class_counts.values())
    needed = minimum_rows(validation_fraction, test_fraction, 2 if binary else 1)
    if rows < needed:
        raise DataError(
            f"{source}: {rows} row(s) with a target are too few to split "
            f"with validation fraction {validation_fraction} and test fraction "
            f"{test_fraction}; at least {needed} are needed. Add rows or change the "
            "fractions."
        )
    if not binary:
        return
    smallest = min(validation_fraction, test_fraction, 1 - validation_fraction - test_fraction)
    needed = max(3, math.ceil(1 / smallest))
    label, count = min(class_counts.items(), key=lambda item: (item[1], item[0]))
    if count < needed:
        raise DataError(
            f"{source}: target class {label} has {count} row(s); every split needs both "
            f"classes, so each class needs at least {needed} rows with validation fraction "
            f"{validation_fraction} and test fraction {test_fraction}. Add rows of that class "
            "or change the fractions."
        )


def check_splits(source: str, counts: dict[str, Counter[str]], binary: bool) -> None:
    """Every split has rows, and both classes when the target is binary."""
    for name in SPLITS:
        if not counts[name]:
            raise DataError(
                f"{source}: the {name} split has no rows; add rows or change the fractions."
            )
        if binary and len(counts[name]) < 2:
            raise DataError(
                f"{source}: the {name} split has only one class; each "
                "split needs both. Add rows of the rarer class or change the fractions."
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


# --------------------------------------------------------------------------- schema


def build_schema(
    settings: Settings,
    types: FeatureTypes,
    class_mapping: dict[str, int] | None,
    rows: dict[str, int],
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
        "rows": rows,
        "dropped_rows_missing_target": dropped_rows,
        "missing_values": list(settings.dialect.missing_values),
        "matrix_layout": layout,
        "category_counts": category_counts or {},
        "high_cardinality": settings.high_cardinality,
        "max_categories": settings.max_categories,
        "dropped_columns": list(settings.drop_columns),
    }


# --------------------------------------------------------------------------- streaming


@dataclass
class Chunk:
    """Rows of one input file with a target: features as text (float64 where the reader
    parsed a column as numbers), the target cleaned."""

    features: pd.DataFrame
    labels: pd.Series
    cursor: FileCursor
    input_columns: list[str]
    """The file's columns, as read."""


def labelled_chunks(
    input_path: Path,
    settings: Settings,
    block_size: int,
    dropped: list[int] | None = None,
    numbers: Sequence[str] = (),
    guess_numbers: bool = False,
) -> Iterator[Chunk]:
    """Every input file in chunks, rows without a target left out (counted in ``dropped``);
    ``numbers``: columns parsed as numbers as they are read; ``guess_numbers``: every feature
    column not listed as categorical parsed so while it holds only numbers (the first read,
    before the types are known; :func:`tabular.csvio.read_chunks`).
    """
    dialect = settings.dialect
    if settings.columns is not None:
        csvio.check_column_names("data.columns", settings.columns)
    root = input_path if input_path.is_dir() else input_path.parent
    not_numbers = {settings.target, *settings.drop_columns, *settings.categorical_columns}
    first: tuple[str, list[str]] | None = None
    for path in csvio.list_csv_files(input_path):
        cursor = FileCursor(path.relative_to(root).as_posix(), settings.seed)
        maybe = (
            [n for n in csvio.column_names(path, dialect, settings.columns)
             if n and n not in not_numbers]
            if guess_numbers
            else []
        )  # fmt: skip
        chunks = csvio.read_chunks(path, dialect, settings.columns, block_size, numbers, maybe)
        for frame in chunks:
            columns = [str(c) for c in frame.columns]
            if first is None:
                first = (path.name, columns)
                check_drop_columns(path.name, columns, settings.drop_columns, settings.target)
            elif columns != first[1]:
                raise DataError(
                    f"{path.name}: columns {columns} differ from those of "
                    f"{first[0]} {first[1]}. All input files must have the same "
                    "columns in the same order."
                )
            kept, missing = drop_missing_target(frame, settings.target, dialect)
            if dropped is not None:
                dropped[0] += missing
            labels = kept[settings.target]
            text = kept.drop(columns=[settings.target, *settings.drop_columns])
            yield Chunk(text, labels, cursor, columns)


def check_drop_columns(source: str, columns: Sequence[str], names: Sequence[str], target: str):
    """``data.drop_columns`` must name columns of the data, and not the target."""
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise DataError(
            f"{source}: data.drop_columns names {unknown}, which are not "
            f"columns of the data (columns: {list(columns)}). Fix data.drop_columns."
        )
    if target in names:
        raise DataError(f"data.drop_columns names the target {target!r}; remove it from the list.")


def drop_columns(frame: pd.DataFrame, names: Sequence[str], target: str) -> pd.DataFrame:
    """Remove ``data.drop_columns``; each must be a column and none the target."""
    check_drop_columns(describe_source(frame), list(frame.columns), names, target)
    return frame.drop(columns=list(names))


@dataclass
class Profile:
    """The first pass: feature types, target classes and rows per split."""

    types: FeatureTypes
    class_mapping: dict[str, int] | None
    rows: dict[str, Counter[str]]
    dropped_rows: int
    source: str
    input_columns: list[str]
    plain_numbers: list[str]


def profile_part(input_path: Path, settings: Settings, block_size: int) -> ProfilePart:
    """Read the input once: type the features, gather the target's classes, count the splits
    (the part of :func:`profile` one host does on its files; :func:`finish_profile` checks)."""
    binary = settings.problem_type == BINARY
    dropped = [0]
    part = ProfilePart(TypeProfile(settings.dialect, settings.categorical_columns))
    for chunk in labelled_chunks(input_path, settings, block_size, dropped, guess_numbers=True):
        if part.first_file is None:
            part.input_columns, part.first_file = chunk.input_columns, chunk.cursor.name
        if len(chunk.labels) == 0:
            continue
        part.typing.add(chunk.features)
        labels = class_labels(chunk.labels, settings)
        for label, at in zip(*np.unique(labels, return_index=True), strict=True):
            part.first_label.setdefault(str(label), chunk.labels.index[at])
        if binary and len(part.first_label) > MAX_CLASSES_SHOWN:
            break  # refused by finish_profile with the values found
        part.classes.update(Counter(labels.tolist()))
        codes = chunk.cursor.splits(labels, settings.validation_fraction, settings.test_fraction)
        for code, name in enumerate(SPLITS):
            part.rows[name].update(Counter(labels[codes == code].tolist()))
    part.dropped = dropped[0]
    return part


def finish_profile(part: ProfilePart, settings: Settings) -> Profile:
    """The profile of the whole input (one part, or every host's merged): check the target and
    the splits, decide the feature types and the class mapping."""
    binary = settings.problem_type == BINARY
    source = part.typing.source
    if not part.classes:
        raise DataError(
            f"{source}: target column {settings.target!r} is empty in every row. Fill "
            "in the target or choose another column."
        )
    mapping = None
    if binary:
        found = pd.Series(list(part.first_label), index=pd.MultiIndex.from_tuples(
            list(part.first_label.values()), names=[FILE_LEVEL, LINE_LEVEL]),
            name=settings.target, dtype=object)  # fmt: skip
        mapping = encode_binary_target(found, settings.positive_class)[1]
    classes, rows = part.classes, part.rows
    check_split_input(source, classes, binary, settings.validation_fraction, settings.test_fraction)
    check_splits(source, rows, binary)
    types = part.typing.types()
    return Profile(
        types, mapping, rows, part.dropped, source, part.input_columns,
        part.typing.plain_numbers(types.numeric),
    )  # fmt: skip


def profile(input_path: Path, settings: Settings, block_size: int) -> Profile:
    """Read the input once: type the features, check the target, count the splits."""
    return finish_profile(profile_part(input_path, settings, block_size), settings)


def class_labels(labels: pd.Series, settings: Settings) -> np.ndarray:
    """The class of each row (its cleaned label) for a binary target; one class otherwise,
    after checking that every regression label is a number."""
    if settings.problem_type == BINARY:
        return labels.astype(object).to_numpy(dtype=object).astype(str)
    encode_regression_target(labels, settings.dialect)
    return np.full(len(labels), "", dtype=object).astype(str)


def encoded_target(labels: pd.Series, settings: Settings, mapping: dict[str, int] | None):
    """The target as written: 0/1 for binary, float64 for regression."""
    if mapping is not None:
        return labels.astype(object).map(mapping).to_numpy(dtype=np.int64)
    return encode_regression_target(labels, settings.dialect).to_numpy(dtype=np.float64)


class Outputs:
    """The output files, written as the chunks come: Parquet splits (train in shards), the
    baseline and scoring CSV files. Each is a temporary until :meth:`close` renames them all;
    on failure every temporary is removed (:func:`tabular.files.atomic_path`)."""

    def __init__(
        self, root: Path, stack: ExitStack, shards: int, score_test: bool, host: str = ""
    ) -> None:
        self.root, self.stack, self.shards, self.score_test = root, stack, shards, score_test
        self.host = host
        """One of several hosts: its name, in every file it writes (tabular.names)."""
        self.writers: dict[Path, Any] = {}

    def _writer(self, target: Path, table: Any, kind: str) -> Any:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        if target not in self.writers:
            temporary = self.stack.enter_context(atomic_path(target))
            if kind == "parquet":
                writer = pq.ParquetWriter(temporary, table.schema)
            else:
                options = pa_csv.WriteOptions(
                    include_header=kind == "csv-header", quoting_style="needed"
                )
                writer = pa_csv.CSVWriter(temporary, table.schema, write_options=options)
            self.stack.callback(writer.close)
            self.writers[target] = writer
        return self.writers[target]

    def close(self) -> None:
        """Finish every file written so far (they are renamed when the stack closes)."""
        for writer in self.writers.values():
            writer.close()  # once more at the stack's close: a no-op

    def write(self, target: Path, table: Any, kind: str) -> None:
        """Append a pyarrow table (:func:`arrow_table`) to ``target``."""
        self._writer(target, table, kind).write_table(table)

    def add(self, rows: pd.DataFrame, codes: np.ndarray, cursor: FileCursor) -> None:
        """Write a chunk's typed rows (target first) to their splits: converted to Arrow once,
        each split and shard taken from that (at 1M rows, 12 conversions per chunk had cost
        0.7 s of the pass's 4.8 s of CPU)."""
        table = arrow_table(rows)
        train = table.take(np.flatnonzero(codes == 0))
        if len(train):
            write_train_shards(self, train, cursor.shards(len(train), self.shards))
            self.write(
                self.root / BASELINE / host_file(BASELINE_FILE, self.host), train, "csv-header"
            )
        for code, name in ((1, VALIDATION), (2, TEST)):
            part = table.take(np.flatnonzero(codes == code))
            if len(part):
                self.write(self.root / name / split_file(name, self.host), part, "parquet")
            if code == 2 and self.score_test and len(part):
                scored = part.drop_columns(part.column_names[0])  # features only
                self.write(self.root / SCORING / host_file(SCORING_FILE, self.host), scored, "csv")


def arrow_table(frame: pd.DataFrame) -> Any:
    """``frame`` as a pyarrow table, as written (no index). A column of categories with no
    value in the frame is text still: pyarrow would type it null, and every chunk appends to
    the same files, whose column types the first chunk fixed."""
    import pyarrow as pa

    # One thread: a chunk is small, and a thread pool per call (pyarrow's default) cost more
    # than it saved (about 300 pools per 1M rows).
    table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
    for at, column in enumerate(table.schema):
        if pa.types.is_null(column.type):
            table = table.set_column(at, column.name, table.column(at).cast(pa.string()))
    return table


def write_train_shards(outputs: Outputs, train: Any, shards: np.ndarray) -> None:
    """The train rows (a pyarrow table) into ``train-part-NNNNN.parquet`` files, each row in
    its shard."""
    for index in np.unique(shards):
        path = outputs.root / TRAIN / shard_file(TRAIN, int(index), host=outputs.host)
        outputs.write(path, train.take(np.flatnonzero(shards == index)), "parquet")


def typed_rows(chunk: Chunk, types: FeatureTypes, settings: Settings, mapping: Any):
    """A chunk as written: the encoded target, then the typed features in file order."""
    typed = values.coerce_features(
        chunk.features, types.numeric, types.categorical, settings.dialect
    )[types.columns]
    target = encoded_target(chunk.labels, settings, mapping)
    return typed, pd.concat(
        [pd.DataFrame({settings.target: target}, index=typed.index), typed], axis=1
    )


# --------------------------------------------------------------------------- job


def run(
    input_path: Path,
    output_root: Path,
    settings: Settings,
    data_version: str = DEFAULT_DATA_VERSION,
    scoring_path: Path | None = None,
    block_size: int = csvio.DEFAULT_BLOCK_SIZE,
) -> dict[str, Any]:
    """Validate, split, fit and write everything; return the schema written.

    Two passes over the input, a chunk at a time: :func:`profile` types the features and
    checks the target and the splits; the second pass (:func:`split`) writes each row to its
    split and gathers the train statistics the transformer is fitted from (:func:`fit`,
    :mod:`tabular.stats`). Nothing is published unless everything succeeds. (Across hosts the
    same three parts run as three steps: :func:`main`'s ``--stage``.)
    """
    found = profile(input_path, settings, block_size)
    memory.release()
    with ExitStack() as stack:
        stats = split(input_path, output_root, settings, found, stack, scoring_path, block_size)
        memory.release()  # before scikit-learn is imported (tabular.memory)
        return fit(output_root, settings, found, stats, data_version, stack)


def split(
    input_path: Path | None,
    output_root: Path,
    settings: Settings,
    found: Profile,
    stack: ExitStack,
    scoring_path: Path | None = None,
    block_size: int = csvio.DEFAULT_BLOCK_SIZE,
    host: str = "",
    score_test: bool = True,
) -> TrainStats:
    """The second pass: every row of ``input_path`` (None: a host given no file) written to
    its split, typed as ``found`` says; the scoring data (if any) checked first and written
    too, else (unless ``score_test`` is false: another host has the scoring data) the test
    rows' features. Files are published when ``stack`` closes. Returns the train split's
    statistics."""
    types = found.types
    scoring = (
        read_scoring(scoring_path, settings, types, found.input_columns) if scoring_path else None
    )
    stats = TrainStats()
    outputs = Outputs(
        output_root, stack, settings.train_shards, score_test and scoring is None, host
    )
    chunks = (
        labelled_chunks(input_path, settings, block_size, None, found.plain_numbers)
        if input_path is not None
        else ()
    )
    for chunk in chunks:
        if len(chunk.labels) == 0:
            continue
        typed, rows = typed_rows(chunk, types, settings, found.class_mapping)
        codes = chunk.cursor.splits(
            class_labels(chunk.labels, settings),
            settings.validation_fraction,
            settings.test_fraction,
        )
        stats = merge(stats, _chunk_stats(typed[codes == 0], types))
        outputs.add(rows, codes, chunk.cursor)
    for name, frame in (scoring or {}).items():
        outputs.write(output_root / SCORING / name, arrow_table(frame), "csv")
    outputs.close()
    return stats


def fit(
    output_root: Path,
    settings: Settings,
    found: Profile,
    stats: TrainStats,
    data_version: str,
    stack: ExitStack,
) -> dict[str, Any]:
    """Fit the transformer on the train split's statistics (all of them, merged) and write it
    with ``schema.json`` (published when ``stack`` closes); return the schema."""
    import joblib

    types = found.types
    _warn_spellings(stats, types.categorical)
    counts = features.check_cardinality_counts(
        found.source,
        {n: len(stats.categorical.get(n, {})) for n in types.categorical},
        settings.max_categories,
        settings.high_cardinality,
    )
    check_observed(found.source, stats, types.numeric, types.categorical)
    top_k = settings.max_categories if settings.high_cardinality == TOP_K else None
    transformer, layout = fit_transformer(stats, types.numeric, types.categorical, top_k)
    rows = {name: sum(found.rows[name].values()) for name in SPLITS}
    schema = build_schema(
        settings, types, found.class_mapping, rows, found.dropped_rows, layout, counts
    )
    schema["data_version"] = data_version
    transformer_dir = output_root / TRANSFORMER
    with stack.enter_context(atomic_path(transformer_dir / TRANSFORMER_FILE)).open("wb") as f:
        joblib.dump(transformer, f)
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    stack.enter_context(atomic_path(transformer_dir / SCHEMA_FILE)).write_text(
        text, encoding="utf-8"
    )
    return schema


def _chunk_stats(train: pd.DataFrame, types: FeatureTypes) -> TrainStats:
    stats = TrainStats()
    stats.add(train, types.numeric, types.categorical)
    return stats


def _warn_spellings(stats: TrainStats, categorical: Sequence[str]) -> None:
    """Log categories spelled like a missing value: kept, but worth a look."""
    warn_missing_spellings(
        pd.DataFrame({n: pd.Series(list(stats.categorical.get(n, {})), dtype=object)
                      for n in categorical}),
        categorical,
    )  # fmt: skip


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
    parser.add_argument(
        "--stage",
        choices=STAGES,
        default=ALL,
        help="all (one host, by hand), or one pass of a run across hosts: profile (each host "
        "its files), split (each host its files, with every host's profile), fit (one host, "
        "with every host's profile and statistics)",
    )
    parser.add_argument("--profile-dir", type=Path, default=Path(PROFILE_DIR))
    parser.add_argument("--stats-dir", type=Path, default=Path(STATS_DIR))
    parser.add_argument(
        "--resource-config-dir",
        type=Path,
        default=Path(PROCESSING_CONFIG_DIR),
        help="where the job's resourceconfig.json is (none: one host)",
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


ALL = "all"
STAGES = (ALL, STAGE_PROFILE, STAGE_SPLIT, STAGE_FIT)
PROFILE_FIX = "Connect the profile output of the Profile step (every host's) to this job."
STATS_FIX = "Connect the stats output of the Preprocess step (every host's) to this job."


def host_input(input_path: Path, cluster: Cluster) -> Path | None:
    """This host's files: ``input_path``, or None for one of several hosts given no object
    (ShardedByS3Key gives whole files, so N hosts need N files to all have work)."""
    if cluster.distributed and input_path.is_dir() and not any(input_path.rglob("*")):
        logger.warning(
            "%s received no input file: the job has %d hosts and fewer input files; it writes "
            "nothing (give at least one file per host)", cluster.current_host, len(cluster.hosts),
        )  # fmt: skip
        return None
    return input_path


def run_stage(args: argparse.Namespace, settings: Settings, cluster: Cluster) -> None:
    """One pass of Preprocess across hosts, on this host (``--stage``)."""
    host = cluster.current_host if cluster.distributed else ""
    input_path = host_input(args.input_dir, cluster)
    if args.stage == STAGE_PROFILE:
        part = (
            profile_part(input_path, settings, csvio.DEFAULT_BLOCK_SIZE)
            if input_path is not None
            else ProfilePart(TypeProfile(settings.dialect, settings.categorical_columns))
        )
        write_part(part, args.output_root / PROFILE, PROFILE_FILE, host)
        return
    parts = read_parts(args.profile_dir, PROFILE_FILE, PROFILE_FIX)
    found = finish_profile(merge_parts(parts), settings)
    with ExitStack() as stack:
        if args.stage == STAGE_SPLIT:
            scoring = args.scoring_dir if cluster.is_first else None  # read and written once
            stats = split(
                input_path, args.output_root, settings, found, stack, scoring,
                host=host, score_test=args.scoring_dir is None,
            )  # fmt: skip
        else:
            stats = TrainStats()
            for part in read_parts(args.stats_dir, STATS_FILE, STATS_FIX):
                stats = merge(stats, part)
            schema = fit(args.output_root, settings, found, stats, args.data_version, stack)
    if args.stage == STAGE_SPLIT:
        write_part(stats, args.output_root / STATS, STATS_FILE, host)
    else:
        print_rows(schema)


def print_rows(schema: dict[str, Any]) -> None:
    rows = schema["rows"]
    print(
        f"rows: {TRAIN}={rows[TRAIN]} {VALIDATION}={rows[VALIDATION]} {TEST}={rows[TEST]}"
        f" (dropped {schema['dropped_rows_missing_target']} with a missing target)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the preprocessing job; return 0, or 2 after reporting a data error."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def work() -> None:
        settings = settings_from_args(parser, args)
        memory.use_system_allocator()
        if args.stage != ALL:
            run_stage(args, settings, read_cluster(args.resource_config_dir))
            return
        schema = run(
            input_path=args.input_dir,
            output_root=args.output_root,
            settings=settings,
            data_version=args.data_version,
            scoring_path=args.scoring_dir,
        )
        print_rows(schema)

    return run_job(PROCESSING, work)


if __name__ == "__main__":
    sys.exit(main())
