"""Preprocess across hosts (scripts/preprocess.py ``--stage``, tabular.parts): the profile,
split and fit passes on N hosts give what one host gives, whatever N."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from scripts import preprocess as pp
from tabular import names
from tabular.errors import DataError
from tabular.feature_types import TypeProfile
from tabular.parts import ProfilePart, merge_parts

TARGET = "churn"


def _files(frame: pd.DataFrame, folder: Path, count: int) -> list[Path]:
    """``frame`` as ``count`` CSV files of consecutive rows."""
    folder.mkdir(parents=True)
    paths = []
    size = -(-len(frame) // count)
    for index in range(count):
        path = folder / f"part-{index:02d}.csv"
        frame.iloc[index * size : (index + 1) * size].to_csv(path, index=False)
        paths.append(path)
    return paths


def _common(settings: Path, root: Path) -> list[str]:
    return ["--settings", str(settings), "--output-root", str(root)]


def _run_hosts(
    source: Path, settings: Path, work: Path, hosts: int, scoring: Path | None = None
) -> Path:
    """The three passes on ``hosts`` hosts, each given every hosts-th file (ShardedByS3Key);
    each pass's outputs from every host gathered as SageMaker uploads them to one prefix."""
    files = sorted(source.iterdir())
    names_ = [f"algo-{k}" for k in range(1, hosts + 1)]
    published = work / "published"
    for stage in ("profile", "split"):
        for index, host in enumerate(names_):
            root = work / stage / host
            data = root / "data"
            data.mkdir(parents=True)
            for path in files[index::hosts]:
                shutil.copy(path, data / path.name)
            config = root / "config"
            config.mkdir()
            (config / "resourceconfig.json").write_text(
                json.dumps({"current_host": host, "hosts": names_})
            )
            argv = [
                *_common(settings, root / "output"), "--input-dir", str(data),
                "--stage", stage, "--resource-config-dir", str(config),
                "--profile-dir", str(published / names.PROFILE),
            ]  # fmt: skip
            if scoring is not None and stage == "split":
                argv += ["--scoring-dir", str(scoring)]  # replicated: every host has it
            assert pp.main(argv) == 0
            shutil.copytree(root / "output", published, dirs_exist_ok=True)
    argv = [
        *_common(settings, published), "--stage", "fit",
        "--profile-dir", str(published / names.PROFILE),
        "--stats-dir", str(published / names.STATS),
        "--resource-config-dir", str(work / "none"),
    ]  # fmt: skip
    assert pp.main(argv) == 0
    return published


def _dense(matrix: object) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix)


def _split(root: Path, split: str) -> pd.DataFrame:
    files = sorted((root / split).glob("*.parquet"))
    frame = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture
def data(tmp_path: Path, job_frame: Callable[..., pd.DataFrame]) -> tuple[Path, Path]:
    """Five files; a column of numbers in the first file and words in the others (categorical);
    the last file holds one class only; a few rows without a target."""
    frame = job_frame("binary", rows=600, seed=3)
    frame["code"] = [f"c{i % 5}" for i in range(len(frame))]
    frame.loc[:119, "code"] = [str(i % 7) for i in range(120)]
    frame.loc[480:, TARGET] = "yes"
    frame.loc[[5, 250], TARGET] = np.nan
    source = tmp_path / "source"
    _files(frame, source, 5)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"target": TARGET, "problem_type": "binary"}))
    return source, settings


def test_two_or_three_hosts_give_one_hosts_splits_transformer_and_schema(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    source, settings = data
    one = tmp_path / "one"
    assert pp.main([*_common(settings, one), "--input-dir", str(source)]) == 0
    rows = sum(len(pd.read_csv(p)) for p in source.iterdir()) - 2
    sample = pd.concat([pd.read_csv(p) for p in sorted(source.iterdir())]).drop(columns=[TARGET])
    schema = json.loads((one / names.TRANSFORMER / names.SCHEMA_FILE).read_text())
    assert "code" in schema["categorical_columns"]
    expected = joblib.load(one / names.TRANSFORMER / names.TRANSFORMER_FILE)
    for hosts in (2, 3):
        many = _run_hosts(source, settings, tmp_path / f"hosts-{hosts}", hosts)
        assert json.loads((many / names.TRANSFORMER / names.SCHEMA_FILE).read_text()) == schema
        fitted = joblib.load(many / names.TRANSFORMER / names.TRANSFORMER_FILE)
        typed = sample.astype({"code": str, "color": object, "plan": object})
        np.testing.assert_array_equal(
            _dense(fitted.transform(typed)), _dense(expected.transform(typed))
        )
        total = 0
        for split in names.SPLITS:
            pd.testing.assert_frame_equal(_split(many, split), _split(one, split))
            total += len(_split(many, split))
        assert total == rows  # every row with a target in exactly one split
        shards = sorted(p.name for p in (many / names.TRAIN).iterdir())
        assert shards[0] == names.shard_file(names.TRAIN, 0, host="algo-1")
        baseline = pd.concat(pd.read_csv(p) for p in (many / names.BASELINE).iterdir())
        assert len(baseline) == schema["rows"][names.TRAIN]


def test_scoring_data_is_checked_and_written_once_by_the_first_host(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    source, settings = data
    scoring = tmp_path / "scoring"
    scoring.mkdir()
    rows = pd.read_csv(sorted(source.iterdir())[2]).drop(columns=[TARGET]).head(7)
    rows.to_csv(scoring / "batch.csv", index=False)
    one = tmp_path / "one"
    argv = [*_common(settings, one), "--input-dir", str(source), "--scoring-dir", str(scoring)]
    assert pp.main(argv) == 0
    many = _run_hosts(source, settings, tmp_path / "many", 2, scoring)
    assert sorted(p.name for p in (many / names.SCORING).iterdir()) == ["batch.csv"]
    assert (many / names.SCORING / "batch.csv").read_bytes() == (
        one / names.SCORING / "batch.csv"
    ).read_bytes()


def test_a_host_given_no_file_profiles_and_splits_nothing(
    data: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, settings = data
    for path in sorted(source.iterdir())[1:]:
        path.unlink()
    one = tmp_path / "one"
    assert pp.main([*_common(settings, one), "--input-dir", str(source)]) == 0
    many = _run_hosts(source, settings, tmp_path / "many", 2)
    assert sorted(p.name for p in (many / names.STATS).iterdir()) == [
        "stats-algo-1.pkl", "stats-algo-2.pkl",
    ]  # fmt: skip
    for split in names.SPLITS:
        pd.testing.assert_frame_equal(_split(many, split), _split(one, split))
    assert "algo-2 received no input file: the job has 2 hosts" in caplog.text


def test_hosts_whose_files_have_other_columns_are_refused(tmp_path: Path) -> None:
    def part(columns: list[str], name: str) -> ProfilePart:
        return ProfilePart(TypeProfile(pp.Dialect()), input_columns=columns, first_file=name)

    with pytest.raises(
        DataError, match=r"b\.csv: columns \['a', 'z'\] differ from those of a\.csv"
    ):
        merge_parts([part(["a", "z"], "b.csv"), part(["a", "y"], "a.csv")])


def test_the_fit_without_statistics_names_the_missing_output(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, settings = data
    absent = str(tmp_path / "absent")
    argv = [*_common(settings, tmp_path / "out"), "--stage", "fit",
            "--profile-dir", absent, "--stats-dir", absent]  # fmt: skip
    assert pp.main(argv) == 2
    assert "no profile.pkl found. Connect the profile output" in capsys.readouterr().err
