"""The shared job package on its own: canonical files, request records, the feature matrix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabular import csvio, features, names, values
from tabular.contract import SM_OUTPUT_DIR as OUTPUT_DIR_ENV
from tabular.dialect import Dialect
from tabular.errors import DataError
from tabular.job import PROCESSING, TRAINING, write_failure


def test_canonical_files_round_trip_through_the_request_parser(tmp_path: Path) -> None:
    """What a job writes for batch scoring, the serving parser reads back value for value."""
    frame = pd.DataFrame(
        {
            "n": [0.1 + 0.2, -0.0, 1e20, np.nan, 3.0],
            "c": ['say "hi", twice', np.nan, "NA", "=1+1", " "],
        }
    )
    path = tmp_path / "scoring.csv"
    csvio.write_csv(frame, path, header=False)
    assert b"\r" not in path.read_bytes()
    parsed = csvio.parse_records(path.read_text(encoding="utf-8"), ["n", "c"])
    typed = values.coerce_features(parsed, ["n"], ["c"], Dialect())
    np.testing.assert_array_equal(typed["n"].to_numpy(), frame["n"].to_numpy())
    assert typed["c"].tolist()[:4:2] == ['say "hi", twice', "NA"]
    assert pd.isna(typed["c"].iloc[1]) and pd.isna(typed["c"].iloc[4])  # " " is empty: missing


def test_a_record_whose_only_field_is_missing_is_not_a_blank_line(tmp_path: Path) -> None:
    """Batch scoring skips blank lines: a one-column missing value must still be a record."""
    path = tmp_path / "scoring.csv"
    csvio.write_csv(pd.DataFrame({"x": [1.5, np.nan, 2.0]}), path, header=False)
    text = path.read_text(encoding="utf-8")
    assert text.splitlines() == ["1.5", '""', "2"] or text.splitlines() == ["1.5", '""', "2.0"]
    assert len(csvio.parse_records(text, ["x"])) == 3


def test_request_records_name_their_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"request line 2: column 'c' holds a line break"):
        csvio.parse_records('1,a\n2,"b\nc"\n', ["n", "c"])
    with pytest.raises(DataError, match=r"request line 2: 3 field\(s\), expected 2"):
        csvio.parse_records("1,a\n2,b,c\n", ["n", "c"])


@pytest.mark.parametrize(
    ("dialect", "text", "expected"),
    [
        (Dialect(), ["1", "+2.5", "-3e2", " 4 ", ".5"], [1, 2.5, -300, 4, 0.5]),
        (Dialect(decimal=","), ["1,5", "-2", "3,25e1"], [1.5, -2, 32.5]),
        (Dialect(thousands=","), ["1,234.5", "12", "1,234,567"], [1234.5, 12, 1234567]),
        (Dialect(decimal=",", thousands="."), ["1.234,5", "7,0"], [1234.5, 7]),
        (Dialect(thousands=" "), ["1 234", "1\u00a0234.5", "1\u202f000"], [1234, 1234.5, 1000]),
    ],
)
def test_numbers_under_each_dialect(
    dialect: Dialect, text: list[str], expected: list[float]
) -> None:
    parsed = values.parse_numbers(values.strip(pd.Series(text, dtype=object)), dialect)
    np.testing.assert_allclose(parsed, expected)


@pytest.mark.parametrize(
    ("dialect", "text"),
    [
        (Dialect(thousands=","), "1,23"),  # not a thousands group
        (Dialect(thousands=","), "12,34,567"),
        (Dialect(decimal=","), "1.5"),
        (Dialect(), "1,5"),
        (Dialect(), "nan"),
        (Dialect(), "Infinity"),
        (Dialect(), "0x1F"),
        (Dialect(), "1_000"),
    ],
)
def test_what_is_not_a_number(dialect: Dialect, text: str) -> None:
    assert np.isnan(values.parse_numbers(pd.Series([text], dtype=object), dialect)[0])


@pytest.mark.parametrize("dialect", [Dialect(), Dialect(thousands=","), Dialect(decimal=",")])
@pytest.mark.parametrize("text", ["\uff11\uff12", "\u0661\u0662", "1\u0662", "\uff11,5"])
def test_digits_of_other_scripts_are_not_a_number_out_of_range(dialect: Dialect, text: str):
    """Full-width or Arabic-Indic digits (a spreadsheet in another locale) are not a number
    to any parser here; the message says so, not that the value is outside float32."""
    assert np.isnan(values.parse_numbers(pd.Series([text], dtype=object), dialect)[0])
    assert values.explain(text, dialect) == f"{text!r} is not a number"
    assert not values.number_like(pd.Series([text], dtype=object), dialect)[0]


TRICKY_NUMBERS = [
    "1", "+2.5", "-3e2", ".5", "1.", "00012", "-0", "1E+05", "1e400", "-1e400", "4.9e-324",
    "0.1", "123456789.123456789", "nan", "NaN", "inf", "-Infinity", "0x1F", "1_000", "1,5",
    "1d5", "1e", "e5", "-", "+", "\u0661\u0662", "\uff11", "3.4028236e38", "1 234", "1.234,5",
]  # fmt: skip


@pytest.mark.parametrize(
    "dialect",
    [Dialect(), Dialect(decimal=","), Dialect(thousands=","), Dialect(thousands=" ")],
)
@pytest.mark.parametrize("mixed", [False, True])
def test_text_held_by_pyarrow_reads_as_the_same_numbers(dialect: Dialect, mixed: bool) -> None:
    """csvio reads text into pyarrow, whose cast parses plain numbers: value for value what
    the pandas rules read, whether every value is a number (one cast) or not (each distinct
    value by the rules)."""
    text = TRICKY_NUMBERS if mixed else ["1", "+2.5", "-3e2", ".5", "1.", "-0", "1e400"]
    expected = values.parse_numbers(pd.Series(text * 3, dtype=object), dialect)
    held = pd.Series(text * 3, dtype="string[pyarrow]")
    parsed = values.parse_numbers(held, dialect)
    np.testing.assert_array_equal(parsed, expected)
    assert not np.signbit(parsed[text.index("-0")])  # "-0" is 0, as pandas reads it
    assert str(held.dtype) == "string" and held.array.__class__.__name__ == "ArrowStringArray"


def test_the_reader_hands_pyarrow_text_to_the_rules(tmp_path: Path) -> None:
    """The fast path is taken: read_csv_file holds each column as pyarrow text."""
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,x\n2.5,y\n", encoding="utf-8")
    frame = csvio.read_csv_file(path, Dialect())
    assert all(isinstance(frame[c].dtype, pd.StringDtype) for c in frame.columns)
    assert {frame[c].dtype.storage for c in frame.columns} == {"pyarrow"}


def test_an_ambiguous_number_offers_both_readings() -> None:
    message = values.explain("1,234", Dialect())
    assert "data.thousands: ','" in message and "data.decimal: ','" in message


def _typed(rows: int, categories: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "n": np.where(rng.random(rows) < 0.5, 0.0, rng.normal(size=rows)),
            "id": pd.Series([f"v{i}" for i in rng.integers(0, categories, rows)], dtype=object),
        }
    )


def test_a_wide_one_hot_matrix_is_sparse_and_keeps_numeric_zeros() -> None:
    typed = _typed(2000, 500)
    transformer, layout = features.fit_transformer(typed, ["n"], ["id"])
    assert layout == features.SPARSE
    matrix = features.feature_matrix(transformer, typed, ["n"], ["id"], layout)
    assert matrix.format == "csr" and matrix.shape[1] == 1 + typed["id"].nunique()
    assert matrix.nnz == 2 * len(typed)  # every numeric value (zeros too) and one category
    first = matrix[:, 0]
    stored = first.toarray().ravel()  # float32, as XGBoost stores values
    assert first.nnz == len(typed) and (stored == typed["n"].astype("float32")).all()


def test_top_k_bounds_the_width_and_sends_rare_and_unseen_values_to_other() -> None:
    typed = _typed(3000, 2000)
    transformer, layout = features.fit_transformer(typed, ["n"], ["id"], top_k=20)
    matrix = features.feature_matrix(transformer, typed, ["n"], ["id"], layout)
    assert matrix.shape[1] == 1 + 20 + 1
    unseen = pd.DataFrame({"n": [1.0], "id": pd.Series(["never seen"], dtype=object)})
    row = features.feature_matrix(transformer, unseen, ["n"], ["id"], layout)
    row = row.toarray() if hasattr(row, "toarray") else row
    assert row[0, -1] == 1.0 and row[0, 1:-1].sum() == 0  # the "other" column


def test_the_cap_names_the_column_and_the_fixes() -> None:
    typed = _typed(500, 400)
    with pytest.raises(
        DataError, match=r"column 'id' has \d+ distinct values.*drop_columns.*top_k"
    ):
        features.check_cardinality(typed, ["id"], 100, names.REFUSE)
    assert features.check_cardinality(typed, ["id"], 100, names.TOP_K)["id"] > 100


def test_sparse_and_dense_layouts_train_the_same_kind_of_model() -> None:
    """XGBoost reads a stored numeric zero as zero (not missing) in the sparse layout."""
    import xgboost as xgb

    rng = np.random.default_rng(1)
    rows = 3000
    typed = pd.DataFrame(
        {
            "n": np.where(rng.random(rows) < 0.5, 0.0, np.nan),
            "id": pd.Series([f"v{i % 3}" for i in range(rows)], dtype=object),
        }
    )
    typed["n"] = typed["n"].fillna(1.0)  # the imputer sees no gap: 0 and 1 are values
    labels = (typed["n"] == 0).astype(float).to_numpy()
    transformer, _ = features.fit_transformer(typed, ["n"], ["id"])
    for layout in features.LAYOUTS:
        matrix = features.feature_matrix(transformer, typed, ["n"], ["id"], layout)
        booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(matrix, label=labels), 5
        )
        predictions = booster.predict(xgb.DMatrix(matrix))
        assert ((predictions > 0.5) == (labels == 1)).all(), layout


@pytest.mark.parametrize(("kind", "file"), [(TRAINING, "failure"), (PROCESSING, "message")])
def test_a_job_writes_its_failure_where_sagemaker_reads_it(
    kind: str, file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OUTPUT_DIR_ENV, str(tmp_path))
    assert write_failure(kind, "café: broken\n") == tmp_path / file
    assert (tmp_path / file).read_bytes() == "café: broken\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == [file]


@pytest.mark.parametrize(
    "text",
    [
        'y,a,b\n0,1,"x"\n1,,"y"\n0,3,\n1,4,"z"\n1,5,"w"\n',  # one record per line
        'y,a,b\n0,1,"x"\n\n1,,"y"\n0,3,\n1,4,"z"\n1,5,"w"',  # a blank line, no final newline
        'y,a,b\r\n0,1,"x"\r\n1,,"y"\r\n0,3,\r\n1,4,"z"\r\n1,5,"w"\r\n',  # Windows line ends
    ],
)
def test_a_file_read_in_chunks_is_the_file_read_whole(tmp_path: Path, text: str) -> None:
    path = tmp_path / "train-part-00000.csv"
    path.write_bytes(text.encode())
    whole = csvio.read_csv_file(path, Dialect())
    chunks = list(csvio.read_chunks(path, Dialect(), block_size=16))
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == 5
    joined = pd.concat(chunks)
    assert joined.index.tolist() == whole.index.tolist()  # the same (file, line) of every row
    pd.testing.assert_frame_equal(joined.astype(object), whole.astype(object))


def test_a_chunked_read_keeps_the_whole_files_checks(tmp_path: Path) -> None:
    path = tmp_path / "part.csv"
    path.write_text("y,a\n0,1\n1,2,3\n")
    with pytest.raises(DataError, match=r"part\.csv: line 3 has 3 fields but the header has 2"):
        list(csvio.read_chunks(path, Dialect(), block_size=16))
    path.write_text("y,a\n")
    with pytest.raises(DataError, match=r"part\.csv: file has a header row but no data rows"):
        list(csvio.read_chunks(path, Dialect(), block_size=16))
    path.write_text('y,a\n0,"two\nlines"\n')
    with pytest.raises(DataError, match=r"line break inside a quoted value"):
        list(csvio.read_chunks(path, Dialect(), block_size=16))


def test_a_record_longer_than_a_read_block_is_read_whole(tmp_path: Path) -> None:
    """The streaming reader parses small blocks (csvio.READ_BLOCK_SIZE); a record longer than
    one is read again with larger blocks, up to the chunk size, and every row comes once; one
    that does not fit there either is refused as before."""
    long = "x" * (csvio.READ_BLOCK_SIZE + 30000)
    rows = [f"{i % 2},{i},{long if i == 700 else 'v'}" for i in range(2000)]
    path = tmp_path / "part.csv"
    path.write_text("y,a,b\n" + "\n".join(rows) + "\n")
    whole = csvio.read_csv_file(path, Dialect())
    chunks = list(csvio.read_chunks(path, Dialect(), block_size=16 * csvio.READ_BLOCK_SIZE))
    joined = pd.concat(chunks)
    assert joined.index.tolist() == whole.index.tolist()
    pd.testing.assert_frame_equal(joined.astype(object), whole.astype(object))
    assert joined.loc[("part.csv", 702), "b"] == long
    with pytest.raises(DataError, match=r"part\.csv: could not be parsed as CSV \(straddling"):
        list(csvio.read_chunks(path, Dialect(), block_size=16 << 10))


def test_a_second_read_of_an_unchanged_file_skips_the_whole_file_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Preprocess reads its input twice; the whole-file scans run once per unchanged file."""
    scans: list[Path] = []
    scan = csvio._one_record_per_line
    monkeypatch.setattr(csvio, "_one_record_per_line", lambda p: scans.append(p) or scan(p))
    path = tmp_path / "part.csv"
    path.write_text("y,a\n0,1\n1,2\n")
    first = pd.concat(csvio.read_chunks(path, Dialect()))
    second = pd.concat(csvio.read_chunks(path, Dialect()))
    pd.testing.assert_frame_equal(first, second)
    assert scans == [path]
    path.write_bytes(b"y,a\n0,1\n1,caf\xe9\n")  # changed: checked again, and refused
    with pytest.raises(DataError, match=r"part\.csv: byte 0xe9"):
        list(csvio.read_chunks(path, Dialect()))


