"""Tests of scripts/train.py: arguments, parameters, training and the job end to end."""

from __future__ import annotations

import ast
import gc
import json
import re
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts import evaluate as ev
from scripts import inference, preprocess
from scripts import train as tr
from scripts.train import Hyperparameters, TrainingError
from tabular import contract, features, names
from tabular.errors import DataError, JobError
from tabular.schema import Schema, read_split


def test_unknown_arguments_are_ignored_and_paths_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "t"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.delenv("SM_CHANNEL_VALIDATION", raising=False)
    args, unknown = tr.build_parser().parse_known_args(
        ["--objective", "binary:logistic", "--num_round", "7", "--unexpected", "1"]
    )
    assert unknown == ["--unexpected", "1"]
    assert args.train == tmp_path / "t" and args.model_dir == tmp_path / "m"
    assert args.validation == Path("/opt/ml/input/data/validation")
    hp = tr.hyperparameters_from_args(args)
    assert hp.num_round == 7 and hp.nthread == -1 and hp.eval_metric is None


def test_objective_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        tr.build_parser().parse_known_args([])
    assert "--objective" in capsys.readouterr().err


def test_booster_params_use_hist_and_all_cores_by_default() -> None:
    params = tr.booster_params(Hyperparameters("binary:logistic", reg_lambda=2.0), "auc")
    assert params["tree_method"] == "hist"
    assert params["lambda"] == 2.0 and params["eval_metric"] == "auc"
    assert "nthread" not in params
    assert tr.booster_params(Hyperparameters("binary:logistic", nthread=3), "auc")["nthread"] == 3


def test_objective_must_fit_the_problem_type() -> None:
    tr.check_objective("reg:squarederror", "regression")
    with pytest.raises(TrainingError, match=r"objective='reg:squarederror' does not fit"):
        tr.check_objective("reg:squarederror", "binary")


def test_metric_definitions_match_the_printed_lines_only() -> None:
    (train_def, validation_def) = tr.metric_definitions("error@0.7")
    assert validation_def["Name"] == "validation:error@0.7"
    line = tr.METRIC_LINE_FORMAT.format(dataset="validation", metric="error@0.7", value=0.125)
    match = re.search(validation_def["Regex"], f"INFO {line}\n")
    assert match is not None and float(match.group(1)) == 0.125
    assert re.search(validation_def["Regex"], "[3]\tvalidation-error@0.7:0.2") is None
    assert re.search(train_def["Regex"], line) is None


def test_read_channel_checks_columns_against_the_schema(tmp_path: Path) -> None:
    schema = Schema("y", "binary", ["a", "b"], ["a", "b"], [])
    split = tmp_path / "train.parquet"
    pd.DataFrame({"y": [1.0], "b": [2.0], "a": [3.0]}).to_parquet(split)
    with pytest.raises(DataError, match=r"columns \['y', 'b', 'a'\] do not match"):
        list(tr.read_channel(tmp_path, "train", schema, None))
    pd.DataFrame({"y": [1.0, np.nan], "a": [2.0, 4.0], "b": [3.0, 5.0]}).to_parquet(split)
    with pytest.raises(DataError, match=r"train\.parquet row 2: target 'y' is missing"):
        list(tr.read_channel(tmp_path, "train", schema, None))
    split.write_bytes(b"y,a,b\n1,2,3\n")
    with pytest.raises(DataError, match=r"train\.parquet: not a readable Parquet file"):
        list(tr.read_channel(tmp_path, "train", schema, None))
    split.unlink()
    with pytest.raises(JobError, match=r"train\.parquet: not found .*'train' channel"):
        tr.read_channel(tmp_path, "train", schema, None)


