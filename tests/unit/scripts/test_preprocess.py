"""Tests of scripts/preprocess.py: reading, validation, target encoding, split, outputs."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from scripts import preprocess as pp
from scripts.preprocess import DataError
from tabular import csvio, features, names, values
from tabular.contract import SM_OUTPUT_DIR as OUTPUT_DIR_ENV
from tabular.dialect import Dialect
from tabular.errors import describe_row
from tabular.feature_types import coerce_features, infer_feature_types
from tabular.files import write_all
from tabular.partition import FileCursor
from tabular.target import encode_binary_target, prepare_target

CsvDir = Callable[..., Path]


def _read(folder: Path, columns: list[str] | None = None, **dialect: str) -> pd.DataFrame:
    return pp.read_dataset(folder, Dialect(**dialect), columns)


# --------------------------------------------------------------------------- reading


def test_no_csv_file_names_the_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no \.csv file found.*notes\.txt"):
        _read(tmp_path)


def test_missing_input_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        _read(tmp_path / "absent")


def test_files_are_concatenated_in_name_order_with_line_index(job_csv_dir: CsvDir) -> None:
    job_csv_dir("a,y\n3,1\n4,0\n", "b.csv")
    folder = job_csv_dir("a,y\n1,0\n2,1\n", "a.csv")
    frame = _read(folder)
    assert frame["a"].tolist() == ["1", "2", "3", "4"]
    assert frame.index[2] == ("b.csv", 2)
    assert describe_row(frame.index[3]) == "b.csv line 3"


def test_a_single_file_path_is_accepted(job_csv_dir: CsvDir) -> None:
    folder = job_csv_dir("a,y\n1,0\n")
    assert _read(folder / "data.csv").shape == (1, 2)


def test_files_with_different_headers_are_rejected(job_csv_dir: CsvDir) -> None:
    job_csv_dir("a,y\n1,0\n", "a.csv")
    folder = job_csv_dir("a,z\n1,0\n", "b.csv")
    with pytest.raises(DataError, match=r"b\.csv: columns .* differ from those of a\.csv"):
        _read(folder)


def test_empty_file(job_csv_dir: CsvDir) -> None:
    with pytest.raises(DataError, match=r"data\.csv: file is empty"):
        _read(job_csv_dir(""))


def test_blank_lines_only(job_csv_dir: CsvDir) -> None:
    with pytest.raises(DataError, match="no records"):
        _read(job_csv_dir("\n\n"))


def test_header_only(job_csv_dir: CsvDir) -> None:
    with pytest.raises(DataError, match=r"data\.csv: file has a header row but no data rows"):
        _read(job_csv_dir("a,b,y\n"))


def test_duplicate_column_names(job_csv_dir: CsvDir) -> None:
    with pytest.raises(DataError, match=r"duplicate column names \['a'\].*Rename"):
        _read(job_csv_dir("a,b,a\n1,2,3\n"))


def test_an_index_saved_by_pandas_is_dropped(job_csv_dir: CsvDir) -> None:
    frame = _read(job_csv_dir(",a,y\n0,1,2\n1,3,4\n"))
    assert list(frame.columns) == ["a", "y"] and frame["a"].tolist() == ["1", "3"]


def test_an_unnamed_column_of_other_values_is_refused(job_csv_dir: CsvDir) -> None:
    with pytest.raises(DataError, match=r"column\(s\) \[1\] have an empty name.*index=False"):
        _read(job_csv_dir(",a,y\nx,1,2\n"))


@pytest.mark.parametrize("engine", ["pyarrow", "c"])
@pytest.mark.parametrize(
    ("text", "line", "fields"),
    [("a,b,y\n1,2,3\n4,5,6,7\n", 3, 4), ("a,b,y\n1,2,3\n4,5,6\n7,8\n", 4, 2)],
)
def test_ragged_row_reports_its_line(
    job_csv_dir: CsvDir,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    text: str,
    line: int,
    fields: int,
) -> None:
    monkeypatch.setattr(csvio, "csv_engine", lambda: engine)
    with pytest.raises(DataError, match=rf"line {line} has {fields} fields but the header has 3"):
        _read(job_csv_dir(text))


@pytest.mark.parametrize("engine", ["pyarrow", "c"])
def test_a_field_over_128_kib_is_data_and_a_ragged_row_after_it_still_named(
    job_csv_dir: CsvDir, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """Python's csv module refuses fields over 128 KiB by default (csv.Error, a traceback);
    a long free-text value is data, and the record checks read past it."""
    monkeypatch.setattr(csvio, "csv_engine", lambda: engine)
    long = "x" * 300_000
    frame = _read(job_csv_dir(f'a,b,y\n1,"{long}",0\n2,short,1\n'))
    assert frame["b"].str.len().tolist() == [300_000, 5]
    with pytest.raises(DataError, match=r"line 4 has 2 fields but the header has 3"):
        _read(job_csv_dir(f'a,b,y\n1,"{long}",0\n2,short,1\n3,4\n'))
    assert csvio.check_field_counts(f"1,{long}\n2,short\n")[0] == 2


def test_non_utf8_reports_offset_and_line(job_csv_dir: CsvDir) -> None:
    folder = job_csv_dir(b"a,y\n1,0\ncaf\xe9,1\n")
    with pytest.raises(DataError, match=r"byte 0xe9 at byte offset 11 \(line 3\).*UTF-8"):
        _read(folder)


def test_non_utf8_across_a_chunk_boundary(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a\n" + b"\xc3\xa9" * 10 + b"\xff\n")
    with pytest.raises(DataError, match=r"byte 0xff at byte offset 22 \(line 2\)"):
        csvio.check_utf8(path, chunk_size=3)
    path.write_bytes(b"a\n" + b"\xc3\xa9" * 10 + b"\n")
    csvio.check_utf8(path, chunk_size=3)


def test_utf8_bom_is_not_part_of_the_first_name(job_csv_dir: CsvDir) -> None:
    frame = _read(job_csv_dir("\ufeffa,y\n1,0\n".encode()))
    assert list(frame.columns) == ["a", "y"]


@pytest.mark.parametrize("engine", ["pyarrow", "c"])
def test_both_engines_read_the_same_text(
    job_csv_dir: CsvDir, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setattr(csvio, "csv_engine", lambda: engine)
    frame = _read(job_csv_dir('a,b,y\nNA,"x, y",1\n2020-01-01,,0\n007, True ,1\n'))
    assert frame["a"].tolist() == ["NA", "2020-01-01", "007"]  # NA is text, not missing
    assert pd.isna(frame["b"].iloc[1])
    assert frame["b"].iloc[0] == "x, y" and frame["b"].iloc[2] == " True "


def test_columns_option_reads_a_headerless_file(job_csv_dir: CsvDir) -> None:
    frame = _read(job_csv_dir("1,0\n2,1\n"), ["a", "y"])
    assert frame["a"].tolist() == ["1", "2"]
    assert frame.index[0] == ("data.csv", 1)


def test_columns_option_with_a_header_row_is_rejected(job_csv_dir: CsvDir) -> None:
    with pytest.raises(DataError, match="has a header row. Remove data.columns"):
        _read(job_csv_dir("a,y\n1,0\n"), ["a", "y"])


def test_columns_option_with_the_wrong_count(job_csv_dir: CsvDir) -> None:
    with pytest.raises(DataError, match="data.columns names 3 columns but line 1 has 2 fields"):
        _read(job_csv_dir("1,0\n"), ["a", "b", "y"])


# --------------------------------------------------------------------------- target


def _frame(**columns: list[object]) -> pd.DataFrame:
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
    frame = frame.astype(object).where(frame.notna(), np.nan)
    frame.index = pd.MultiIndex.from_arrays(
        [["d.csv"] * len(frame), np.arange(len(frame)) + 2], names=["file", "line"]
    )
    return frame


def test_target_missing_lists_the_columns() -> None:
    with pytest.raises(
        DataError,
        match=r"d\.csv: target column 'label' not found; columns are \[a, b\]\. "
        r"Set data\.target",
    ):
        prepare_target(_frame(a=["1"], b=["2"]), "label", "binary")


def test_semicolon_file_gets_the_delimiter_setting(job_csv_dir: CsvDir) -> None:
    with pytest.raises(DataError, match=r"splits into 2 fields at ';'. Set data.delimiter: ';'"):
        _read(job_csv_dir("a;label\n1,5;0\n"))


def test_binary_target_with_three_values_lists_them() -> None:
    frame = _frame(a=["1", "2", "3"], y=["cat", "dog", "fish"])
    with pytest.raises(DataError, match=r"3 distinct value\(s\) \['cat', 'dog', 'fish'\]"):
        prepare_target(frame, "y", "binary")


def test_binary_target_with_one_class_is_an_error() -> None:
    with pytest.raises(DataError, match=r"1 distinct value\(s\) \['yes'\]; exactly 2"):
        prepare_target(_frame(a=["1", "2"], y=["yes", "yes"]), "y", "binary")


def test_zero_one_targets_are_kept() -> None:
    codes, mapping = encode_binary_target(pd.Series(["1", "0", "1"], name="y"))
    assert codes.tolist() == [1, 0, 1]
    assert mapping == {"0": 0, "1": 1}


def test_other_labels_default_to_the_second_sorted_value() -> None:
    codes, mapping = encode_binary_target(pd.Series(["yes", "no", "no"], name="y"))
    assert codes.tolist() == [1, 0, 0]
    assert mapping == {"no": 0, "yes": 1}


def test_numeric_labels_sort_as_numbers() -> None:
    _, mapping = encode_binary_target(pd.Series(["10", "2"], name="y"))
    assert mapping == {"2": 0, "10": 1}


def test_positive_class_picks_the_one_class() -> None:
    codes, mapping = encode_binary_target(pd.Series(["yes", "no"], name="y"), "no")
    assert codes.tolist() == [0, 1]
    assert mapping == {"no": 1, "yes": 0}
    _, mapping = encode_binary_target(pd.Series(["0.0", "1.0"], name="y"), "1")
    assert mapping == {"0.0": 0, "1.0": 1}


def test_unknown_positive_class_is_an_error() -> None:
    with pytest.raises(DataError, match=r"positive class 'maybe' is not a value.*\['no', 'yes'\]"):
        encode_binary_target(pd.Series(["yes", "no"], name="y"), "maybe")


def test_positive_class_for_regression_is_an_error() -> None:
    with pytest.raises(DataError, match="positive class"):
        prepare_target(_frame(a=["1"], y=["2"]), "y", "regression", positive_class="2")


def test_regression_target_must_be_numeric() -> None:
    frame = _frame(a=["1", "2", "3"], y=["1.5", "n/a?", "2"])
    with pytest.raises(DataError, match=r"d\.csv line 3: regression target 'y': 'n/a\?' is not a"):
        prepare_target(frame, "y", "regression")


def test_rows_with_a_missing_target_are_dropped_and_counted() -> None:
    frame = _frame(a=["1", "2", "3", "4"], y=["0", None, "1", None])
    result = prepare_target(frame, "y", "binary")
    assert result.dropped_rows == 2
    assert result.frame["a"].tolist() == ["1", "3"]
    assert result.frame["y"].tolist() == [0, 1]


def test_a_target_missing_everywhere_is_an_error() -> None:
    with pytest.raises(DataError, match="empty in every row"):
        prepare_target(_frame(a=["1"], y=[None]), "y", "regression")


# --------------------------------------------------------------------------- features


def test_feature_types() -> None:
    frame = _frame(
        n=["1", "2.5", None, "-3e2"] * 3,
        c=["a", "b", "3", None] * 3,
        flag=["True", "False", "True", "True"] * 3,
    )
    types = infer_feature_types(frame)
    assert types.columns == ["n", "c", "flag"]
    assert types.numeric == ["n"]
    assert types.categorical == ["c", "flag"]


def test_mostly_numeric_column_with_text_names_value_and_line() -> None:
    frame = _frame(n=[str(i) for i in range(19)] + ["oops"])
    with pytest.raises(
        DataError, match=r"d\.csv line 21: column 'n' is numeric, but 'oops' is not a number"
    ):
        infer_feature_types(frame)


def test_infinite_values_count_as_bad_numbers() -> None:
    with pytest.raises(DataError, match="'inf' is not a finite number"):
        infer_feature_types(_frame(n=[str(i) for i in range(10)] + ["inf"]))


def test_all_null_feature_columns_are_named() -> None:
    frame = _frame(a=["1", "2"], empty=[None, None], gone=[None, None])
    with pytest.raises(DataError, match=r"\['empty', 'gone'\] are empty in every row.*Remove"):
        infer_feature_types(frame)


def test_no_feature_columns_is_an_error() -> None:
    with pytest.raises(DataError, match="no feature columns"):
        infer_feature_types(_frame(a=["1"]).drop(columns=["a"]))


def test_coerce_features_types_columns() -> None:
    frame = pd.DataFrame({"n": ["1", " 2e3 ", None, ""], "c": [" a ", None, "1", "NA"]})
    typed = coerce_features(frame, ["n"], ["c"])
    assert typed["n"].dtype == np.float64
    assert typed["n"].iloc[:2].tolist() == [1.0, 2000.0] and typed["n"].iloc[2:].isna().all()
    assert typed["c"].dtype == object
    assert typed["c"].tolist()[::2] == ["a", "1"] and typed["c"].iloc[1] is np.nan
    assert typed["c"].iloc[3] == "NA"


def test_coerce_features_refuses_text_in_a_numeric_column() -> None:
    frame = _frame(n=["1", "x"], c=["a", "b"])
    with pytest.raises(DataError, match=r"d\.csv line 3: column 'n' is numeric, but 'x'"):
        coerce_features(frame, ["n"], ["c"])


# --------------------------------------------------------------------------- split


def test_split_sizes_and_minimum_rows() -> None:
    assert pp.split_sizes(100, 0.15, 0.15) == (70, 15, 15)
    assert pp.split_sizes(100, 0.1, 0.2) == (70, 10, 20)
    assert pp.split_sizes(3, 0.15, 0.15) == (1, 1, 1)
    assert pp.minimum_rows(0.15, 0.15) == 3
    assert pp.minimum_rows(0.15, 0.15, per_split=2) == 7


def test_too_few_rows_says_how_many_are_needed() -> None:
    with pytest.raises(DataError, match=r"2 row\(s\) with a target are too few.*at least 3"):
        pp.check_split_input("d.csv", Counter({"": 2}), False, 0.15, 0.15)
    with pytest.raises(DataError, match="at least 7 are needed"):
        pp.check_split_input("d.csv", Counter({"0": 2, "1": 3}), True, 0.15, 0.15)


def test_rare_class_needs_enough_rows_for_every_split() -> None:
    with pytest.raises(DataError, match=r"class 1 has 3 row\(s\).*at least 7 rows"):
        pp.check_split_input("d.csv", Counter({"1": 3, "0": 50}), True, 0.15, 0.15)


def _codes(labels: np.ndarray, seed: int = 3, chunk: int | None = None) -> np.ndarray:
    cursor = FileCursor("data/a.csv", seed)
    step = chunk or len(labels)
    return np.concatenate(
        [cursor.splits(labels[i : i + step], 0.25, 0.2) for i in range(0, len(labels), step)]
    )


def test_binary_split_is_stratified_with_both_classes_everywhere() -> None:
    labels = np.array(["1"] * 8 + ["0"] * 32)
    codes = _codes(labels)
    for label, rows in (("1", 8), ("0", 32)):
        of_class = codes[labels == label]
        for code, fraction in ((0, 0.55), (1, 0.25), (2, 0.2)):
            assert abs((of_class == code).sum() - rows * fraction) <= 1.5


def test_a_split_is_decided_per_row_whatever_the_chunks() -> None:
    labels = np.random.default_rng(0).integers(0, 2, 5000).astype(str)
    whole = _codes(labels)
    np.testing.assert_array_equal(whole, _codes(labels, chunk=7))
    np.testing.assert_array_equal(whole, _codes(labels, chunk=1000))
    assert not np.array_equal(whole, _codes(labels, seed=4))
    for code, fraction in ((0, 0.55), (1, 0.25), (2, 0.2)):
        assert abs((whole == code).mean() - fraction) < 0.002


def test_train_rows_are_spread_evenly_over_the_shards() -> None:
    cursor = FileCursor("a.csv", 42)
    shards = np.concatenate([cursor.shards(n, 8) for n in (3, 10, 1, 50)])
    np.testing.assert_array_equal(np.bincount(shards, minlength=8), [8] * 8)


# --------------------------------------------------------------------------- transformer


def test_transformer_is_fitted_on_train_and_ignores_unseen_categories() -> None:
    train = coerce_features(pd.DataFrame({"n": ["1", "3", None], "c": ["a", "b", None]}),
                               ["n"], ["c"])  # fmt: skip
    transformer, layout = features.fit_transformer(train, ["n"], ["c"])
    assert layout == features.DENSE
    typed = coerce_features(pd.DataFrame({"n": [None], "c": ["zzz"]}), ["n"], ["c"])
    rows = features.feature_matrix(transformer, typed, ["n"], ["c"], layout)
    assert isinstance(rows, np.ndarray)  # dense: zeros stay zeros for XGBoost
    np.testing.assert_allclose(rows, [[2.0, 0.0, 0.0]])


def test_outputs_are_written_all_or_nothing(tmp_path: Path) -> None:
    def fail(path: Path) -> None:
        path.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_all(
            {tmp_path / "a" / "ok.csv": lambda p: p.write_text("x"), tmp_path / "b.csv": fail}
        )
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --------------------------------------------------------------------------- job


def _run(input_path: Path, output_root: Path, *extra: str, target: str = "churn") -> int:
    return pp.main(
        ["--input-dir", str(input_path), "--output-root", str(output_root), "--target", target]
        + list(extra)
    )


@pytest.mark.parametrize(("problem_type", "target"), [("binary", "churn"), ("regression", "price")])
def test_main_end_to_end(
    job_csv_dir: CsvDir,
    job_frame: Callable[..., pd.DataFrame],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    problem_type: str,
    target: str,
) -> None:
    frame = job_frame(problem_type, rows=200)
    frame.loc[3, target] = np.nan
    output = tmp_path / "output"
    code = _run(job_csv_dir(frame), output, "--problem-type", problem_type, target=target)
    assert code == 0
    out = capsys.readouterr().out
    schema = json.loads((output / "transformer" / names.SCHEMA_FILE).read_text())
    rows = schema["rows"]
    assert sum(rows.values()) == 199 and abs(rows["test"] - 30) <= 2  # per-row split
    assert f"rows: train={rows['train']} validation={rows['validation']}" in out
    assert "(dropped 1" in out

    files = sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
    assert files == [
        "baseline/baseline.csv",
        "scoring/scoring.csv",
        "test/test.parquet",
        *(f"train/train-part-{i:05d}.parquet" for i in range(8)),
        "transformer/schema.json",
        "transformer/transformer.joblib",
        "validation/validation.parquet",
    ]
    assert schema["target"] == target and schema["problem_type"] == problem_type
    assert schema["feature_columns"] == ["x1", "x2", "color", "plan"]
    assert schema["numeric_columns"] == ["x1", "x2"]
    assert schema["categorical_columns"] == ["color", "plan"]
    if problem_type == "binary":
        assert schema["class_mapping"] == {"no": 0, "yes": 1}
    else:
        assert schema["class_mapping"] is None

    train = pd.read_parquet(output / "train")
    assert list(train.columns) == [target, "x1", "x2", "color", "plan"]
    assert len(train) == rows["train"] and train["x1"].dtype == np.float64
    pd.testing.assert_frame_equal(
        pd.read_csv(output / "baseline" / names.BASELINE_FILE).sort_values(
            list(train.columns), ignore_index=True
        ),
        train.sort_values(list(train.columns), ignore_index=True),
        check_dtype=False,
    )
    if problem_type == "binary":
        assert set(train[target]) == {0, 1}
    test = pd.read_parquet(output / "test" / names.TEST_FILE)
    scoring = pd.read_csv(output / "scoring" / names.SCORING_FILE, header=None)
    assert scoring.shape == (rows["test"], 4)
    np.testing.assert_array_equal(scoring[1].to_numpy(), test["x2"].to_numpy())
    transformer = joblib.load(output / "transformer" / names.TRANSFORMER_FILE)
    numeric, categorical = schema["numeric_columns"], schema["categorical_columns"]
    typed = coerce_features(train, numeric, categorical)
    matrix = features.feature_matrix(transformer, typed, numeric, categorical)
    assert matrix.shape == (rows["train"], 2 + 3 + 2) and schema["matrix_layout"] == features.DENSE


def test_main_is_reproducible(job_csv_dir: CsvDir, tmp_path: Path) -> None:
    folder = job_csv_dir(pd.DataFrame({"a": range(40), "y": [0, 1] * 20}))
    for name in ("one", "two"):
        assert _run(folder, tmp_path / name, "--problem-type", "binary", target="y") == 0
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.*"))
    assert len(files) == 14
    for split in files:
        assert (tmp_path / "one" / split).read_bytes() == (tmp_path / "two" / split).read_bytes()


def test_a_category_empty_in_a_whole_chunk(job_csv_dir: CsvDir, tmp_path: Path) -> None:
    """A sparsely filled category (a note filled in late, a code dropped after a while) has
    no value in some chunks: its splits are written as text all along, as in one chunk."""
    rng = np.random.default_rng(2)
    rows = 3000
    late = np.full(rows, "", dtype=object)
    late[2500::7] = rng.choice(["vip", "new"], len(late[2500::7]))
    early = np.full(rows, "", dtype=object)
    early[:300:3] = "legacy"
    frame = pd.DataFrame(
        {"a": rng.normal(size=rows).round(3), "late": late, "early": early,
         "y": rng.integers(0, 2, rows)}
    )  # fmt: skip
    small = _outputs_alike_for_small_and_large_chunks(job_csv_dir(frame), tmp_path)
    splits = pd.concat(pd.read_parquet(small / s) for s in names.SPLITS)
    assert sorted(splits["late"].dropna().unique()) == ["new", "vip"]
    assert splits["early"].dropna().unique().tolist() == ["legacy"]


def _outputs_alike_for_small_and_large_chunks(folder: Path, tmp_path: Path) -> Path:
    """Run the job on ``folder`` with 4 KiB and 1 MiB chunks and check every output alike
    (Parquet frames equal, other files byte for byte but the pickled transformer); return the
    small-chunk output folder."""
    settings = pp.Settings(target="y", problem_type="binary")
    for name, block in (("small", 4096), ("large", 1 << 20)):
        pp.run(folder, tmp_path / name, settings, block_size=block)
    files = sorted(p.relative_to(tmp_path / "small") for p in (tmp_path / "small").rglob("*.*"))
    assert len(files) == 14
    for file in files:
        if file.suffix == ".parquet":  # row groups follow the chunks; the rows must not
            pd.testing.assert_frame_equal(
                pd.read_parquet(tmp_path / "small" / file),
                pd.read_parquet(tmp_path / "large" / file),
            )
        elif file.suffix != ".joblib":
            assert (tmp_path / "small" / file).read_bytes() == (
                tmp_path / "large" / file
            ).read_bytes()
    return tmp_path / "small"


def test_outputs_do_not_depend_on_the_chunk_size(job_csv_dir: CsvDir, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"a": rng.normal(size=3000).round(3), "c": rng.choice(["x", "y", "z"], 3000),
         "y": rng.integers(0, 2, 3000)}
    )  # fmt: skip
    _outputs_alike_for_small_and_large_chunks(job_csv_dir(frame), tmp_path)


def test_main_reports_a_data_error_and_writes_nothing(
    job_csv_dir: CsvDir,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(OUTPUT_DIR_ENV, str(tmp_path / "opt-ml-output"))
    reason = tmp_path / "opt-ml-output" / "message"  # a processing job's ExitMessage
    frame = pd.DataFrame({"a": range(40), "y": ["x", "y", "z", "w"] * 10})
    output = tmp_path / "output"
    assert _run(job_csv_dir(frame), output, "--problem-type", "binary", target="y") == 2
    err = capsys.readouterr().err
    assert "ERROR: data.csv: binary target 'y' has 4 distinct value(s)" in err
    assert "4 distinct value(s)" in reason.read_text()
    assert not output.exists()


def test_main_rejects_fractions_that_leave_no_train_rows(
    job_csv_dir: CsvDir, tmp_path: Path
) -> None:
    folder = job_csv_dir("a,y\n1,0\n")
    with pytest.raises(SystemExit) as exit_info:
        _run(
            folder, tmp_path / "o", "--problem-type", "regression",
            "--validation-fraction", "0.5", "--test-fraction", "0.5",
        )  # fmt: skip
    assert exit_info.value.code == 2


def _messy(rows: int, seed: int) -> pd.DataFrame:
    """Numbers, words, numbers with a word far in, infinities, missing-value spellings, a
    blank field, a no-break space around a number, and a column listed as categorical."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=rows).round(4).astype(str).astype(object)
    late = numbers.copy()
    late[rows - 50] = "n/a"
    odd = numbers.copy()
    odd[[5, 900]] = ["inf", "NULL"]
    blank = numbers.copy()
    blank[[3, 1200]] = [" ", ""]
    padded = numbers.copy()
    padded[[1, 1500]] = ["\u00a01.5", "2\u00a0"]
    return pd.DataFrame(
        {
            "num": numbers, "word": rng.choice(["a", "b", "c"], rows), "late": late,
            "odd": odd, "blank": blank, "padded": padded, "code": rng.integers(0, 9, rows),
            "y": rng.integers(0, 2, rows),
        }
    )  # fmt: skip