@pytest.mark.parametrize("first", ["numbers", "words"])
def test_a_column_tried_on_its_first_values_reads_as_every_value_read(first: str) -> None:
    """parse_numbers casts a column's first values before all of them (a refused cast costs
    per value): words after many numbers, or numbers after words, read as each value alone."""
    numbers = [str(i / 4) for i in range(3 * values.CAST_PROBE)]
    text = (numbers + ["abc", "7"]) if first == "numbers" else (["abc", "7"] + numbers)
    held = pd.Series(text, dtype="string[pyarrow]")
    alone = [values.parse_numbers(pd.Series([t], dtype=object), Dialect())[0] for t in text]
    np.testing.assert_array_equal(values.parse_numbers(held, Dialect()), alone)


def _guessed(path: Path, block_size: int) -> list[pd.DataFrame]:
    names = csvio.column_names(path, Dialect())
    return list(csvio.read_chunks(path, Dialect(), block_size=block_size, maybe_numbers=names))


@pytest.fixture(params=["threads", "one cpu"])
def arrow_cpus(request: pytest.FixtureRequest) -> Iterator[None]:
    """pyarrow's reader with its threads, and alone (OMP_NUM_THREADS=1 in a job): its errors
    are worded differently."""
    import pyarrow as pa

    cpus = pa.cpu_count()
    if request.param == "one cpu":
        pa.set_cpu_count(1)
    try:
        yield
    finally:
        pa.set_cpu_count(cpus)


