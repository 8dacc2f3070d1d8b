"""Files as people produce them: spreadsheets, databases, other locales, pandas.

Each accepted file goes through the real jobs and the shipped serving code: Preprocess reads
it, Train fits a small model on its splits, and the batch transform (``runtime.serving.batch``
over the serving sourcedir the definition names, Line-split and joined with its input) scores
Preprocess's scoring output, one prediction per record. So a file Preprocess accepts is one
the serving path can score. Each refused file is refused by Preprocess with the column, the
line and the fix in its message.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from config.paths import ROOT
from runtime.files import extract_tar
from scripts import preprocess as pp
from scripts import train as tr
from steps.code import CodeStore
from tabular import names
from tabular.contract import SM_OUTPUT_DIR as OUTPUT_DIR_ENV
from tabular.csvio import parse_records
from tabular.dialect import Dialect
from tabular.errors import DataError

ROWS = 120
NAMES = ["amount", "visits", "region", "plan", "label"]


def rows(seed: int = 0) -> list[dict[str, Any]]:
    """Customers: an amount with decimals (and thousands), a count, two categories, a label."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(ROWS):
        amount = float(np.round(rng.uniform(10, 5000), 2))
        visits = int(rng.integers(0, 40))
        region = ["NA", "EU", "APAC", "None"][i % 4]  # NA: North America; None: a real plan
        plan = ["basic", "pro", "null"][i % 3]
        label = "yes" if amount / 5000 + visits / 40 + rng.normal(scale=0.3) > 1 else "no"
        out.append(
            {"amount": amount, "visits": visits, "region": region, "plan": plan, "label": label}
        )
    return out


def to_csv(
    records: list[dict[str, Any]],
    *,
    delimiter: str = ",",
    line_end: str = "\n",
    bom: bool = False,
    quote_all: bool = False,
    number: Any = repr,
    header: list[str] | None = None,
    trailing: str = "",
    final_newline: bool = True,
    encoding: str = "utf-8",
    index: bool = False,
) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        lineterminator=line_end,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    names = header or NAMES
    writer.writerow(([""] if index else []) + names + ([""] if trailing else []))
    for i, record in enumerate(records):
        fields = [number(record[n]) if isinstance(record[n], float) else record[n] for n in NAMES]
        writer.writerow(([str(i)] if index else []) + fields + ([""] if trailing else []))
    text = buffer.getvalue()
    if not final_newline:
        text = text.removesuffix(line_end)
    data = text.encode(encoding)
    return (codecs.BOM_UTF8 if bom else b"") + data


def thousands(separator: str, decimal: str):  # type: ignore[no-untyped-def]
    def write(value: float) -> str:
        text = f"{value:,.2f}".replace(",", "\0").replace(".", decimal)
        return text.replace("\0", separator)

    return write


ACCEPTED: list[tuple[str, bytes, dict[str, Any]]] = [
    ("excel csv utf-8: BOM and CRLF", to_csv(rows(), bom=True, line_end="\r\n"), {}),
    (
        "excel in a european locale: ';' and decimal commas",
        to_csv(
            rows(),
            delimiter=";",
            line_end="\r\n",
            bom=True,
            number=lambda v: f"{v}".replace(".", ","),
        ),  # noqa: E501
        {"delimiter": ";", "decimal": ","},
    ),
    (
        "quoted thousands separators, configured",
        to_csv(rows(), number=thousands(",", ".")),
        {"thousands": ","},
    ),
    (
        "german numbers: 1.234,56 with ';'",
        to_csv(rows(), delimiter=";", number=thousands(".", ",")),
        {"delimiter": ";", "decimal": ",", "thousands": "."},
    ),
    (
        "french numbers: no-break space thousands, decimal comma",
        to_csv(rows(), delimiter=";", number=thousands("\u202f", ",")),
        {"delimiter": ";", "decimal": ",", "thousands": " "},
    ),
    (
        "google sheets: CRLF, no final newline",
        to_csv(rows(), line_end="\r\n", final_newline=False),
        {},
    ),  # noqa: E501
    (
        "database export: everything quoted, NULL and \\N for missing",
        to_csv(
            [
                dict(r, amount="NULL") if i % 9 == 0 else dict(r, visits="\\N") if i % 7 == 0 else r
                for i, r in enumerate(rows())
            ],
            quote_all=True,
        ),  # fmt: skip
        {"missing_values": ["", "NULL", "\\N"]},
    ),
    ("pandas to_csv with its index", to_csv(rows(), index=True), {}),
    ("trailing delimiter on every line", to_csv(rows(), trailing=","), {}),
    ("trailing empty lines", to_csv(rows()) + b"\n\n\n", {}),
    ("old mac excel: CR line endings", to_csv(rows(), line_end="\r"), {}),
    (
        "spaces around names and values",
        to_csv(
            rows(),
            header=["amount ", " visits", " region ", "plan", " label"],
            number=lambda v: f" {v} ",
        ),  # fmt: skip
        {},
    ),
    (
        "tab-separated export",
        to_csv(rows(), delimiter="\t"),
        {"delimiter": "\t"},
    ),
    ("leading + and scientific notation", to_csv(rows(), number=lambda v: f"+{v:e}"), {}),
]


