"""Across hosts: N local host processes preprocess disjoint input files and train one model on
disjoint shards.

The jobs run through the local runtime as SageMaker runs them: N host processes, each with its
own sandbox, resourceconfig.json and share of the ShardedByS3Key input or train channel; the
training hosts are joined by XGBoost's collective over loopback. The published definition for N
hosts is checked against the SageMaker API model.
"""

from __future__ import annotations

import copy
import json
import re
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import botocore.session
import numpy as np
import pandas as pd
import pytest
from botocore.validate import ParamValidator

from runtime.jobs import JobOutcome, container_path, run_training_job
from runtime.jobs.contract import HOSTS_DIR
from runtime.store import LocalS3
from scripts import preprocess
from scripts import train as tr
from tabular import names
from tabular.contract import definition_steps

BUCKET = "s3://bucket"
TARGET = "churn"


def _frame(rows: int) -> pd.DataFrame:
    """A binary data set with numbers, a category and label noise (AUC well below 1)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, 3))
    plan = rng.choice(["basic", "plus", "pro"], size=rows)
    signal = x[:, 0] - 0.5 * x[:, 1] + 0.8 * (plan == "pro") + rng.normal(scale=1.0, size=rows)
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "plan": plan})
    frame[TARGET] = np.where(signal > 0, "yes", "no")
    return frame


SCRIPTS = Path(preprocess.__file__).resolve().parent
HYPERPARAMETERS = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "num_round": "200",
    "max_depth": "4",
    "eta": "0.2",
    "early_stopping_rounds": "10",
}


def _prepare(frame: pd.DataFrame, root: Path, shards: int) -> Path:
    """Preprocess a binary data set into ``shards`` train files; return its output root."""
    frame.to_csv(root / "data.csv", index=False)
    settings = root / "settings.json"
    document = {"target": TARGET, "problem_type": "binary", "train_shards": shards}
    settings.write_text(json.dumps(document), encoding="utf-8")
    argv = ["--input-dir", str(root / "data.csv"), "--output-root", str(root / "output")]
    assert preprocess.main([*argv, "--settings", str(settings)]) == 0
    return root / "output"


def _store(root: Path, prepared: Path) -> LocalS3:
    """A local S3 holding the job code (loose files) and Preprocess's outputs."""
    store = LocalS3(root / "s3")
    code = [SCRIPTS / names.TRAIN_SCRIPT, *sorted((SCRIPTS / names.PACKAGE).glob("*.py"))]
    for path in code:
        store.put_bytes(f"{BUCKET}/code/{path.relative_to(SCRIPTS).as_posix()}", path.read_bytes())
    for path in sorted(p for p in prepared.rglob("*") if p.is_file()):
        store.put_bytes(
            f"{BUCKET}/prepared/{path.relative_to(prepared).as_posix()}", path.read_bytes()
        )
    return store


def _request(hosts: int) -> dict[str, Any]:
    def channel(name: str, distribution: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3Uri": f"{BUCKET}/prepared/{name}",
                    "S3DataType": "S3Prefix",
                    "S3DataDistributionType": distribution,
                }
            },
            "ContentType": names.PARQUET if name != names.TRANSFORMER else "text/csv",
            "InputMode": "File",
        }

    return {
        "AlgorithmSpecification": {
            "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
            "TrainingInputMode": "File",
        },
        "HyperParameters": {
            **HYPERPARAMETERS,
            "sagemaker_program": names.TRAIN_SCRIPT,
            "sagemaker_submit_directory": f"{BUCKET}/code",
        },
        "InputDataConfig": [
            channel(names.TRAIN, "ShardedByS3Key"),
            channel(names.VALIDATION, "FullyReplicated"),
            channel(names.TRANSFORMER, "FullyReplicated"),
        ],
        "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/models"},
        "ResourceConfig": {"InstanceCount": hosts, "InstanceType": "ml.m5.xlarge"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "RoleArn": "arn:aws:iam::000000000000:role/test",
    }


def _metrics(store: LocalS3, name: str) -> dict[str, Any]:
    with tarfile.open(store.path(f"{BUCKET}/models/{name}/output/output.tar.gz")) as tar:
        member = tar.extractfile(tr.METRICS_FILE)
        assert member is not None
        return json.loads(member.read())


def _rows(paths: list[Path]) -> list[tuple[Any, ...]]:
    """Every row of these split files (Parquet), as tuples of values (missing ones None)."""
    rows: list[tuple[Any, ...]] = []
    for path in paths:
        frame = pd.read_parquet(path).astype(object)
        frame = frame.where(frame.notna(), None)  # NaN != NaN: compare missing as None
        rows += frame.itertuples(index=False, name=None)
    return rows


