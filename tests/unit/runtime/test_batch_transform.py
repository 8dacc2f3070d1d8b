"""runtime.serving.batch: the local batch transform job over a script-mode inference module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from config.paths import ROOT
from runtime.serving import Handler, ServingError, load_handler
from runtime.serving.batch import TransformRequest, main, run_batch_transform

# A sibling module, imported by the inference program (code_dir must be on sys.path).
SIBLING = """
def scale(value, factor):
    return value * factor
"""

# model_fn reads a multiplier; a prediction is the sum of the record's fields times it.
# Every function checks the types the toolkit passes (str body for text/csv).
INFERENCE = """
import os

from _rt_transform_scaling import scale


def model_fn(model_dir):
    with open(os.path.join(model_dir, "multiplier.txt")) as f:
        return float(f.read())


def input_fn(body, content_type):
    if not isinstance(body, str):
        raise TypeError(f"body is {type(body).__name__}, expected str for text/csv")
    if content_type != "text/csv":
        raise ValueError(f"unsupported content type {content_type}")
    return [[float(x) for x in line.split(",")] for line in body.splitlines() if line]


def predict_fn(rows, model):
    return [scale(sum(row), model) for row in rows]


def output_fn(predictions, accept):
    return "".join(f"{p:g}\\n" for p in predictions)
"""

# Returns two predictions for a record whose first field is 99 (breaks one-out-per-in).
EXTRA_RECORD = INFERENCE.replace(
    "    return [scale(sum(row), model) for row in rows]",
    "    out = []\n"
    "    for row in rows:\n"
    "        out += [sum(row)] * (2 if row[0] == 99 else 1)\n"
    "    return out",
)

TRANSFORM_FN = """
import os


def model_fn(model_dir):
    return "model-at-" + os.path.basename(model_dir)


def transform_fn(model, body, content_type, accept):
    lines = body.decode("utf-8").splitlines()
    return "".join(f"{model}:{line.upper()}\\n" for line in lines), accept
"""

# A cheap transform_fn for the large-file test: predicts "p" for every record it is sent.
CONSTANT = """
def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return "p\\n" * body.count("\\n")
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    (path / "multiplier.txt").write_text("3")
    return path


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    path = tmp_path / "code"
    path.mkdir()
    (path / "_rt_transform_scaling.py").write_text(SIBLING)
    (path / "inference.py").write_text(INFERENCE)
    (path / "extra_record.py").write_text(EXTRA_RECORD)
    (path / "by_transform_fn.py").write_text(TRANSFORM_FN)
    return path


@pytest.fixture
def handler(code_dir: Path, model_dir: Path) -> Handler:
    return load_handler(code_dir, "inference.py", model_dir)


class Recorder:
    """Wraps a handler and records every payload it is sent."""

    def __init__(self, inner: Handler) -> None:
        self.inner = inner
        self.payloads: list[bytes] = []

    def __call__(self, payload: bytes, content_type: str, accept: str) -> bytes:
        self.payloads.append(payload)
        return self.inner(payload, content_type, accept)


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def make_request(tmp_path: Path, files: list[Path], handler, **overrides) -> TransformRequest:
    knobs = {
        "input_files": files,
        "input_root": tmp_path / "input",
        "output_dir": tmp_path / "output",
        "handler": handler,
        "content_type": "text/csv",
        "accept": "text/csv",
        "split_type": "Line",
        "batch_strategy": "MultiRecord",
        "max_payload_bytes": 6 * 1024 * 1024,
        "assemble_with": "Line",
        "join_source": "None",
    }
    knobs.update(overrides)
    return TransformRequest(**knobs)


def output_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "output").rglob("*") if p.is_file())


def test_one_output_per_input_file_keeps_the_relative_path(tmp_path, handler):
    top = write(tmp_path / "input" / "a.csv", ["1,2,3", "4,5,6"])
    nested = write(tmp_path / "input" / "part" / "x" / "b.csv", ["10,0,0"])

    result = run_batch_transform(make_request(tmp_path, [top, nested], handler))

    out = tmp_path / "output"
    assert (out / "a.csv.out").read_text() == "18\n45\n"
    assert (out / "part" / "x" / "b.csv.out").read_text() == "30\n"
    assert result.output_paths == [out / "a.csv.out", out / "part" / "x" / "b.csv.out"]
    assert [(f.records_in, f.records_out) for f in result.files] == [(2, 2), (1, 1)]
    assert output_files(tmp_path) == [out / "a.csv.out", out / "part" / "x" / "b.csv.out"]