def _bad(value_at_row_5: str, **dialect: Any) -> tuple[bytes, dict[str, Any]]:
    records = rows()
    records[4] = dict(records[4], amount=value_at_row_5)
    return to_csv(records), dialect


REFUSED: list[tuple[str, bytes, dict[str, Any], list[str]]] = [
    (
        "excel european file without the delimiter setting",
        to_csv(rows(), delimiter=";", number=lambda v: f"{v}".replace(".", ",")),
        {},
        ["line 1", "Set data.delimiter: ';'", "data.decimal: ','"],
    ),
    (
        "quoted thousands separators, not configured",
        to_csv(rows(), number=thousands(",", ".")),
        {},
        ["data.csv line 2", "column 'amount'", "set data.thousands: ','"],
    ),
    (
        "decimal commas in a ';' file without data.decimal",
        to_csv(rows(), delimiter=";", number=lambda v: f"{v}".replace(".", ",")),
        {"delimiter": ";"},
        ["data.csv line 2", "column 'amount'", "set data.decimal: ','"],
    ),
    (
        "database NULL not declared missing",
        to_csv([dict(r, amount="NULL") if i % 4 == 0 else r for i, r in enumerate(rows())]),
        {},
        ["data.csv line 2", "column 'amount'", "add 'NULL' to data.missing_values"],
    ),
    ("spreadsheet error", *_bad("#DIV/0!"), ["data.csv line 6", "column 'amount'", "formula"]),
    ("excel #N/A", *_bad("#N/A"), ["data.csv line 6", "'#N/A'", "data.missing_values"]),
    ("beyond float32", *_bad("1e39"), ["data.csv line 6", "column 'amount'", "float32"]),
    ("infinity", *_bad("inf"), ["data.csv line 6", "column 'amount'", "not a finite number"]),
    ("currency sign", *_bad("$1,200.00"), ["data.csv line 6", "currency"]),
    ("percent sign", *_bad("12%"), ["data.csv line 6", "percent"]),
    ("stray text", *_bad("n/a?"), ["data.csv line 6", "column 'amount'", "'n/a?' is not a number"]),
    (
        "line break inside a quoted value",
        to_csv([dict(r, plan="pro\nplus") if i == 3 else r for i, r in enumerate(rows())]),
        {},
        ["data.csv line 5", "column 'plan'", "line break"],
    ),
    (
        "excel unicode text (UTF-16)",
        codecs.BOM_UTF16_LE + to_csv(rows()).decode().encode("utf-16-le"),
        {},
        ["UTF-16", "CSV UTF-8"],
    ),
    (
        "windows-1252 export",
        to_csv(rows(), encoding="cp1252").replace(b"EU", b"\xc9U"),
        {},
        ["not valid UTF-8", "line 3"],
    ),  # noqa: E501
    (
        "a column with no name holding values",
        b"\n".join(
            line + b"x" if number == 2 else line
            for number, line in enumerate(to_csv(rows(), trailing=",").split(b"\n"))
        ),
        {},
        ["column 6 has no name", "data.csv line 3 holds 'x'"],
    ),
]


def settings(**changes: Any) -> pp.Settings:
    dialect = Dialect(
        **{
            k: changes.pop(k)
            for k in ("delimiter", "decimal", "thousands", "missing_values")
            if k in changes
        }  # fmt: skip
    )
    return replace(pp.Settings(target="label", problem_type="binary", dialect=dialect), **changes)