def _host_rows(sandbox: Path) -> list[tuple[Any, ...]]:
    """Every train row a host's channel held."""
    channel = container_path(sandbox, f"/opt/ml/input/data/{names.TRAIN}")
    return _rows(sorted(channel.glob(f"*{names.PARQUET_SUFFIX}")))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same prepared data trained on 1 and on 2 local hosts."""
    root = tmp_path_factory.mktemp("scale")
    prepared = _prepare(_frame(6000), root, shards=5)
    store = _store(root, prepared)
    outcomes = {
        hosts: run_training_job(f"train-{hosts}", _request(hosts), store, root / f"sandbox-{hosts}")
        for hosts in (1, 2)
    }
    return {"root": root, "prepared": prepared, "store": store, "outcomes": outcomes}


def test_two_hosts_train_every_row_exactly_once(trained: dict[str, Any]) -> None:
    outcome: JobOutcome = trained["outcomes"][2]
    assert outcome.succeeded, outcome.failure_reason
    sandbox = outcome.log_path.parent
    first, second = sandbox, sandbox / HOSTS_DIR / "algo-2"
    config = json.loads(
        container_path(second, "/opt/ml/input/config/resourceconfig.json").read_text()
    )
    assert config["current_host"] == "algo-2" and config["hosts"] == ["algo-1", "algo-2"]

    shards = sorted(p.name for p in (trained["prepared"] / names.TRAIN).iterdir())
    assert shards == [names.shard_file(names.TRAIN, i) for i in range(5)]
    staged = [
        sorted(p.name for p in container_path(host, "/opt/ml/input/data/train").iterdir())
        for host in (first, second)
    ]
    assert staged == [shards[0::2], shards[1::2]]  # disjoint, together every shard

    written = _rows(sorted((trained["prepared"] / names.TRAIN).iterdir()))
    used = _host_rows(first) + _host_rows(second)
    assert Counter(used) == Counter(written)  # every train row on exactly one host

    metrics = _metrics(trained["store"], "train-2")
    per_host = metrics["train_rows_per_host"]
    assert per_host == {"algo-1": len(_host_rows(first)), "algo-2": len(_host_rows(second))}
    assert metrics["train_rows"] == len(written) == sum(per_host.values())
    # Only the first host writes the model; the second's model dir stays empty.
    assert sorted(p.name for p in container_path(first, "/opt/ml/model").iterdir()) == sorted(
        (*names.MODEL_FILES, names.TRAINING_HISTORY_FILE)
    )
    assert list(container_path(second, "/opt/ml/model").iterdir()) == []
    log = outcome.log_path.read_text(encoding="utf-8")
    other = (second / "job.log").read_text(encoding="utf-8")
    assert "got rank 0" in log and "validation-auc: " in log
    assert "got rank 1" in other and "validation-auc: " not in other  # metrics from one host
    # Early stopping is decided once for all: every host stops at the round the model keeps.
    stopped = {re.findall(r"best_iteration: (\d+)", text)[-1] for text in (log, other)}
    assert stopped == {str(metrics["best_iteration"])}


def test_two_hosts_reach_the_auc_of_one(trained: dict[str, Any]) -> None:
    one, two = (_metrics(trained["store"], f"train-{hosts}") for hosts in (1, 2))
    assert one["train_rows_per_host"] == {"algo-1": two["train_rows"]}
    gap = abs(one["scores"]["validation"] - two["scores"]["validation"])
    assert gap < 0.01, (one["scores"], two["scores"])


def test_more_hosts_than_shards_fail_fast_and_name_the_fix(tmp_path: Path) -> None:
    store = _store(tmp_path, _prepare(_frame(300), tmp_path, shards=1))
    started = time.monotonic()
    outcome = run_training_job("train-2", _request(2), store, tmp_path / "sandbox")
    assert not outcome.succeeded
    reason = outcome.failure_reason or ""
    assert "host algo-2 received no train shard" in reason and "Lower TrainInstanceCount" in reason
    # The first host, waiting for the second in the collective, was stopped with the job.
    assert time.monotonic() - started < tr.TRACKER_TIMEOUT_SECONDS / 3
    assert not store.path(f"{BUCKET}/models/train-2").exists()


# --------------------------------------------------------------------------- definition


def _resolved(node: Any, instance_count: int) -> Any:
    """The Train step's arguments as SageMaker receives them for one execution."""
    if isinstance(node, dict):
        if set(node) == {"Get"}:
            return (
                instance_count
                if node["Get"].endswith("InstanceCount")
                else (
                    "ml.m5.xlarge" if node["Get"].endswith("InstanceType") else "s3://bucket/prefix"
                )
            )
        if set(node) == {"Std:Join"}:
            return "s3://bucket/joined"
        return {key: _resolved(value, instance_count) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolved(item, instance_count) for item in node]
    return node