@pytest.mark.usefixtures("arrow_cpus")
def test_columns_that_may_be_numbers_are_parsed_while_they_are(tmp_path: Path) -> None:
    """A first read before the types are known: a column is float64 in a chunk only when each
    of its fields there is a finite number or missing as written; its values are the numbers
    the rules read in the text, and every other column is the text."""
    rows = 3000
    lines = ["n,w,late,inf,ws,nbsp"]
    for i in range(rows):
        late = "abc" if i == 2500 else str(i)
        inf = "inf" if i == 10 else f"{i}e-1"
        ws = " " if i == 7 else ("" if i % 5 == 0 else "+3")
        lines.append(f"{i / 8},w{i % 3},{late},{inf},{ws},\u00a0{i}" if i == 3 else
                     f"{i / 8},w{i % 3},{late},{inf},{ws},{i}")  # fmt: skip
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = pd.concat(csvio.read_chunks(path, Dialect(), block_size=4096))
    chunks = _guessed(path, 4096)
    assert len(chunks) > 3
    guessed = pd.concat([c.astype(object) for c in chunks])
    assert guessed.index.equals(text.index)
    for name in text.columns:
        for chunk in chunks:
            column = chunk[name]
            if column.dtype == np.float64:
                expected = values.numeric_values(text.loc[chunk.index, name], Dialect(), name)
                np.testing.assert_array_equal(column.to_numpy(), expected)
            else:
                pd.testing.assert_series_equal(column, text.loc[chunk.index, name])
    kinds = {name: [c[name].dtype == np.float64 for c in chunks] for name in text.columns}
    assert not any(kinds["w"]) and not any(kinds["inf"])  # "inf" (line 12): not a number
    assert not any(kinds["ws"]) and not any(kinds["nbsp"])  # " " and a no-break space: text
    late = next(i for i, c in enumerate(chunks) if ("data.csv", 2502) in c.index)
    assert 0 < late < len(chunks) - 1
    assert all(kinds["late"][:late]) and not any(kinds["late"][late:])
    assert all(kinds["n"][:late]) and not any(kinds["n"][late:])  # then every column text