def test_the_first_read_types_as_a_read_of_text(job_csv_dir: CsvDir) -> None:
    """Profile reads columns that may be numbers as numbers while they are (csvio): the same
    counts, first other value and types as reading every value as text."""
    folder = job_csv_dir(_messy(3000, 2))

    def types(profile: pp.TypeProfile) -> object:
        try:
            return profile.types()
        except DataError as exc:
            return str(exc)

    for categorical, block in itertools.product((("code",), ("code", "late", "odd")),
                                                (4096, 1 << 20)):  # fmt: skip
        settings = pp.Settings(target="y", problem_type="binary", categorical_columns=categorical)
        guessed = pp.profile_part(folder, settings, block).typing
        text = pp.TypeProfile(settings.dialect, settings.categorical_columns)
        for chunk in pp.labelled_chunks(folder, settings, block):
            assert all(chunk.features[n].dtype != np.float64 for n in chunk.features)
            text.add(chunk.features)
        assert guessed.columns == text.columns and guessed.source == text.source
        assert text.columns["blank"].padded and text.columns["padded"].padded
        assert not text.columns["num"].padded
        assert types(guessed) == types(text)
    assert "data.csv line 2952: column 'late' is numeric, but 'n/a'" in types(
        pp.profile_part(folder, pp.Settings(target="y", problem_type="binary"), 4096).typing
    )
    assert types(guessed).numeric == ["num", "blank", "padded"]