@pytest.mark.parametrize("instance_count", [1, 2, 8])
def test_the_train_step_for_n_hosts_is_a_valid_create_training_job(
    definition: dict, instance_count: int
) -> None:
    arguments = copy.deepcopy(definition_steps(definition)[0]["Train"]["Arguments"])
    assert arguments["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainInstanceCount"}
    request = {"TrainingJobName": "train", **_resolved(arguments, instance_count)}
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateTrainingJob").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    distribution = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for channel in request["InputDataConfig"]
    }
    assert distribution == {
        names.TRAIN: "ShardedByS3Key",
        names.VALIDATION: "FullyReplicated",
        names.TRANSFORMER: "FullyReplicated",
    }
    assert {c["InputMode"] for c in request["InputDataConfig"]} == {"File"}
    assert request["ResourceConfig"]["InstanceCount"] == instance_count


def test_the_config_refuses_more_training_instances_than_shards(
    base_config: Any, tmp_path: Path
) -> None:
    from config import load_config

    path = tmp_path / "c.yaml"
    root = Path(__file__).resolve().parents[2]
    path.write_text(
        f"extends: {root / 'configs' / 'local.yaml'}\n"
        "jobs: {train: {instance_count: 3}}\ntraining: {shards: 2}\n",
        encoding="utf-8",
    )
    with pytest.raises(Exception, match=r"instance_count 3 exceeds training.shards 2"):
        load_config(path, env={})


# --------------------------------------------------------------------------- the whole graph

TWO_HOSTS = """\
extends: {local}
sample_data: {{rows: 3000, seed: 11}}
jobs: {{train: {{instance_count: 2}}}}
training:
  shards: 3
  hyperparameters: {{num_round: 40, early_stopping_rounds: 10}}
# 3000 rows: the test AUC moves by about +-0.05 with the draw, so the gate sits well below it
# (these runs test the graph; the gate's own tests set MetricThreshold).
evaluation: {{bootstrap_rounds: 5, threshold: 0.6}}
"""


def test_run_local_trains_on_two_hosts_end_to_end(tmp_path: Path, build: Any) -> None:
    from config import load_config
    from pipelines.local import run_local, runner_for

    root = Path(__file__).resolve().parents[2]
    path = tmp_path / "two.yaml"
    path.write_text(TWO_HOSTS.format(local=root / "configs" / "local.yaml"), encoding="utf-8")
    cfg = load_config(path, env={})
    run = run_local(cfg, build(cfg), workspace=tmp_path / "ws", quiet=True)
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    assert run.execution.parameters["TrainInstanceCount"] == 2
    assert 0.6 < run.metrics["auc"] <= 1.0

    steps = run.execution.steps
    outputs = steps["Preprocess"].properties["ProcessingOutputConfig"]["Outputs"]
    uri = next(o["S3Output"]["S3Uri"] for o in outputs if o["OutputName"] == names.TRAIN)
    published = runner_for(cfg, tmp_path / "ws").store.path(uri)
    shards = sorted(published.glob(f"*{names.PARQUET_SUFFIX}"))
    assert [p.name for p in shards] == [names.shard_file(names.TRAIN, i) for i in range(3)]
    written = _rows(shards)

    sandbox = Path(str(steps["Train"].log)).parent
    hosts = [sandbox, sandbox / HOSTS_DIR / "algo-2"]
    used = [_host_rows(host) for host in hosts]
    assert all(used) and Counter(used[0] + used[1]) == Counter(written)


# ------------------------------------------------------------------ Preprocess across hosts

PROCESSING_PASSES = ("Profile", "Preprocess", "FitTransformer")