@pytest.mark.usefixtures("arrow_cpus")
def test_a_number_the_rules_read_otherwise_is_read_as_text(tmp_path: Path) -> None:
    """pyarrow reads a missing value with spaces around it (" -999" with -999 missing) as the
    number, and a number beyond float32 as itself: the first read keeps such columns as text,
    so the rules see the field as written (missing; refused, naming the value)."""
    dialect = Dialect(missing_values=("", "-999", "0"))
    rows = 400
    lines = ["plain,padded,tab,zero,wide,spelled"]
    for i in range(rows):
        padded = " -999" if i == 300 else str(i)
        tab = "-999\t" if i == 0 else str(i)
        zero = " 0 " if i == 5 else "-999" if i == 6 else f"{i}.5"
        wide = "9" * 40 if i == 200 else str(-i)
        lines.append(f"{i},{padded},{tab},{zero},{wide},-999.0")
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    names = csvio.column_names(path, dialect)
    chunks = list(csvio.read_chunks(path, dialect, block_size=1024, maybe_numbers=names))
    text = pd.concat(csvio.read_chunks(path, dialect, block_size=1024))
    assert len(chunks) > 3
    for name in ("plain", "padded", "tab", "zero"):
        guessed = np.concatenate([
            c[name].to_numpy() if c[name].dtype == np.float64
            else values.numeric_values(c[name], dialect, name) for c in chunks
        ])  # fmt: skip
        np.testing.assert_array_equal(guessed, values.numeric_values(text[name], dialect, name))
    wide = pd.concat([c["wide"].astype(object) for c in chunks])
    assert wide.loc[("data.csv", 202)] == "9" * 40  # as written, for the message refusing it
    assert chunks[0]["plain"].dtype == np.float64
    assert chunks[0]["spelled"].dtype != np.float64  # -999.0: a number, seen so as text
    assert (values.numeric_values(text["spelled"], dialect, "spelled") == -999.0).all()