def preprocess(tmp_path: Path, payload: bytes, job_settings: pp.Settings) -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.csv").write_bytes(payload)
    (tmp_path / "settings.json").write_text(job_settings.to_json(), encoding="utf-8")
    output = tmp_path / "out"
    code = pp.main(
        ["--input-dir", str(tmp_path / "in"), "--output-root", str(output),
         "--settings", str(tmp_path / "settings.json")]
    )  # fmt: skip
    assert code == 0
    return output


def serving_code(tmp_path: Path) -> Path:
    """The serving sourcedir.tar.gz exactly as the definition ships it, extracted."""
    store = CodeStore("bucket", "prefix")
    store.sourcedir("inference.py")
    (artifact,) = store.artifacts
    code = tmp_path / "code"
    with tarfile.open(fileobj=io.BytesIO(artifact.payload)) as tar:
        extract_tar(tar, code)
    return code


def batch_score(tmp_path: Path, model_dir: Path, scoring: Path) -> list[str]:
    files = sorted(p for p in scoring.rglob("*") if p.is_file())
    request = {
        "model_dir": str(model_dir),
        "code_dir": str(serving_code(tmp_path)),
        "program": "inference.py",
        "input_files": [str(p) for p in files],
        "input_root": str(scoring),
        "output_dir": str(tmp_path / "scored"),
        "content_type": "text/csv",
        "accept": "text/csv",
        "split_type": "Line",
        "batch_strategy": "MultiRecord",
        "max_payload_bytes": 2048,  # several requests per file
        "assemble_with": "Line",
        "join_source": "Input",
    }
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(request), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.serving.batch",
            "--request",
            str(request_file),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return (tmp_path / "scored" / "scoring.csv.out").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(("case", "payload", "changes"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_files_are_read_as_meant_and_scored_by_the_serving_path(
    case: str, payload: bytes, changes: dict[str, Any], tmp_path: Path
) -> None:
    output = preprocess(tmp_path, payload, settings(**changes))
    schema = json.loads(
        (output / names.TRANSFORMER / names.SCHEMA_FILE).read_text(encoding="utf-8")
    )
    assert schema["feature_columns"] == ["amount", "visits", "region", "plan"], case
    assert schema["numeric_columns"] == ["amount", "visits"], case
    assert schema["categorical_columns"] == ["region", "plan"], case
    train = pd.concat(
        pd.read_csv(path, keep_default_na=False, dtype=str)
        for path in sorted((output / names.TRAIN).glob("*.csv"))
    )
    assert {"NA", "None"} <= set(train["region"]), "real categories never become missing"
    amounts = pd.to_numeric(train["amount"].replace("", np.nan))
    assert amounts.notna().sum() > 0.8 * len(train) and amounts.max() > 1000, case

    work = tmp_path / "train"
    argv = [
        "--train", str(output / names.TRAIN), "--validation", str(output / names.VALIDATION),
        "--transformer", str(output / names.TRANSFORMER), "--model-dir", str(work / "model"),
        "--output-data-dir", str(work / "data"), "--objective", "binary:logistic",
        "--num_round", "5", "--early_stopping_rounds", "5",
    ]  # fmt: skip
    assert tr.main(argv) == 0
    scoring = output / names.SCORING
    records = (scoring / names.SCORING_FILE).read_text(encoding="utf-8").splitlines()
    scored = batch_score(tmp_path, work / "model", scoring)
    assert len(scored) == len(records) == schema["rows"]["test"]
    for record, line in zip(records, scored, strict=True):
        assert line.startswith(record + ",")
        assert 0.0 < float(line.rsplit(",", 1)[1]) < 1.0


@pytest.mark.parametrize(
    ("case", "payload", "changes", "fragments"), REFUSED, ids=[c[0] for c in REFUSED]
)
def test_refused_files_name_the_column_the_line_and_the_fix(
    case: str,
    payload: bytes,
    changes: dict[str, Any],
    fragments: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(OUTPUT_DIR_ENV, str(tmp_path / "opt-ml-output"))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.csv").write_bytes(payload)
    (tmp_path / "settings.json").write_text(settings(**changes).to_json(), encoding="utf-8")
    code = pp.main(
        ["--input-dir", str(tmp_path / "in"), "--output-root", str(tmp_path / "out"),
         "--settings", str(tmp_path / "settings.json")]
    )  # fmt: skip
    assert code == 2, case
    message = (tmp_path / "opt-ml-output" / "message").read_text(encoding="utf-8")
    for fragment in fragments:
        assert fragment in message, (case, fragment, message)
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing is written when the data is refused"


def test_missing_values_are_only_the_configured_spellings(tmp_path: Path) -> None:
    """``NA`` (North America), ``None`` and ``null`` stay categories unless configured."""
    payload = to_csv(rows())
    for name in ("default", "configured"):
        (tmp_path / name).mkdir()
    categories = _categories(preprocess(tmp_path / "default", payload, settings()))
    assert {"NA", "EU", "APAC", "None"} == categories["region"]
    assert {"basic", "pro", "null"} == categories["plan"]
    configured = settings(missing_values=["", "null"])
    output = preprocess(tmp_path / "configured", payload, configured)
    assert _categories(output)["plan"] == {"basic", "pro"}  # null now missing, imputed


def _categories(output: Path) -> dict[str, set[str]]:
    import joblib

    transformer = joblib.load(output / names.TRANSFORMER / names.TRANSFORMER_FILE)
    encoder = transformer.named_transformers_["categorical"].named_steps["onehot"]
    return {
        name: set(map(str, values))
        for name, values in zip(["region", "plan"], encoder.categories_, strict=True)
    }


def test_a_category_called_like_a_missing_value_is_kept_in_scoring_too(tmp_path: Path) -> None:
    """Serving reads ``NA`` as the category it was in training, not as a missing value."""
    import joblib

    from scripts import inference as inf

    output = preprocess(tmp_path, to_csv(rows()), settings())
    model = tmp_path / "model"
    model.mkdir()
    transformer = joblib.load(output / names.TRANSFORMER / names.TRANSFORMER_FILE)
    schema = json.loads((output / names.TRANSFORMER / names.SCHEMA_FILE).read_text())
    bundle = inf.ModelBundle(booster=None, transformer=transformer, schema=schema)
    frame = parse_records("1.5,3,NA,basic\n1.5,3,,basic\n", bundle.feature_columns)
    from tabular.values import coerce_features

    typed = coerce_features(frame, ["amount", "visits"], ["region", "plan"], bundle.rules.dialect)
    assert typed["region"].iloc[0] == "NA" and pd.isna(typed["region"].iloc[1])


def test_settings_carry_any_column_name(tmp_path: Path) -> None:
    """Names with commas, leading dashes, quotes, '=', spaces inside and unicode are data."""
    columns = ["a,b", "-x", 'say "hi"', "k=v", "métrique ✓", "--target"]
    header = [*columns[:4], "region", "plan", columns[4]]
    records = []
    for i, record in enumerate(rows()):
        records.append(
            {
                "a,b": record["amount"], "-x": record["visits"], 'say "hi"': i % 5,
                "k=v": record["plan"], "region": record["region"], "plan": record["plan"],
                "métrique ✓": record["label"],
            }
        )  # fmt: skip
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    output = preprocess(
        tmp_path, buffer.getvalue().encode(), settings(target="métrique ✓", drop_columns=("plan",))
    )
    schema = json.loads(
        (output / names.TRANSFORMER / names.SCHEMA_FILE).read_text(encoding="utf-8")
    )
    assert schema["target"] == "métrique ✓"
    assert schema["feature_columns"] == ["a,b", "-x", 'say "hi"', "k=v", "region"]
    with pytest.raises(DataError, match="target column '--target' not found"):
        pp.run(tmp_path / "in", tmp_path / "again", settings(target="--target"))


def test_single_options_take_names_that_start_with_a_dash(tmp_path: Path) -> None:
    """By hand, ``--target=-y`` passes a name argparse would otherwise read as an option."""
    args = pp.build_parser().parse_args(["--target=-y,z", "--problem-type=binary",
                                         '--columns=["a,b", "-y,z"]'])  # fmt: skip
    job = pp.settings_from_args(pp.build_parser(), args)
    assert (job.target, job.columns) == ("-y,z", ("a,b", "-y,z"))
