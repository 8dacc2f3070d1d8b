"""Every verb that reads a config exits 2 on a bad one: the file and key named, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.paths import ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text",
    [
        "data: {input_uri: 'file://relative.csv', target: y, problem_type: binary}\n",
        "extends: nothere.yaml\n",
        "data:\n\tinput_uri: x\n",
        "data: {input_uri: 'file:///x.csv', target: y, problem_type: binary, scoring_uri: 'file://s.csv'}\n",  # noqa: E501
    ],
    ids=["relative file uri", "missing parent", "tabs", "relative scoring uri"],
)
@pytest.mark.parametrize("verb", ["validate", "run-local", "definition"])
def test_the_cli_exits_2_with_the_file_and_key_and_no_traceback(
    tmp_path: Path, text: str, verb: str
) -> None:
    config = write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", verb, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PIPELINE_LOCAL_WORKSPACE": str(tmp_path / "ws")},
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert str(tmp_path) in result.stderr