def test_a_trailing_unnamed_column_is_refused_alike_when_numbers_are_typed(tmp_path: Path):
    """An unnamed last column holding a missing-value spelling ("NA", NA missing) is not a
    trailing delimiter: the typed read refuses it as the read of text does."""
    dialect = Dialect(missing_values=("", "NA"))
    path = tmp_path / "data.csv"
    path.write_text("a,b,\n" + "".join(f"{i},x,\n" for i in range(50)) + "1,y,NA\n")
    messages = []
    for maybe in ([], ["a"]):
        with pytest.raises(DataError) as refused:
            list(csvio.read_chunks(path, dialect, maybe_numbers=maybe))
        messages.append(str(refused.value))
    expected = "data.csv: column 3 has no name but data.csv line 52 holds 'NA'. Name the column"
    assert messages[0] == messages[1] == f"{expected} in the header row."
    path.write_text("a,b,\n" + "".join(f"{i},x,\n" for i in range(50)))  # empty: dropped
    for read in (dialect, Dialect()):
        (chunk,) = csvio.read_chunks(path, read, maybe_numbers=["a"])
        assert chunk.columns.tolist() == ["a", "b"] and chunk["a"].astype(float).sum() == 1225


def test_numbers_typed_as_read_are_the_numbers_of_the_text(tmp_path: Path) -> None:
    """pyarrow's reader trims spaces and tabs around a number, as the rules strip them."""
    path = tmp_path / "data.csv"
    path.write_text("a,b\n 1,x\n2.5\t,y\n\t-3e2 ,z\n+.5,\n", encoding="utf-8")
    (chunk,) = _guessed(path, 1 << 20)
    assert chunk["a"].dtype == np.float64 and chunk["a"].tolist() == [1.0, 2.5, -300.0, 0.5]
    assert chunk["b"].tolist()[:3] == ["x", "y", "z"] and pd.isna(chunk["b"].iloc[3])