def test_join_source_input_appends_the_prediction_to_its_input_line(tmp_path, handler):
    data = write(tmp_path / "input" / "d.csv", ["1,2,3", "", "0.5,0.5,1\r"])

    run_batch_transform(make_request(tmp_path, [data], handler, join_source="Input"))

    assert (tmp_path / "output" / "d.csv.out").read_text() == "1,2,3,18\n0.5,0.5,1,6\n"


def test_multi_record_packs_whole_records_up_to_the_payload_limit(tmp_path, handler):
    data = write(tmp_path / "input" / "d.csv", ["1,2,3"] * 10)  # 6 bytes per record
    recorder = Recorder(handler)

    result = run_batch_transform(make_request(tmp_path, [data], recorder, max_payload_bytes=20))

    assert [len(p) for p in recorder.payloads] == [18, 18, 18, 6]
    assert all(p.endswith(b"\n") and p.count(b"\n") == len(p) // 6 for p in recorder.payloads)
    assert result.batches == 4
    assert (tmp_path / "output" / "d.csv.out").read_text() == "18\n" * 10


def test_single_record_sends_one_record_per_request(tmp_path, handler):
    data = write(tmp_path / "input" / "d.csv", ["1,1,1", "2,2,2", "3,3,3"])
    recorder = Recorder(handler)

    run_batch_transform(
        make_request(tmp_path, [data], recorder, batch_strategy="SingleRecord", join_source="Input")
    )

    assert recorder.payloads == [b"1,1,1\n", b"2,2,2\n", b"3,3,3\n"]
    assert (tmp_path / "output" / "d.csv.out").read_text() == "1,1,1,9\n2,2,2,18\n3,3,3,27\n"


def test_a_record_larger_than_the_payload_limit_fails_naming_file_and_line(tmp_path, handler):
    data = write(tmp_path / "input" / "d.csv", ["1,2", "1,2,3,4,5,6,7,8,9,10,11,12"])

    with pytest.raises(ServingError) as failure:
        run_batch_transform(make_request(tmp_path, [data], handler, max_payload_bytes=20))

    message = str(failure.value)
    assert str(data) in message and "line 2" in message and "20 bytes" in message
    assert output_files(tmp_path) == []


def test_join_needs_one_output_record_per_input_record(tmp_path, code_dir, model_dir):
    extra = load_handler(code_dir, "extra_record.py", model_dir)
    data = write(tmp_path / "input" / "d.csv", ["1,1", "2,2", "3,3", "99,1", "4,4"])

    with pytest.raises(ServingError) as failure:
        run_batch_transform(
            make_request(
                tmp_path, [data], extra, batch_strategy="SingleRecord", join_source="Input"
            )
        )

    message = str(failure.value)
    assert str(data) in message and "line 4" in message
    assert "1 record(s)" in message and "held 2" in message


def test_an_error_in_user_code_names_file_line_and_the_user_message(tmp_path, handler):
    data = write(tmp_path / "input" / "d.csv", ["1,2", "3,4", "5,abc", "7,8"])

    with pytest.raises(ServingError) as failure:
        run_batch_transform(make_request(tmp_path, [data], handler, batch_strategy="SingleRecord"))

    message = str(failure.value)
    assert str(data) in message and "line 3" in message
    assert "input_fn raised ValueError: could not convert string to float: 'abc'" in message
    assert "inference.py:" in message  # where in the user's code, not a runtime stack
    assert "Traceback" not in message


def test_a_failed_job_leaves_no_output_file_behind(tmp_path, handler):
    lines = ["1,1"] * 12  # 4 bytes a record: requests hold lines 1-4, 5-8, 9-12
    lines[9] = "x,1"
    data = write(tmp_path / "input" / "d.csv", lines)
    recorder = Recorder(handler)

    with pytest.raises(ServingError, match="request starting at line 9 "):
        run_batch_transform(make_request(tmp_path, [data], recorder, max_payload_bytes=16))

    assert len(recorder.payloads) == 3  # two requests succeeded and were written
    assert output_files(tmp_path) == []  # neither a .out nor a temporary file


def test_transform_fn_is_used_when_defined(tmp_path, code_dir, model_dir):
    by_transform = load_handler(code_dir, "by_transform_fn.py", model_dir)
    data = write(tmp_path / "input" / "t.txt", ["ab", "cd"])

    run_batch_transform(
        make_request(tmp_path, [data], by_transform, content_type="application/x-text")
    )

    assert (
        tmp_path / "output" / "t.txt.out"
    ).read_text() == "model-at-model:AB\nmodel-at-model:CD\n"


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        ("def output_fn(", "missing output_fn"),
        ("def model_fn(", "defines no model_fn"),
    ],
)
def test_a_missing_function_is_named(tmp_path, code_dir, model_dir, drop, named):
    (code_dir / "broken.py").write_text(INFERENCE.replace(drop, "def _unused_" + drop[4:]))

    with pytest.raises(ServingError) as failure:
        load_handler(code_dir, "broken.py", model_dir)

    assert named in str(failure.value) and "broken.py" in str(failure.value)


