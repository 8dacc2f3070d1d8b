"""Data problems through the whole local pipeline: names as data, scoring files, failure reasons,
high cardinality, a second data set in one model package group, the first run's summary."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from config import Config, load_config
from pipelines.local import LocalRun, run_local, runner_for, summary_table

FAST = {
    "training": {"hyperparameters": {"num_round": 20, "early_stopping_rounds": 5}},
    "evaluation": {"bootstrap_rounds": 5, "threshold": 0.5},
    "approval": {"local_policy": "auto-approve"},
}


def customers(rows: int = 400, seed: int = 0, names: dict[str, str] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 50.0, rows)
    calls = rng.integers(0, 10, rows)
    plan = rng.choice(["basic", "pro", "NA"], rows)
    churn = (spend / 100 + calls / 5 + (plan == "basic") + rng.normal(0, 0.5, rows)) > 2.0
    frame = pd.DataFrame(
        {"spend": spend.round(2), "calls": calls, "plan": plan, "label": churn.astype(int)}
    )
    return frame.rename(columns=names or {})


def config(tmp_path: Path, data: Path, **data_fields: Any) -> Config:
    fields: dict[str, Any] = {"input_uri": data.as_uri(), "target": "label"}
    fields["problem_type"] = "binary"
    fields.update(data_fields)
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"data": fields, **FAST}), encoding="utf-8")  # JSON is YAML
    return load_config(path, env={})


def run(cfg: Config, workspace: Path) -> LocalRun:
    from pipelines.sdk import prepare_sdk

    prepare_sdk(cfg)  # as the CLI does before it imports the builders
    from pipelines.definition import build

    return run_local(cfg, build(cfg), workspace=workspace, quiet=True)


def predictions(cfg: Config, workspace: Path, result: LocalRun) -> list[list[str]]:
    store = runner_for(cfg, workspace).store
    uri = result.execution.steps["BatchScore"].properties["TransformOutput"]["S3OutputPath"]
    lines: list[list[str]] = []
    for item in sorted(store.objects(uri), key=lambda o: o.relative):
        lines += list(csv.reader(io.StringIO(item.path.read_text(encoding="utf-8"))))
    return lines


def test_column_and_target_names_are_data_not_arguments(tmp_path: Path) -> None:
    """Commas, leading dashes, '=', quotes, spaces inside and unicode survive to the model."""
    names = {"spend": "spend, EUR", "calls": "-calls", "plan": 'plan "x"=y', "label": "-churn é"}
    data = tmp_path / "data.csv"
    customers(names=names).to_csv(data, index=False, header=False)
    columns = list(names.values())
    cfg = config(tmp_path, data, target="-churn é", columns=columns, positive_class="1")
    workspace = tmp_path / "ws"
    result = run(cfg, workspace)
    assert result.execution.status == "Succeeded", result.execution.failure_reason
    scored = predictions(cfg, workspace, result)
    assert scored and all(len(line) == 4 for line in scored)  # three features, a prediction


def test_a_scoring_file_with_a_header_row_scores_only_its_records(tmp_path: Path) -> None:
    data, scoring = tmp_path / "data.csv", tmp_path / "scoring.csv"
    customers().to_csv(data, index=False)
    customers(rows=25, seed=3).drop(columns=["label"]).to_csv(scoring, index=False)
    cfg = config(tmp_path, data, scoring_uri=scoring.as_uri())
    workspace = tmp_path / "ws"
    result = run(cfg, workspace)
    assert result.execution.status == "Succeeded", result.execution.failure_reason
    scored = predictions(cfg, workspace, result)
    assert len(scored) == 25, "the header is recognised, not scored as a record"
    assert all(0 < float(line[-1]) < 1 for line in scored)


def test_a_scoring_file_with_the_training_layout_and_semicolons(tmp_path: Path) -> None:
    """The scoring file is read with the training data's rules; its target column is ignored."""
    data, scoring = tmp_path / "data.csv", tmp_path / "scoring.csv"
    customers().to_csv(data, index=False, sep=";", decimal=",")
    customers(rows=10, seed=4).to_csv(scoring, index=False, sep=";", decimal=",", header=False)
    cfg = config(tmp_path, data, scoring_uri=scoring.as_uri(), delimiter=";", decimal=",")
    workspace = tmp_path / "ws"
    result = run(cfg, workspace)
    assert result.execution.status == "Succeeded", result.execution.failure_reason
    assert len(predictions(cfg, workspace, result)) == 10