def test_read_split_reads_every_shard_in_name_order(tmp_path: Path) -> None:
    schema = Schema("y", "regression", ["a"], ["a"], [])
    for index, rows in ((1, [3.0, 4.0]), (0, [1.0, 2.0])):
        frame = pd.DataFrame({"y": rows, "a": rows})
        frame.to_parquet(tmp_path / names.shard_file(names.TRAIN, index))
    features, labels = read_split(tmp_path, "train", schema, "fix", "fix")
    np.testing.assert_array_equal(labels, [1.0, 2.0, 3.0, 4.0])
    assert features.index[2] == ("train-part-00001.parquet", 1)


def test_a_channel_of_shards_is_read_file_by_file_in_name_order(tmp_path: Path) -> None:
    schema = Schema("y", "binary", ["a"], ["a"], [])
    for index, labels, values in ((1, [1.0], [3.0]), (0, [0.0, 1.0], [1.0, 2.0])):
        frame = pd.DataFrame({"y": labels, "a": values})
        frame.to_parquet(tmp_path / names.shard_file("train", index))
    pd.DataFrame({"y": [1.0], "a": [9.0]}).to_parquet(
        tmp_path / ".train-part-00002.parquet.x1.partial"
    )
    reader = tr.read_channel(tmp_path, "train", schema, _Fitted())
    assert [p.name for p in reader.files] == [
        "train-part-00000.parquet",
        "train-part-00001.parquet",
    ]
    batches = list(reader)
    assert [b[1].tolist() for b in batches] == [[0.0, 1.0], [1.0]]
    assert list(reader)[1][0].tolist() == [[3.0]]  # re-iterable: each pass reads again


def test_the_quantile_matrix_reads_its_batches_once_and_keeps_none_after() -> None:
    """XGBoost passes over the batches several times: the source is read once, and the kept
    batches go with the data iterator once the matrix is built (training holds bins only)."""
    rng = np.random.default_rng(0)
    reads: list[int] = []
    kept: list[weakref.ref[np.ndarray]] = []

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for index in range(3):
            reads.append(index)
            values = rng.normal(size=(50, 2)).astype(np.float32)
            kept.append(weakref.ref(values))
            yield values, rng.integers(0, 2, 50).astype(np.float32)

    matrix = tr.quantile_matrix(batches(), nthread=1)
    assert matrix.num_row() == 150 and matrix.num_col() == 2
    assert reads == [0, 1, 2]
    gc.collect()
    assert [ref() for ref in kept] == [None, None, None]


def test_without_keeping_batches_each_pass_reads_again_and_the_matrix_is_the_same() -> None:
    rng = np.random.default_rng(1)
    data = [
        (rng.normal(size=(40, 3)).astype(np.float32), rng.integers(0, 2, 40).astype(np.float32))
        for _ in range(3)
    ]

    class Counted:
        passes = 0

        def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            Counted.passes += 1
            yield from data

    kept = tr.quantile_matrix(data, nthread=1)
    reread = tr.quantile_matrix(Counted(), nthread=1, keep=False)
    assert Counted.passes > 1  # XGBoost's passes each read the source
    for left, right in zip(kept.get_quantile_cut(), reread.get_quantile_cut(), strict=True):
        np.testing.assert_array_equal(left, right)
    np.testing.assert_array_equal(kept.get_label(), reread.get_label())
    np.testing.assert_array_equal(kept.get_data().toarray(), reread.get_data().toarray())


def test_keep_batches_is_a_true_or_false_hyperparameter() -> None:
    parse = tr.build_parser().parse_known_args
    base = ["--objective", "binary:logistic"]
    assert tr.hyperparameters_from_args(parse(base)[0]).keep_batches is True
    args = parse([*base, "--keep_batches", "False"])[0]
    assert tr.hyperparameters_from_args(args).keep_batches is False
    with pytest.raises(SystemExit) as exited:
        parse([*base, "--keep_batches", "sometimes"])
    assert exited.value.code == 2


class _Identity:
    def transform(self, frame: object) -> object:
        return frame


class _Fitted:
    """A fitted transformer that passes numbers through."""

    named_transformers_ = {features.NUMERIC: _Identity()}


