"""Step caching must really hit: identical builds are byte-identical, and an edited script changes
only the steps that run it (downstream steps see it through property references at run time);
an edit of the shared job package changes every step that ships it, and only those."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config import Config
from config.paths import ROOT, SCRIPTS_DIR
from tabular.contract import definition_steps


def test_two_builds_in_separate_processes_are_byte_identical(tmp_path: Path) -> None:
    outputs = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.json"
        subprocess.run(
            [sys.executable, "-m", "pipelines", "definition", "--out", str(out)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def scripts_copy(tmp_path: Path) -> Path:
    """An editable copy of the job code."""
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    return scripts


def changed_steps(base: str, edited: str) -> set[str]:
    before, after = definition_steps(json.loads(base))[0], definition_steps(json.loads(edited))[0]
    changed = {name for name in before if before[name] != after[name]}
    # A condition step embeds its branches: judge it by its own conditions only.
    if (
        before["CheckMetric"]["Arguments"]["Conditions"]
        == after["CheckMetric"]["Arguments"]["Conditions"]
    ):
        changed.discard("CheckMetric")
    return changed


PREPROCESS_PASSES = {"Profile", "Preprocess", "FitTransformer"}
EVERY_JOB = {*PREPROCESS_PASSES, "Train", "Evaluate", "Register", "CreateModel"}
"""The steps that ship the shared job package (and the model, which holds Train's code)."""


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("preprocess.py", PREPROCESS_PASSES),
        ("train.py", {"Train"}),
        ("evaluate.py", {"Evaluate"}),
        ("inference.py", {"Evaluate", "Register", "CreateModel"}),
        ("tabular/values.py", EVERY_JOB),
        ("tabular/__init__.py", EVERY_JOB),
        # the report's code ships with Evaluate alone: an edit of it re-keys Evaluate only
        ("evaluation/report.py", {"Evaluate"}),
        ("evaluation/__init__.py", {"Evaluate"}),
    ],
)
def test_editing_a_script_changes_only_the_steps_that_run_it(
    script: str,
    expected: set[str],
    tmp_path: Path,
    base_config: Config,
    built,
    build,  # type: ignore[no-untyped-def]
) -> None:

    scripts = scripts_copy(tmp_path)
    with (scripts / script).open("a", encoding="utf-8") as handle:
        handle.write("\n# an edit\n")
    edited = build(base_config, scripts_dir=scripts)
    assert changed_steps(built.definition, edited.definition) == expected
    assert {a.s3_uri for a in edited.code} != {a.s3_uri for a in built.code}


def test_a_new_module_of_the_shared_package_ships_with_every_job(
    tmp_path: Path,
    base_config: Config,
    built,  # type: ignore[no-untyped-def]
) -> None:
    from pipelines.definition import build

    scripts = scripts_copy(tmp_path)
    (scripts / "tabular" / "extra.py").write_text("VALUE = 1\n", encoding="utf-8")
    (scripts / "notes.txt").write_text("not shipped\n", encoding="utf-8")
    edited = build(base_config, scripts_dir=scripts)
    assert changed_steps(built.definition, edited.definition) == EVERY_JOB


def test_settings_change_only_preprocess(tmp_path: Path, built) -> None:  # type: ignore[no-untyped-def]
    """Reading rules reach Preprocess's passes as a settings document; nothing else depends on
    them."""
    from config import PIPELINE_CONFIG, load_config
    from pipelines.definition import build

    config = tmp_path / "c.yaml"
    config.write_text(f"extends: {PIPELINE_CONFIG}\ndata: {{missing_values: ['', 'NULL']}}\n")
    edited = build(load_config(config, env={}))
    assert changed_steps(built.definition, edited.definition) == PREPROCESS_PASSES


def _evaluate_key(definition: str) -> dict:
    """What SageMaker keys Evaluate's cache on: its image, entry point, arguments and inputs."""
    step = definition_steps(json.loads(definition))[0]["Evaluate"]["Arguments"]
    return {k: step.get(k) for k in ("AppSpecification", "Environment", "ProcessingInputs")}


@pytest.mark.parametrize(
    ("setting", "changes_evaluate"),
    [
        # not read by the evaluation: its key stays
        ("registry: {inference_instance_types: [ml.c5.xlarge]}", False),
        ("approval: {local_policy: auto-reject}", False),
        ("data_quality: {fail_on_violation: false}", False),
        ("evaluation: {smoke_sample_rows: 20}", False),  # the default, written out
        # read by the evaluation (its metrics or its report): its key changes
        ("evaluation: {probability_threshold: 0.6}", True),
        ("evaluation: {metric: accuracy, threshold: 0.6}", True),  # the gate the report judges
        ("evaluation: {bootstrap_rounds: 20}", True),
    ],
)
def test_the_evaluations_key_changes_only_with_its_inputs(
    setting: str,
    changes_evaluate: bool,
    tmp_path: Path,
    built,
    build,  # type: ignore[no-untyped-def]
) -> None:
    from config import PIPELINE_CONFIG, load_config

    config = tmp_path / "c.yaml"
    config.write_text(f"extends: {PIPELINE_CONFIG}\n{setting}\n", encoding="utf-8")
    edited = build(load_config(config, env={}))
    assert (_evaluate_key(edited.definition) != _evaluate_key(built.definition)) is changes_evaluate


def test_the_evaluations_data_quality_inputs_are_property_references(built) -> None:  # type: ignore[no-untyped-def]
    """The DataQuality statistics reach Evaluate as the step's properties, never as this run's
    prefix: after a cache hit they name the cached run's files, so Evaluate's inputs (and key)
    stay the same from run to run; the gate's threshold is the MetricThreshold parameter."""
    key = _evaluate_key(built.definition)
    sources = {i["InputName"]: i["S3Input"]["S3Uri"] for i in key["ProcessingInputs"]}
    assert sources["data-quality"] == {"Get": "Steps.DataQuality.CalculatedBaselineStatistics"}
    assert sources["drift-baseline"] == {
        "Get": "Steps.DataQuality.BaselineUsedForDriftCheckStatistics"
    }
    assert "ExecutionId" not in json.dumps(key)
    arguments = key["AppSpecification"]["ContainerArguments"]
    threshold = arguments[arguments.index("--gate-threshold") + 1]
    assert threshold == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.MetricThreshold"}]}}