def test_filters_other_than_pass_through_are_not_implemented(tmp_path, handler):
    with pytest.raises(NotImplementedError, match="input_filter"):
        make_request(tmp_path, [], handler, input_filter="$[1:]")


def test_memory_stays_bounded_while_streaming_a_large_file(tmp_path, code_dir, model_dir):
    (code_dir / "constant.py").write_text(CONSTANT)
    constant = load_handler(code_dir, "constant.py", model_dir)
    rows, padding = 200_000, "x" * 100
    path = tmp_path / "input" / "big.csv"
    path.parent.mkdir(parents=True)
    with path.open("w") as f:  # ~22 MB: more than the bound if held in memory at once
        f.writelines(f"{i},{padding}\n" for i in range(rows))
    assert path.stat().st_size > 20 * 1024 * 1024
    request = make_request(
        tmp_path, [path], constant, max_payload_bytes=1024 * 1024, join_source="Input"
    )

    tracemalloc.start()
    try:
        result = run_batch_transform(request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert result.records_in == result.records_out == rows
    assert result.batches > 20
    assert peak < 20 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
    output = tmp_path / "output" / "big.csv.out"
    assert output.stat().st_size == path.stat().st_size + len(",p") * rows
    with output.open("rb") as out:
        out.seek(-200, os.SEEK_END)
        assert out.read().splitlines()[-1] == f"{rows - 1},{padding},p".encode()


def request_json(tmp_path: Path, code_dir: Path, model_dir: Path, files: list[Path]) -> Path:
    spec = {
        "model_dir": str(model_dir),
        "code_dir": str(code_dir),
        "program": "inference.py",
        "input_files": [str(f) for f in files],
        "input_root": str(tmp_path / "input"),
        "output_dir": str(tmp_path / "output"),
        "content_type": "text/csv",
        "accept": "text/csv",
        "split_type": "Line",
        "batch_strategy": "MultiRecord",
        "max_payload_bytes": 1024,
        "assemble_with": "Line",
        "join_source": "Input",
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(spec))
    return path


def test_cli_runs_a_job_in_a_subprocess(tmp_path, code_dir, model_dir):
    data = write(tmp_path / "input" / "sub" / "d.csv", ["1,2,3", "4,5,6"])
    request = request_json(tmp_path, code_dir, model_dir, [data])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run(
        [sys.executable, "-m", "runtime.serving.batch", "--request", str(request)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        "transform: 1 file(s), 2 record(s) in, 2 record(s) out, 1 request(s)"
    ]
    assert (tmp_path / "output" / "sub" / "d.csv.out").read_text() == "1,2,3,18\n4,5,6,45\n"


def test_cli_failure_prints_error_and_writes_the_failure_reason(
    tmp_path, code_dir, model_dir, monkeypatch, capsys
):
    data = write(tmp_path / "input" / "d.csv", ["1,2,3", "4,x,6"])
    request = request_json(tmp_path, code_dir, model_dir, [data])
    reason = tmp_path / "failure"
    monkeypatch.setenv("SM_FAILURE_REASON_FILE", str(reason))

    code = main(["--request", str(request)])

    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.startswith("ERROR: ") and "line 1" in stderr and str(data) in stderr
    assert reason.read_text() == stderr.removeprefix("ERROR: ").rstrip("\n")
    assert "could not convert string to float: 'x'" in reason.read_text()
    assert output_files(tmp_path) == []


def test_the_runtime_imports_neither_the_pipeline_packages_nor_the_sdk():
    forbidden = ("pipelines", "steps", "scripts", "sagemaker", "boto3", "botocore")
    probe = (
        "import sys, runtime.serving.batch; "
        f"print(sorted(m for m in {forbidden!r} if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )

    assert done.stdout.strip() == "[]"
