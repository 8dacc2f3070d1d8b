"""Saved definitions (pipelines/saved.py): reused only while the config and every file the build
read are unchanged, and reused without importing the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import Config
from config.paths import ROOT
from pipelines import saved
from pipelines.document import BuiltPipeline

# `python -m pipelines definition` as the CLI runs it, then the SDK modules it had imported.
DEFINITION = """\
import json, sys
from pipelines import cli
code = cli.main(["definition", "--out", sys.argv[1]])
sdk = sorted(m for m in sys.modules if m.startswith("sagemaker"))
print(json.dumps({"code": code, "sdk": sdk}))
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "saved"
    monkeypatch.setenv(saved.SAVED_ENV, str(where))
    return where


def _definition(out: Path, where: Path) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-c", DEFINITION, str(out)],
        cwd=ROOT,
        env={**os.environ, saved.SAVED_ENV: str(where)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[type-arg]
    return result


def test_the_second_build_reuses_the_first_without_the_sdk(tmp_path: Path):
    where = tmp_path / "saved"
    first = _definition(tmp_path / "first.json", where)
    second = _definition(tmp_path / "second.json", where)
    assert first["code"] == second["code"] == 0
    assert first["sdk"], "the first build imports the SDK"
    assert second["sdk"] == []
    assert (tmp_path / "first.json").read_bytes() == (tmp_path / "second.json").read_bytes()
    (entry,) = where.glob("*.json")
    inputs = json.loads(entry.read_text())["inputs"]
    assert {"pipelines/definition.py", "steps/train.py", "scripts/train.py"} <= set(inputs)


def test_a_saved_build_gives_the_same_definition_and_code(
    folder: Path, base_config: Config, built: BuiltPipeline
):
    saved.save(base_config, built)
    found = saved.load(base_config)
    assert found is not None and found.pipeline is None
    assert found.definition == built.definition
    assert [(a.s3_uri, a.payload) for a in found.code] == [
        (a.s3_uri, a.payload) for a in built.code
    ]


def test_another_config_is_not_served_the_saved_build(
    folder: Path, base_config: Config, built: BuiltPipeline
):
    saved.save(base_config, built)
    changed = base_config.model_copy(
        update={"pipeline": base_config.pipeline.model_copy(update={"name": "another"})}
    )
    assert saved.entry_path(changed, folder) != saved.entry_path(base_config, folder)
    assert saved.load(changed) is None


@pytest.mark.parametrize("edit", ["changed", "removed"])
def test_an_edited_or_removed_input_file_means_a_new_build(
    folder: Path, base_config: Config, built: BuiltPipeline, edit: str
):
    saved.save(base_config, built)
    entry = saved.entry_path(base_config, folder)
    document = json.loads(entry.read_text())
    if edit == "changed":  # as if steps/train.py had been edited since the save
        document["inputs"]["steps/train.py"] = "0" * 64
    else:  # a module the build loaded is gone
        document["inputs"]["steps/no_such_module.py"] = "0" * 64
    entry.write_text(json.dumps(document))
    assert saved.load(base_config) is None


def test_a_damaged_entry_is_built_again(folder: Path, base_config: Config, built: BuiltPipeline):
    saved.save(base_config, built)
    entry = saved.entry_path(base_config, folder)
    entry.write_text(entry.read_text()[:1000])
    assert saved.load(base_config) is None


def test_off_neither_saves_nor_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_config: Config, built: BuiltPipeline
):
    monkeypatch.setenv(saved.SAVED_ENV, saved.OFF)
    monkeypatch.chdir(tmp_path)
    saved.save(base_config, built)
    assert saved.load(base_config) is None
    assert saved.folder() is None