def test_the_cluster_comes_from_resourceconfig(tmp_path: Path) -> None:
    assert tr.read_cluster(tmp_path) == tr.Cluster(("algo-1",), "algo-1")
    (tmp_path / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    )
    cluster = tr.read_cluster(tmp_path)
    assert cluster.distributed and not cluster.is_first and cluster.first_host == "algo-1"
    (tmp_path / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]})
    )
    with pytest.raises(TrainingError, match=r"current_host 'algo-3' is not one of"):
        tr.read_cluster(tmp_path, TrainingError)


def test_a_host_without_a_shard_names_the_instance_count_fix(
    job_prepared: Callable[[str], Path], tmp_path: Path
) -> None:
    prepared = job_prepared("binary")
    cluster = tr.Cluster(("algo-1", "algo-2"), "algo-2")
    empty = tmp_path / "train"
    empty.mkdir()
    with pytest.raises(TrainingError, match=r"host algo-2 received no train shard.*Lower Train"):
        tr.run(
            Hyperparameters("binary:logistic"),
            empty,
            prepared / "validation",
            prepared / "transformer",
            tmp_path / "model",
            tmp_path / "out",
            cluster,
        )


def test_missing_transformer_channel_names_the_channel(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"schema\.json: not found.*'transformer' channel"):
        tr.load_transformer(tmp_path)


def test_train_booster_keeps_only_the_best_iteration() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 3))
    labels = (features[:, 0] + rng.normal(scale=2.0, size=300) > 0).astype(float)
    hp = Hyperparameters("binary:logistic", num_round=200, eta=0.5, early_stopping_rounds=5)
    result = tr.train_booster(
        hp, "binary", [(features[:200], labels[:200])], [(features[200:], labels[200:])]
    )
    assert result.eval_metric == "auc"
    assert result.best_iteration < 199  # early stopping kicked in
    assert result.booster.num_boosted_rounds() == result.best_iteration + 1
    assert set(result.scores) == {"train", "validation"}
    assert 0.5 < result.scores["validation"] <= 1.0


def test_invalid_hyperparameters_become_a_training_error() -> None:
    data = (np.zeros((4, 1)), np.array([0.0, 1.0, 0.0, 1.0]))
    hp = Hyperparameters("binary:logistic", eval_metric="not-a-metric", num_round=2)
    with pytest.raises(TrainingError, match="XGBoost rejected the hyperparameters"):
        tr.train_booster(hp, "binary", [data], [data])


def test_every_job_reads_with_the_one_shared_package() -> None:
    """Not copies kept identical: each job imports the same functions from `tabular`."""
    import tabular.schema
    import tabular.values

    assert preprocess.values.coerce_features is tabular.values.coerce_features
    assert inference.Schema.encode is tr.Schema.encode is tabular.schema.Schema.encode
    assert ev.read_split is tabular.schema.read_split
    assert tr.read_parts is tabular.schema.read_parts
    for module in (preprocess, tr, ev, inference):  # no job parses CSV on its own
        assert "read_csv(" not in Path(module.__file__).read_text(encoding="utf-8"), module


