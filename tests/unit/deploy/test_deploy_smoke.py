"""The smoke sample the Evaluate job records, and the verdict on an endpoint's answers."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from config import PIPELINE_CONFIG, load_config
from pipelines.deploy.smoke import SmokeSample, SmokeSampleError, compare
from runtime.serving import load_handler
from scripts import evaluate as ev
from tabular.contract import MODEL_ARCHIVE
from tabular.files import extract_tar
from tabular.names import SMOKE_SAMPLE_FILE, TEST

SETTINGS = load_config(PIPELINE_CONFIG, env={}).deploy.stage("staging").smoke


@pytest.fixture(scope="module")
def recorded(
    job_model_archive: Callable[[str], Path],
    job_prepared: Callable[[str], Path],
    job_scripts_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict, Path]:
    """The Evaluate job's output folder for the binary fixture model, and its model dir."""
    output = tmp_path_factory.mktemp("evaluation")
    archive = job_model_archive("binary")
    code = ev.main([
        "--model-dir", str(archive), "--test-dir", str(job_prepared("binary") / TEST),
        "--serving-code-dir", str(job_scripts_dir), "--output-dir", str(output),
        "--problem-type", "binary", "--bootstrap-rounds", "2", "--smoke-rows", "7",
    ])  # fmt: skip
    assert code == 0
    model = tmp_path_factory.mktemp("model")
    with tarfile.open(archive / MODEL_ARCHIVE) as tar:
        extract_tar(tar, model)
    return json.loads((output / SMOKE_SAMPLE_FILE).read_text()), model


def test_the_serving_code_answers_the_recorded_rows_as_recorded(
    recorded: tuple[dict, Path], job_scripts_dir: Path
) -> None:
    """The endpoint runs inference.py as the container does: its answer to the recorded body
    is the pipeline's own predictions (what `deploy` checks on the real endpoint)."""
    document, model = recorded
    sample = SmokeSample.parse(document, "smoke_sample.json")
    assert len(sample.records) == 7 and sample.content_type == "text/csv"
    handler = load_handler(job_scripts_dir, "inference.py", model)
    answer = handler(sample.body(7), sample.content_type, sample.content_type)
    result = compare(sample, answer, SETTINGS, 7)
    assert result.passed, result.problems
    assert "7 row(s) answered as the pipeline predicted" in result.summary()


def test_answers_that_differ_fail_with_the_rows_named(recorded: tuple[dict, Path]) -> None:
    document, _ = recorded
    sample = SmokeSample.parse(document, "s")
    expected = sample.expected(3)
    shifted = "".join(f"{v + 0.01:.9g}\n" for v in expected).encode()
    result = compare(sample, shifted, SETTINGS, 3)
    assert not result.passed and len(result.problems) == 3
    assert result.problems[0].startswith("row 1: endpoint ")
    close = "".join(f"{v:.9g}\n" for v in expected).encode()  # the serving format's rounding
    assert compare(sample, close, SETTINGS, 3).passed
    assert (
        "3 record(s) sent, 2 prediction(s) back"
        in compare(sample, b"0.1\n0.2\n", SETTINGS, 3).problems[0]
    )
    assert "is not a number" in compare(sample, b"a\nb\nc\n", SETTINGS, 3).problems[0]
    assert "not UTF-8" in compare(sample, b"\xff\xfe", SETTINGS, 3).problems[0]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "not a JSON object"),
        ({"records": "1,2\n"}, "missing or malformed"),
        (
            {"content_type": "text/csv", "records": "1\n2\n", "predictions": [0.5]},
            "2 record(s) but 1 prediction(s)",
        ),
    ],
)
def test_a_damaged_sample_is_refused_with_the_fix(document: object, expected: str) -> None:
    with pytest.raises(SmokeSampleError, match=re.escape(expected)) as caught:
        SmokeSample.parse(document, "s3://b/smoke_sample.json")
    assert "re-run the pipeline" in str(caught.value)