@pytest.mark.parametrize("instance_count", [1, 2, 8])
def test_the_preprocess_steps_for_n_hosts_are_valid_create_processing_jobs(
    definition: dict, instance_count: int
) -> None:
    steps = definition_steps(definition)[0]
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateProcessingJob").input_shape
    for name in PROCESSING_PASSES:
        arguments = copy.deepcopy(steps[name]["Arguments"])
        request = {"ProcessingJobName": name.lower(), **_resolved(arguments, instance_count)}
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), (name, report.generate_report())
        inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
        sharded = {n for n, s in inputs.items() if s["S3DataDistributionType"] == "ShardedByS3Key"}
        count = request["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
        if name == "FitTransformer":  # one instance merges every host's statistics
            assert count == 1 and sharded == set()
        else:  # the input files shared out whole; every other input replicated
            assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == {
                "Get": "Parameters.PreprocessInstanceCount"
            }
            assert count == instance_count and sharded == {"data"}
            assert inputs["data"]["S3Uri"] == "s3://bucket/prefix"  # InputDataUri


FILES = 4
PREPROCESS_HOSTS = """\
extends: {local}
data:
  input_uri: {data}
  target: churn
  problem_type: binary
jobs: {{preprocess: {{instance_count: 2}}, train: {{instance_count: 2}}}}
training:
  shards: 4
  hyperparameters: {{num_round: 40, early_stopping_rounds: 10}}
evaluation: {{bootstrap_rounds: 5, threshold: 0.6}}
"""


def _published(store: LocalS3, record: Any, output: str) -> Path:
    outputs = record.properties["ProcessingOutputConfig"]["Outputs"]
    return store.path(next(o["S3Output"]["S3Uri"] for o in outputs if o["OutputName"] == output))


def test_run_local_preprocesses_and_trains_on_two_hosts_end_to_end(
    tmp_path: Path, build: Any
) -> None:
    from config import load_config
    from pipelines.local import run_local, runner_for

    frame = _frame(4000)
    data = tmp_path / "data"
    data.mkdir()
    for index in range(FILES):
        frame.iloc[index * 1000 : (index + 1) * 1000].to_csv(
            data / f"part-{index}.csv", index=False
        )
    root = Path(__file__).resolve().parents[2]
    path = tmp_path / "hosts.yaml"
    path.write_text(
        PREPROCESS_HOSTS.format(local=root / "configs" / "local.yaml", data=data.as_uri() + "/"),
        encoding="utf-8",
    )
    cfg = load_config(path, env={})
    run = run_local(cfg, build(cfg), workspace=tmp_path / "ws", quiet=True)
    assert run.execution.status == "Succeeded", run.execution.failure_reason
    assert run.execution.parameters["PreprocessInstanceCount"] == 2
    assert 0.6 < run.metrics["auc"] <= 1.0
    steps = run.execution.steps
    store = runner_for(cfg, tmp_path / "ws").store

    # Profile and Preprocess: two host processes, each with its resourceconfig and its files.
    for name in ("Profile", "Preprocess"):
        sandbox = Path(str(steps[name].log)).parent
        staged = []
        for host, where in (("algo-1", sandbox), ("algo-2", sandbox / HOSTS_DIR / "algo-2")):
            config = json.loads(
                container_path(where, "/opt/ml/config/resourceconfig.json").read_text()
            )
            assert config == {"current_host": host, "hosts": ["algo-1", "algo-2"]}
            folder = container_path(where, "/opt/ml/processing/input/data")
            staged.append(sorted(p.name for p in folder.iterdir()))
        assert staged == [["part-0.csv", "part-2.csv"], ["part-1.csv", "part-3.csv"]]

    # Every input row in exactly one split, across the hosts' files.
    split_rows = []
    for split in names.SPLITS:
        files = sorted(_published(store, steps["Preprocess"], split).glob("*.parquet"))
        assert {f.name.split("-part-")[1][:6] for f in files} == {"algo-1", "algo-2"}
        split_rows += _rows(files)
    assert Counter(row[1] for row in split_rows) == Counter(frame["x1"].tolist())

    # The transformer and schema: those of one host reading every file.
    one = tmp_path / "one"
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"target": TARGET, "problem_type": "binary", "train_shards": 4}))
    argv = ["--input-dir", str(data), "--output-root", str(one), "--settings", str(settings)]
    assert preprocess.main(argv) == 0
    fitted = _published(store, steps["FitTransformer"], names.TRANSFORMER)
    schema = json.loads((fitted / names.SCHEMA_FILE).read_text())
    expected = json.loads((one / names.TRANSFORMER / names.SCHEMA_FILE).read_text())
    assert schema == {**expected, "data_version": schema["data_version"]}

    # Train's two hosts used every train row exactly once.
    train_files = sorted(_published(store, steps["Preprocess"], names.TRAIN).glob("*.parquet"))
    sandbox = Path(str(steps["Train"].log)).parent
    used = [_host_rows(host) for host in (sandbox, sandbox / HOSTS_DIR / "algo-2")]
    assert all(used) and Counter(used[0] + used[1]) == Counter(_rows(train_files))