@pytest.mark.parametrize(
    ("scoring_text", "expected"),
    [
        (
            "amount,calls,plan\n1.5,2,basic\n",
            "scoring.csv: line 1 ['amount', 'calls', 'plan'] looks like a header row",
        ),
        ("1.5,2\n", "scoring.csv: line 1 has 2 field(s)"),
        ("1.5,2,basic\n1.5,x,pro\n", "scoring.csv line 2: column 'calls' is numeric, but 'x'"),
    ],
    ids=["other header", "wrong field count", "text in a number"],
)
def test_a_scoring_file_the_model_cannot_read_fails_before_training(
    tmp_path: Path, scoring_text: str, expected: str
) -> None:
    data, scoring = tmp_path / "data.csv", tmp_path / "scoring.csv"
    customers().to_csv(data, index=False)
    scoring.write_text(scoring_text, encoding="utf-8")
    cfg = config(tmp_path, data, scoring_uri=scoring.as_uri())
    workspace = tmp_path / "ws"
    result = run(cfg, workspace)
    assert result.execution.status == "Failed"
    assert expected in (result.execution.steps["Preprocess"].failure_reason or "")
    assert result.execution.steps["Train"].status == "NotStarted"
    assert runner_for(cfg, workspace).state.packages() == [], "nothing registered"


def test_a_missing_scoring_file_is_a_usage_error(tmp_path: Path) -> None:
    from pipelines.local import LocalRunError

    data = tmp_path / "data.csv"
    customers().to_csv(data, index=False)
    cfg = config(tmp_path, data, scoring_uri=(tmp_path / "absent.csv").as_uri())
    with pytest.raises(LocalRunError, match=r"data.scoring_uri '.*absent.csv' does not exist"):
        run(cfg, tmp_path / "ws")


def test_a_processing_failure_reason_is_its_exit_message(tmp_path: Path) -> None:
    """Preprocess writes /opt/ml/output/message (what SageMaker returns as ExitMessage); the
    local FailureReason is the file's first 1024 characters, as SageMaker shows it."""
    data = tmp_path / "data.csv"
    frame = customers().astype({"spend": str})
    frame.loc[7, "spend"] = "1e39"
    frame.to_csv(data, index=False)
    cfg = config(tmp_path, data)
    result = run(cfg, tmp_path / "ws")
    record = result.execution.steps["Preprocess"]
    assert record.status == "Failed" and record.log
    message = (Path(record.log).parent / "opt" / "ml" / "output" / "message").read_text()
    assert record.failure_reason == message.strip()[:1024]
    assert "data.csv line 9: column 'spend'" in message and "float32" in message
    assert "first run in this model package group: drift not checked, and no baseline" in (
        summary_table(result)
    )
    assert "baseline registered" not in summary_table(result)


def test_high_cardinality_is_refused_or_kept_as_top_k(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    frame = customers(rows=600)
    frame["customer_id"] = [f"C{i:05d}" for i in range(len(frame))]
    frame.to_csv(data, index=False)
    refused = run(config(tmp_path, data, max_categories=50), tmp_path / "ws")
    # counted on the train split's statistics, merged across hosts: FitTransformer refuses it
    reason = refused.execution.steps["FitTransformer"].failure_reason or ""
    assert re.search(r"categorical column 'customer_id' has 4[12]\d distinct values", reason)
    for fix in ("data.drop_columns: ['customer_id']", "data.high_cardinality: top_k"):
        assert fix in reason
    cfg = config(tmp_path, data, max_categories=50, high_cardinality="top_k")
    kept = run(cfg, tmp_path / "ws2")
    assert kept.execution.status == "Succeeded", kept.execution.failure_reason
    store = runner_for(cfg, tmp_path / "ws2").store
    (schema_file,) = [
        o.path
        for o in store.objects(
            kept.execution.steps["FitTransformer"].properties["ProcessingOutputConfig"]["Outputs"][
                0
            ]["S3Output"]["S3Uri"]
        )
        if o.relative == "schema.json"
    ]
    schema = json.loads(schema_file.read_text())
    assert schema["matrix_layout"] == "sparse"
    assert schema["category_counts"]["customer_id"] == schema["rows"]["train"]  # all distinct


def test_a_second_data_set_in_the_same_group_says_what_happened(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    first_data, second_data = tmp_path / "first.csv", tmp_path / "second.csv"
    customers().to_csv(first_data, index=False)
    other = customers(seed=5).rename(columns={"spend": "revenue", "calls": "tickets"})
    other.to_csv(second_data, index=False)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = run(config(tmp_path / "one", first_data), workspace)
    assert first.execution.status == "Succeeded", first.execution.failure_reason
    second = run(config(tmp_path / "two", second_data), workspace)
    assert second.execution.steps["DataQuality"].status == "Failed"
    text = summary_table(second)
    assert "the data's columns differ from the drift baseline of model package group" in text
    assert "registry.model_package_group" in text
    assert "data_quality.skip_check: true and data_quality.register_new_baseline: true" in text
    assert "SkipDataQualityCheck=true RegisterNewBaseline=true" in text