def test_numbers_pyarrow_reads_otherwise_type_and_split_as_text(
    job_csv_dir: CsvDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sentinel missing value with spaces around it (" -999", -999 missing) is missing, and
    a number beyond float32 is refused as written, by the first read as by a read of text
    (pyarrow reads the one as -999 and the other as 1e+40); the splits hold the same values."""
    rows = 3000
    rng = np.random.default_rng(5)
    sentinel = rng.normal(size=rows).round(3).astype(str).astype(object)
    sentinel[[40, 2900]] = [" -999", "-999"]
    wide = sentinel.copy()
    wide[[2, 2800]] = ["-999", "9" * 40]
    frame = pd.DataFrame({"sentinel": sentinel, "wide": wide, "y": rng.integers(0, 2, rows)})
    folder = job_csv_dir(frame)
    dialect = Dialect(missing_values=("", "-999"))
    settings = pp.Settings(target="y", problem_type="binary", dialect=dialect)
    for block in (4096, 1 << 20):
        guessed = pp.profile_part(folder, settings, block).typing
        text = pp.TypeProfile(dialect)
        for chunk in pp.labelled_chunks(folder, settings, block):
            text.add(chunk.features)
        assert guessed.columns == text.columns
        assert guessed.columns["sentinel"].present == rows - 2
        for typing in (guessed, text):
            with pytest.raises(DataError, match=rf"line 2802: column 'wide' .* '{'9' * 40}'"):
                typing.types()
    (tmp_path / "settings.json").write_text(
        pp.Settings(target="y", problem_type="binary", dialect=dialect,
                    drop_columns=("wide",)).to_json(), encoding="utf-8",
    )  # fmt: skip
    settings_file = str(tmp_path / "settings.json")
    assert _run(folder, tmp_path / "out", "--settings", settings_file, target="y") == 0
    splits = pd.concat(pd.read_parquet(tmp_path / "out" / s) for s in names.SPLITS)
    assert splits["sentinel"].dtype == np.float64 and splits["sentinel"].isna().sum() == 2
    assert not (splits["sentinel"] == -999).any()


def test_a_chunk_of_blank_fields_among_numbers(job_csv_dir: CsvDir, tmp_path: Path) -> None:
    """A stretch of rows whose fields are all missing, some of them spaces, is seen as not
    plain numbers when read by distinct value as when read value by value: the split pass
    reads that column as text, as with one chunk, where pyarrow refused the spaces."""
    rows = 3000
    rng = np.random.default_rng(3)
    column = rng.normal(size=rows).round(3).astype(str).astype(object)
    column[1000:2000], column[2000:] = "", "  "
    frame = pd.DataFrame({"a": column, "b": rng.normal(size=rows).round(3), "y": [0, 1] * 1500})
    folder = job_csv_dir(frame)
    settings = pp.Settings(target="y", problem_type="binary")
    by_value = pp.TypeProfile(settings.dialect)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(values, "is_text", lambda column: False)
        for chunk in pp.labelled_chunks(folder, settings, 4096):
            by_value.add(chunk.features)
    for name, block in (("small", 4096), ("large", 1 << 20)):
        assert pp.profile_part(folder, settings, block).typing.columns == by_value.columns
        pp.run(folder, tmp_path / name, settings, block_size=block)
    for split in names.SPLITS:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "small" / split), pd.read_parquet(tmp_path / "large" / split)
        )
    splits = pd.concat(pd.read_parquet(tmp_path / "small" / s) for s in names.SPLITS)
    assert splits["a"].isna().sum() == 2000


def test_a_blank_field_among_numbers_is_a_missing_number(job_csv_dir: CsvDir, tmp_path: Path):
    """A field of spaces is missing (the rules strip it); the column is read as text to see
    it so, not by a reader parsing numbers, which refuses it."""
    frame = pd.DataFrame({"a": [str(i) for i in range(40)], "y": [0, 1] * 20})
    frame.loc[[3, 17], "a"] = ["  ", "\t"]
    assert _run(job_csv_dir(frame), tmp_path / "out", "--problem-type", "binary", target="y") == 0
    splits = pd.concat(pd.read_parquet(tmp_path / "out" / s) for s in names.SPLITS)
    assert splits["a"].dtype == np.float64 and splits["a"].isna().sum() == 2
    assert sorted(splits["a"].dropna()) == [i for i in range(40) if i not in (3, 17)]


@pytest.mark.parametrize("storage", ["string[pyarrow]", "object"])
def test_typing_counts_each_distinct_text_as_often_as_it_occurs(
    storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TypeProfile reads a text column once per distinct value: the counts, the first other
    value (its row) and the padding seen reading value by value."""
    frame = _messy(3000, 4).drop(columns="y").astype(str)
    frame.loc[[7, 40], "word"] = [" a", "NULL"]
    frame.loc[[2, 9, 11], "late"] = ["1,5", " 3 ", "$4"]
    frame.index = pd.MultiIndex.from_arrays([["f.csv"] * 3000, np.arange(2, 3002)])
    frame = frame.astype(storage)
    chunks = [frame.iloc[:1000], frame.iloc[1000:]]

    def typing(by_value: bool) -> pp.TypeProfile:
        with monkeypatch.context() as patch:
            if by_value:
                patch.setattr(values, "is_text", lambda column: False)
            profile = pp.TypeProfile(Dialect(), ("code",))
            for chunk in chunks:
                profile.add(chunk)
            return profile

    by_distinct, by_value = typing(False), typing(True)
    assert by_distinct.columns == by_value.columns
    assert by_distinct.columns["late"].first_other == (("f.csv", 4), "1,5")
    assert by_distinct.columns["late"].number_like == 2 and by_distinct.columns["late"].padded
    assert by_distinct.columns["word"].spelled == 1


@pytest.mark.parametrize("value", ["7", "vip"], ids=["numeric", "categorical"])
def test_a_feature_with_no_value_in_the_train_split_is_refused(
    job_csv_dir: CsvDir, tmp_path: Path, value: str
) -> None:
    """A feature whose only values fall in the validation or test split: the imputers would
    leave it out of the matrix, and the feature names would no longer fit the matrix (a
    numeric one shifts every later name, a categorical one breaks the names). FitTransformer
    refuses it, naming the column and the fix, and writes no transformer."""
    rows = 200
    frame = pd.DataFrame({"a": np.arange(rows, dtype=float), "y": [0, 1] * (rows // 2)})
    settings = pp.Settings(target="y", problem_type="binary")
    pp.run(job_csv_dir(frame), tmp_path / "first", settings)
    row = int(pd.read_parquet(tmp_path / "first" / names.TEST)["a"].iloc[0])  # a test row
    sparse = np.full(rows, "", dtype=object)
    sparse[row] = value
    frame["sparse"] = sparse
    out = tmp_path / "out"
    with pytest.raises(
        DataError,
        match=r"'sparse' has no value in the training split \(140 rows\).*"
        r"data\.drop_columns: \['sparse'\]",
    ):
        pp.run(job_csv_dir(frame), out, settings)
    assert not list(out.rglob(names.TRANSFORMER_FILE))