CATEGORY_FIELDS = [
    "a", " a ", "\u00a0a\u00a0", "A", "", "  ", "\t", "NA", "na", "null", "-", "1", "1.0",
    " 1 ", "caf\u00e9", "a b", "#n/a", "=A1",
]  # fmt: skip


@pytest.mark.parametrize("dialect", [Dialect(), Dialect(missing_values=("", "NA", "-"))])
@pytest.mark.parametrize("storage", ["object", "string[pyarrow]"])
def test_a_text_column_reads_its_distinct_values_as_each_value_reads(
    dialect: Dialect, storage: str
) -> None:
    """categorical_values reads a column of text once per distinct value; a column holding
    other objects is read value by value: the same categories and missing values."""
    fields = CATEGORY_FIELDS * 3 + [None]
    text = pd.Series(fields, dtype=storage)
    assert values.categorical_codes(text, dialect, "c") is not None
    others = pd.Series([*fields, 7], dtype=object)  # 7: not text
    assert values.categorical_codes(others, dialect, "c") is None
    by_distinct = values.categorical_values(text, dialect, "c")
    by_value = values.categorical_values(others, dialect, "c")[:-1]
    assert [type(v) for v in by_distinct] == [type(v) for v in by_value]
    assert pd.Series(by_distinct).fillna("<missing>").tolist() == (
        pd.Series(by_value).fillna("<missing>").tolist()
    )


@pytest.mark.parametrize("storage", ["object", "string[pyarrow]"])
def test_a_spreadsheet_error_is_refused_alike_by_distinct_value(storage: str) -> None:
    fields = ["a", " #DIV/0! ", "b", "#N/A", "#DIV/0!"] * 2
    index = pd.MultiIndex.from_arrays([["f.csv"] * 10, np.arange(2, 12)])
    text = pd.Series(fields, dtype=storage, index=index)
    others = pd.Series([*fields, 7], dtype=object, index=index.append(index[:1]))
    messages = []
    for column in (text, others):
        with pytest.raises(DataError) as refused:
            values.categorical_values(column, Dialect(), "c")
        messages.append(str(refused.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("f.csv line 3: column 'c': '#DIV/0!' is a spreadsheet")
    assert "(6 such value(s))" in messages[0]
