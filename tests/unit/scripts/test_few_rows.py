"""A few request records take a shorter path (csv module, lookup tables), and batches of rows
the transformer's lookup tables column by column: same frame, same matrix, same errors as the
csv reader and the transformer itself."""

from __future__ import annotations

import itertools
import weakref

import numpy as np
import pandas as pd
import pytest

from tabular import csvio, features, schema, values
from tabular.dialect import Dialect
from tabular.errors import DataError
from tabular.schema import Schema

NUMERIC = ["n1", "n2"]
CATEGORICAL = ["c1", "c2"]
FIELDS = [
    "1", "+2.5", "-0", "-3e2", " 4 ", ".5", "5.", "1e-4", "+68323839305905605559963",
    "3.4e38", "3.5e38", "1e999", "inf", "nan", "NA", "", "  ", "\u00a07\u00a0", "\u0663",
    "1,5", "1 000", "#N/A", "#DIV/0!", "abc", "--1", "+-1", "0x10", "1_000",
]  # fmt: skip
"""Plain numbers, numbers in other forms, missing-value spellings, refused values."""


def _full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvio, "FEW_RECORDS", -1)
    _transformer_only(monkeypatch)


def _transformer_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every matrix built by the fitted transformer itself (no lookup tables)."""
    monkeypatch.setattr(schema, "_ENCODERS", weakref.WeakKeyDictionary())
    monkeypatch.setattr(schema, "table_encoder", lambda *args: None)


@pytest.mark.parametrize(
    "text",
    [
        "1,a\n2,\n",
        "1,a\r\n,b\r\n",
        "1,a\r2,b\r",
        "\n1,a\n\n\n2, b \n",
        ",\n,\n",
        "1,caf\u00e9\n2,\u00a0x\u00a0\n",
        "x\n\ny",
        "x\n   \ny\n",
        '1,"a, b"\n2,"say ""hi"""\n',
        '"1","a"\n"",""\n',
        '35,"central"\n"2.5"," b "\n',
        '1,""\n2,"NA"\n',
        '1,"two\nlines"\n',
    ],
)
def test_few_records_are_the_fields_pandas_reads(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = ["a", "b"][: len(text.splitlines()[-1].split(","))]

    def parsed() -> pd.DataFrame | str:
        try:
            return csvio.parse_records(text, columns)
        except DataError as exc:
            return str(exc)

    quick = parsed()
    _full_path(monkeypatch)
    full = parsed()
    if isinstance(full, str) or isinstance(quick, str):
        assert quick == full  # the same refusal, naming the same line
        return
    assert quick.index.equals(full.index) and list(quick.columns) == list(full.columns)
    assert quick.astype(object).fillna("<NA>").values.tolist() == (
        full.astype(object).fillna("<NA>").values.tolist()
    )


@pytest.mark.parametrize("numeric", [True, False])
def test_a_field_read_alone_is_read_as_its_column_reads_it(numeric: bool) -> None:
    dialect = Dialect(missing_values=("", "NA"))
    for field in FIELDS:
        alone = values.field_value(field, dialect, numeric)
        column = pd.Series([field], dtype=object, index=[("request", 1)])
        try:
            read = (
                values.numeric_values(column, dialect, "x")
                if numeric
                else values.categorical_values(column, dialect, "x")
            )[0]
        except DataError:
            assert alone is None, field  # refused: the column's reading gives the message
            continue
        if alone is None:
            continue  # a form the column reads, left to it
        if isinstance(read, float) and np.isnan(read):
            assert isinstance(alone, float) and np.isnan(alone), field
        else:
            assert alone == read and isinstance(alone, float if numeric else str), field
            assert str(alone) == str(read), field  # -0 is 0.0 both ways


def test_a_leading_plus_reads_the_same_number_as_without() -> None:
    """pandas' parser rounds "+6.8e22"-like text differently from the same text without "+"."""
    text = ["+68323839305905605559963", "+675.e-101", "68323839305905605559963"]
    read = values.numeric_values(pd.Series(text, dtype=object), Dialect(), "x")
    assert read.tolist() == [float(t) for t in text]


def _fitted(top_k: int | None) -> tuple[Schema, object]:
    rng = np.random.default_rng(3)
    rows = 400
    typed = pd.DataFrame(
        {
            "n1": np.where(rng.random(rows) < 0.2, np.nan, rng.normal(size=rows)),
            "n2": rng.integers(0, 5, rows).astype(float),
            "c1": pd.Series([f"v{i}" for i in rng.integers(0, 30, rows)], dtype=object),
            "c2": pd.Series(rng.choice(["a", "b", np.nan], rows), dtype=object),
        }
    )
    transformer, layout = features.fit_transformer(typed, NUMERIC, CATEGORICAL, top_k)
    rules = Schema("y", "binary", NUMERIC + CATEGORICAL, NUMERIC, CATEGORICAL,
                   ("", "NA"), layout)  # fmt: skip
    return rules, transformer


def _rows(count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    numbers = ["1", "-0", " 2.5 ", "", "NA", "1e3", "+4", "0"]
    categories = [*(f"v{i}" for i in range(40)), "a", "b", "", "NA", " a ", "never"]
    return pd.DataFrame(
        {
            "n1": rng.choice(numbers, count),
            "n2": rng.choice(numbers, count),
            "c1": rng.choice(categories, count),
            "c2": rng.choice(categories, count),
        },
        dtype=object,
    ).replace("", np.nan)


def _dense(matrix: object) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


@pytest.mark.parametrize(("top_k", "layout"), [(None, None), (5, None), (None, features.DENSE)])
def test_few_rows_encode_as_the_transformer_encodes_them(
    top_k: int | None, layout: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, transformer = _fitted(top_k)
    if layout is not None:
        rules = Schema(**{**rules.__dict__, "matrix_layout": layout})
    assert features.table_encoder(transformer, NUMERIC, CATEGORICAL) is not None
    batches = [_rows(n, seed) for seed, n in enumerate((1, 2, 7, 50))]
    quick = [rules.encode(transformer, rows) for rows in batches]
    _full_path(monkeypatch)
    for rows, fast in zip(batches, quick, strict=True):
        full = rules.encode(transformer, rows)
        assert type(fast) is type(full)
        assert np.array_equal(_dense(fast), _dense(full))
        if hasattr(full, "nnz"):
            assert fast.nnz == full.nnz  # numeric zeros stored in both


def test_a_bad_field_in_a_few_rows_gets_the_columns_message() -> None:
    rules, transformer = _fitted(None)
    for column, field, says in (
        ("n1", "1,5", r"request line 2: column 'n1' is numeric, but '1,5' is a number written"),
        ("c2", "#N/A", r"request line 2: column 'c2': '#N/A' is a spreadsheet formula error"),
    ):
        rows = _rows(2, 0)
        rows.index = pd.MultiIndex.from_tuples([("request", 1), ("request", 2)])
        rows.loc[("request", 2), column] = field
        with pytest.raises(DataError, match=says):
            rules.encode(transformer, rows)


def test_an_unknown_transformer_is_encoded_by_the_transformer_alone() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import StandardScaler

    typed = pd.DataFrame({"n1": [1.0, 2.0, 3.0], "n2": [0.0, 1.0, 0.0]})
    scaled = ColumnTransformer([(features.NUMERIC, StandardScaler(), NUMERIC)]).fit(typed)
    assert features.table_encoder(scaled, NUMERIC, []) is None
    rules = Schema("y", "binary", NUMERIC, NUMERIC, [])
    rows = pd.DataFrame({"n1": ["2"], "n2": ["1"]}, dtype=object)
    assert np.allclose(rules.encode(scaled, rows), [[0.0, 1.4142135]])


def test_every_field_combination_of_one_row_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    rules, transformer = _fitted(None)
    rows = [
        pd.DataFrame([[a, b, "v1", "a"]], columns=NUMERIC + CATEGORICAL, dtype=object)
        for a, b in itertools.product(["1", "", "NA", " -0 ", "1e3"], repeat=2)
    ]
    quick = [rules.encode(transformer, r.replace("", np.nan)) for r in rows]
    _full_path(monkeypatch)
    for row, fast in zip(rows, quick, strict=True):
        full = rules.encode(transformer, row.replace("", np.nan))
        assert np.array_equal(_dense(fast), _dense(full))


def test_inplace_prediction_is_the_dmatrix_prediction() -> None:
    """predict_frame scores with inplace_predict: the same numbers, dense or sparse (a stored
    numeric zero is a zero, an absent one-hot entry missing, in both)."""
    import xgboost as xgb

    rules, transformer = _fitted(None)
    rows = _rows(300, 9)
    labels = (np.arange(300) % 3 == 0).astype(float)
    for layout in features.LAYOUTS:
        matrix = Schema(**{**rules.__dict__, "matrix_layout": layout}).encode(
            transformer, pd.concat([rows] * 4)
        )
        booster = xgb.train(
            {"objective": "binary:logistic"}, xgb.DMatrix(matrix[:300], label=labels), 8
        )
        assert np.array_equal(booster.inplace_predict(matrix), booster.predict(xgb.DMatrix(matrix)))


@pytest.mark.parametrize("text", ['1,"two\nlines"\n', '1,"a"\n2,"b\rc"\n', '"x\r\ny",1\n'])
def test_a_line_break_in_a_quoted_field_is_refused_alike(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DataError, match="holds a line break inside a quoted value") as quick:
        csvio.parse_records(text, ["a", "b"])
    _full_path(monkeypatch)
    with pytest.raises(DataError) as full:
        csvio.parse_records(text, ["a", "b"])
    assert str(quick.value) == str(full.value)


def _many(count: int, seed: int, storage: str) -> pd.DataFrame:
    """Text rows as a job holds them: pyarrow strings (files read by tabular) or objects."""
    rows = _rows(count, seed)
    rows.loc[rows.index[::7], "c1"] = " v3\u00a0"  # surrounding spaces: the category v3
    rows.loc[rows.index[::11], "c2"] = "NA"  # a missing-value spelling of this dialect
    rows.index = pd.MultiIndex.from_arrays([["f.parquet"] * count, np.arange(1, count + 1)])
    return rows.astype(schema.TEXT) if storage == "pyarrow" else rows


def _count_table_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    encode_columns = features.TableEncoder.encode_columns

    def counted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(1)
        return encode_columns(self, *args, **kwargs)

    monkeypatch.setattr(features.TableEncoder, "encode_columns", counted)
    return calls


@pytest.mark.parametrize("storage", ["pyarrow", "object"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("top_k", "layout"),
    [(None, None), (5, None), (None, features.DENSE), (5, features.DENSE),
     (None, features.SPARSE)],
)  # fmt: skip
def test_many_rows_encode_as_the_transformer_encodes_them(
    top_k: int | None, layout: str | None, dtype: type, storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    rules, transformer = _fitted(top_k)
    if layout is not None:
        rules = Schema(**{**rules.__dict__, "matrix_layout": layout})
    batches = [_many(n, seed, storage) for seed, n in enumerate((1001, 3000))]
    calls = _count_table_batches(monkeypatch)
    quick = [rules.encode(transformer, rows, dtype) for rows in batches]
    assert len(calls) == len(batches)  # the lookup tables built every matrix
    _transformer_only(monkeypatch)
    for rows, fast in zip(batches, quick, strict=True):
        full = rules.encode(transformer, rows, dtype)
        assert len(calls) == len(batches)
        assert type(fast) is type(full) and fast.dtype == full.dtype and fast.shape == full.shape
        if hasattr(full, "nnz"):
            assert fast.nnz == full.nnz and (fast != full).nnz == 0
            assert np.array_equal(fast.indptr, full.indptr)
            assert np.array_equal(fast.indices, full.indices)
            assert np.array_equal(fast.data, full.data)
        else:
            assert fast.dtype == dtype and fast.tobytes() == full.tobytes()


def test_a_float32_matrix_is_the_float64_one_cast() -> None:
    rules, transformer = _fitted(None)
    rules = Schema(**{**rules.__dict__, "matrix_layout": features.DENSE})
    rows = _many(2000, 4, "pyarrow")
    single = rules.encode(transformer, rows, np.float32)
    assert single.tobytes() == rules.encode(transformer, rows).astype(np.float32).tobytes()


@pytest.mark.parametrize(
    ("column", "field", "says"),
    [
        ("n1", "1,5", r"f.parquet line 1700: column 'n1' is numeric, but '1,5' is a number"),
        ("c2", "#N/A", r"f.parquet line 1700: column 'c2': '#N/A' is a spreadsheet formula"),
    ],
)
def test_a_bad_field_in_many_rows_gets_the_columns_message(
    column: str, field: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, transformer = _fitted(None)
    rows = _many(2000, 5, "pyarrow")
    rows.loc[("f.parquet", 1700), column] = field
    with pytest.raises(DataError, match=says) as quick:
        rules.encode(transformer, rows)
    _transformer_only(monkeypatch)
    with pytest.raises(DataError) as full:
        rules.encode(transformer, rows)
    assert str(quick.value) == str(full.value)


def test_a_category_column_of_other_values_is_encoded_by_the_transformer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Objects that are not text (1 and 1.0 are one distinct value but two categories, "1"
    and "1.0") are read by the transformer's path."""
    rules, transformer = _fitted(None)
    rows = _many(2000, 6, "object")
    rows["c1"] = pd.Series([1, 1.0, "v1", None] * 500, index=rows.index, dtype=object)
    calls = _count_table_batches(monkeypatch)
    quick = rules.encode(transformer, rows)
    assert not calls
    _transformer_only(monkeypatch)
    assert np.array_equal(_dense(quick), _dense(rules.encode(transformer, rows)))


def test_a_missing_value_key_is_no_category() -> None:
    """No text reads as the tables' key of a missing value (a category the transformer never
    saw is unseen, not imputed)."""
    rules, transformer = _fitted(None)
    rows = _many(1500, 7, "pyarrow")
    rows["c2"] = "\x00missing\x00"
    few = rows.iloc[:3]
    for batch in (rows, few):
        matrix = _dense(rules.encode(transformer, batch))
        c2 = [i for i, n in enumerate(features.matrix_columns(transformer, NUMERIC, CATEGORICAL))
              if n.startswith("c2_")]  # fmt: skip
        assert not matrix[:, c2].any()