def _string_constants(path: Path) -> set[str]:
    """Every string literal of a module but its docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    }  # fmt: skip


def test_jobs_name_files_paths_and_types_only_through_the_job_package() -> None:
    """One name per thing: no job script spells a shared file name, path or type itself."""
    shared = {
        names.TRAIN_FILE, names.VALIDATION_FILE, names.TEST_FILE, names.SCORING_FILE,
        names.SCHEMA_FILE, names.TRANSFORMER_FILE, names.BOOSTER_FILE, names.EVALUATION_FILE,
        names.SERVING_SCRIPT, contract.MODEL_ARCHIVE, contract.CSV, contract.OPT_ML,
        names.BINARY, names.REGRESSION, names.TRAIN, names.VALIDATION, names.TEST,
    }  # fmt: skip
    for module in (preprocess, tr, ev, inference):
        literals = _string_constants(Path(module.__file__))
        spelled = sorted(v for v in literals if v in shared or v.startswith(contract.OPT_ML))
        assert spelled == [], f"{module.__name__} spells {spelled}"


@pytest.mark.parametrize(("problem_type", "metric"), [("binary", "auc"), ("regression", "rmse")])
def test_main_end_to_end(
    job_prepared: Callable[[str], Path],
    job_training_argv: Callable[[str, Path, Path], list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    problem_type: str,
    metric: str,
) -> None:
    argv = job_training_argv(problem_type, job_prepared(problem_type), tmp_path)
    assert tr.main([*argv, "--sagemaker_extra", "x"]) == 0
    out = capsys.readouterr().out

    model_dir = tmp_path / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        [*names.MODEL_FILES, names.TRAINING_HISTORY_FILE]
    )
    assert (model_dir / names.BOOSTER_FILE).read_bytes().startswith(b"{")  # JSON, not UBJSON
    metrics = json.loads((tmp_path / "output-data" / tr.METRICS_FILE).read_text())
    # the report's training curve: every round trained, and the one kept
    history = json.loads((model_dir / names.TRAINING_HISTORY_FILE).read_text())
    assert history["eval_metric"] == metric
    assert history["best_iteration"] == metrics["best_iteration"]
    assert len(history["validation"]) >= metrics["num_boosted_rounds"]
    assert history["validation"][metrics["best_iteration"]] == pytest.approx(
        metrics["scores"]["validation"]
    )
    assert metrics["eval_metric"] == metric
    assert metrics["num_boosted_rounds"] == metrics["best_iteration"] + 1
    validation = metrics["scores"]["validation"]
    (definition,) = [d for d in tr.metric_definitions(metric) if d["Name"].startswith("valid")]
    printed = re.search(definition["Regex"], out)
    assert printed is not None and float(printed.group(1)) == pytest.approx(validation, abs=1e-6)
    if problem_type == "binary":
        assert validation > 0.8
    else:
        assert validation < 3.0  # target spread is about 6


def test_main_reports_a_wrong_objective(
    job_prepared: Callable[[str], Path],
    job_training_argv: Callable[[str, Path, Path], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    argv = job_training_argv("binary", job_prepared("binary"), tmp_path)
    argv[argv.index("--objective") + 1] = "reg:squarederror"
    assert tr.main(argv) == 2
    assert "ERROR: hyperparameter objective='reg:squarederror'" in capsys.readouterr().err
    # A training job's FailureReason is the first 1024 characters of /opt/ml/output/failure.
    assert "does not fit the binary" in (tmp_path / "output" / "failure").read_text()
    assert not (tmp_path / "model").exists()


def test_float32_labels_train_the_model_float64_labels_train(tmp_path: Path) -> None:
    """The reader gives XGBoost its labels as float32 (float64 ones took XGBoost milliseconds
    per batch to set): the same booster, byte for byte, as the split's float64 labels."""
    rng = np.random.default_rng(5)
    values = rng.normal(size=600)
    target = values * 3.3 + rng.normal(size=600) / 7  # decimals float32 rounds
    pd.DataFrame({"y": target, "a": values}).to_parquet(tmp_path / "train.parquet")
    schema = Schema("y", "regression", ["a"], ["a"], [])
    transformer, _ = features.fit_transformer(pd.DataFrame({"a": values}), ["a"], [])
    reader = tr.read_channel(tmp_path, "train", schema, transformer)
    batches = list(reader)
    assert all(labels.dtype == np.float32 for _, labels in batches)
    wide = [(matrix, labels.astype(np.float64)) for matrix, labels in batches]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in wide]), target.astype(np.float32))
    hp = Hyperparameters("reg:squarederror", num_round=20, early_stopping_rounds=0, seed=3)
    models = [
        bytes(tr.train_booster(hp, "regression", data, data).booster.save_raw("json"))
        for data in (reader, wide, [(np.vstack([b[0] for b in batches]), target)])
    ]
    assert models[0] == models[1] == models[2]
