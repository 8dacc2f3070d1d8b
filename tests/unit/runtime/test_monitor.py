"""runtime.monitor: the local Model Monitor analyzer (statistics, constraints, violations)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime import monitor

DRIFT_MESSAGE = re.compile(r"^Baseline drift distance: ([\d.]+) exceeds threshold: 0\.1$")


def _feature(statistics: dict, name: str) -> dict:
    return next(feature for feature in statistics["features"] if feature["name"] == name)


def _baseline(frame: pd.DataFrame) -> tuple[dict, dict]:
    statistics = monitor.compute_statistics(frame)
    return statistics, monitor.suggest_constraints(statistics)


def _check(current: pd.DataFrame, baseline: pd.DataFrame) -> list[dict]:
    statistics, constraints = _baseline(baseline)
    report = monitor.check_violations(monitor.compute_statistics(current), statistics, constraints)
    return report["violations"]


def _kinds(violations: list[dict]) -> list[tuple[str, str]]:
    return [(v["feature_name"], v["constraint_check_type"]) for v in violations]


def _population(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Numeric, integer and categorical columns with a fixed pattern of gaps."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(loc=shift, size=rows),
            "count": rng.integers(0, 20, size=rows),
            "plan": rng.choice(["basic", "pro", "team"], size=rows, p=[0.5, 0.3, 0.2]),
        }
    )
    frame.loc[::10, "x"] = np.nan
    return frame


def _write_csv(path: Path, frame: pd.DataFrame, header: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, header=header)
    return path


# --------------------------------------------------------------------------- statistics


def test_statistics_of_a_mixed_frame():
    frame = pd.DataFrame(
        {
            "age": [30, 40, None, 50],
            "score": [0.5, -1.5, 2.0, 3.0],
            "city": ["a", "b", "a", None],
            "empty": [None, None, None, None],
        }
    )
    statistics = monitor.compute_statistics(frame)

    assert statistics["version"] == 0.0
    assert statistics["dataset"] == {"item_count": 4}
    assert [f["name"] for f in statistics["features"]] == ["age", "score", "city", "empty"]
    age = _feature(statistics, "age")
    assert age["inferred_type"] == "Integral"  # float dtype because of the gap, whole values
    numbers = age["numerical_statistics"]
    assert numbers["common"] == {"num_present": 3, "num_missing": 1}
    assert (numbers["mean"], numbers["sum"], numbers["min"], numbers["max"]) == (40, 120, 30, 50)
    assert numbers["std_dev"] == pytest.approx(np.std([30, 40, 50]))
    kll = numbers["distribution"]["kll"]
    assert len(kll["buckets"]) == 10
    assert kll["buckets"][0]["lower_bound"] == 30 and kll["buckets"][-1]["upper_bound"] == 50
    assert sum(bucket["count"] for bucket in kll["buckets"]) == 3
    assert kll["sketch"] == {"parameters": {"c": 0.64, "k": 2048.0}, "data": [[30, 40, 50]]}
    score = _feature(statistics, "score")
    assert score["inferred_type"] == "Fractional"
    assert score["numerical_statistics"]["min"] == -1.5
    city = _feature(statistics, "city")
    assert city["inferred_type"] == "String"
    assert city["string_statistics"] == {
        "common": {"num_present": 3, "num_missing": 1},
        "distinct_count": 2,
        "distribution": {
            "categorical": {"buckets": [{"value": "a", "count": 2}, {"value": "b", "count": 1}]}
        },
    }
    empty = _feature(statistics, "empty")
    assert empty["inferred_type"] == "Unknown"
    assert empty["string_statistics"]["common"] == {"num_present": 0, "num_missing": 4}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "-2", "+3"], "Integral"),
        (["1.0", "2"], "Fractional"),
        (["1e3", "2"], "Fractional"),
        (["1", "x"], "String"),
        (["", None], "Unknown"),
    ],
)
def test_types_are_inferred_from_the_text(values, expected):
    frame = pd.DataFrame({"v": pd.Series(values, dtype="string")})
    assert monitor.compute_statistics(frame)["features"][0]["inferred_type"] == expected


def test_mixed_text_counts_each_type():
    frame = pd.DataFrame({"v": ["1", "2.5", "x", None]})
    feature = monitor.compute_statistics(frame)["features"][0]
    assert feature["inferred_type"] == "String"
    assert feature["inferred_type_counts"] == {"Integral": 1, "Fractional": 1, "String": 1}


def test_csv_values_keep_their_text_type(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("n,x,label\n1,1.0,a\n2,2.0,b\n,3.0,\n", encoding="utf-8")
    statistics = monitor.compute_statistics(monitor.read_dataset(path, header=True))
    assert [f["inferred_type"] for f in statistics["features"]] == [
        "Integral",
        "Fractional",
        "String",
    ]
    assert _feature(statistics, "n")["numerical_statistics"]["common"]["num_missing"] == 1


def test_sketch_of_a_large_column_is_a_capped_quantile_sample():
    frame = pd.DataFrame({"v": np.arange(5000, dtype=float)})
    kll = monitor.compute_statistics(frame)["features"][0]["numerical_statistics"]
    sample = kll["distribution"]["kll"]["sketch"]["data"][0]
    assert len(sample) == 2048 and sample[0] == 0 and sample[-1] == 4999
    assert sum(b["count"] for b in kll["distribution"]["kll"]["buckets"]) == 5000


# --------------------------------------------------------------------------- constraints


def test_constraints_suggested_from_the_statistics():
    frame = pd.DataFrame(
        {
            "age": [30, 40, None, 50, 60, 70],
            "score": [0.5, -1.5, 2.0, 3.0, 1.0, 1.0],
            "plan": ["pro", "basic", "pro", "pro", "basic", None],
            "id": ["a", "b", "c", "d", "e", "f"],
        }
    )
    constraints = monitor.suggest_constraints(monitor.compute_statistics(frame))

    assert constraints["version"] == 0.0
    by_name = {feature["name"]: feature for feature in constraints["features"]}
    assert by_name["age"] == {
        "name": "age",
        "inferred_type": "Integral",
        "completeness": pytest.approx(5 / 6),
        "num_constraints": {"is_non_negative": True},
    }
    assert by_name["score"]["num_constraints"] == {"is_non_negative": False}
    assert by_name["score"]["completeness"] == 1.0
    assert by_name["plan"]["string_constraints"] == {"domains": ["pro", "basic"]}
    assert "string_constraints" not in by_name["id"]  # every value unique: no domain
    assert constraints["monitoring_config"] == {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
            "categorical_comparison_threshold": 0.1,
            "categorical_drift_method": "LInfinity",
        },
    }


# --------------------------------------------------------------------------- violations


def test_a_dataset_has_no_violations_against_its_own_baseline():
    frame = _population(300, seed=1)
    assert _check(frame, frame) == []


def test_a_new_sample_of_the_same_population_has_no_violations():
    assert _check(_population(2000, seed=2), _population(2000, seed=3)) == []


def test_a_shifted_numeric_column_is_drift():
    violations = _check(_population(500, seed=4, shift=5.0), _population(500, seed=5))
    assert _kinds(violations) == [("x", "baseline_drift_check")]
    distance = float(DRIFT_MESSAGE.match(violations[0]["description"]).group(1))
    assert distance > 0.8


def test_changed_category_frequencies_are_drift():
    baseline = pd.DataFrame({"plan": ["basic", "pro"] * 50})
    current = pd.DataFrame({"plan": ["basic"] * 95 + ["pro"] * 5})
    violations = _check(current, baseline)
    assert _kinds(violations) == [("plan", "baseline_drift_check")]
    assert DRIFT_MESSAGE.match(violations[0]["description"])


def test_robust_comparison_allows_for_small_samples_and_simple_does_not():
    baseline_statistics, constraints = _baseline(pd.DataFrame({"v": range(20)}))
    current = monitor.compute_statistics(pd.DataFrame({"v": range(3, 23)}))
    assert monitor.check_violations(current, baseline_statistics, constraints)["violations"] == []

    constraints["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Simple"
    violations = monitor.check_violations(current, baseline_statistics, constraints)["violations"]
    assert _kinds(violations) == [("v", "baseline_drift_check")]
    assert violations[0]["description"] == "Baseline drift distance: 0.15 exceeds threshold: 0.1"


def test_missing_and_extra_columns():
    baseline = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
    current = pd.DataFrame({"a": [1, 2], "c": [5, 6]})
    violations = _check(current, baseline)
    assert _kinds(violations) == [("b", "missing_column_check"), ("c", "extra_column_check")]
    assert "current dataset: 2 columns" in violations[0]["description"]


@pytest.mark.parametrize(
    ("baseline", "current", "observed"),
    [
        ([1, 2, 3, 4], ["1", "2", "x", "4"], "75%"),
        ([1, 2, 3, 4], [1.5, 2.0, 3.0, 4.0], "75%"),
        (["a", "b", "a", "b"], None, None),
    ],
)
def test_data_type_check(baseline, current, observed):
    base = pd.DataFrame({"n": baseline})
    if current is None:  # a String baseline accepts any value
        assert _check(pd.DataFrame({"n": [1, 2, 3, 4]}), base) == []
        return
    violations = _check(pd.DataFrame({"n": current}), base)
    assert _kinds(violations)[0] == ("n", "data_type_check")
    assert f"only {observed} of the 4 present values are Integral" in violations[0]["description"]


def test_fractional_baseline_accepts_integers():
    assert _check(pd.DataFrame({"n": [1, 2, 3]}), pd.DataFrame({"n": [1.5, 2, 3]})) == []


def test_completeness_check():
    violations = _check(pd.DataFrame({"n": [1, None, 3, 4]}), pd.DataFrame({"n": [1, 2, 3, 4]}))
    assert _kinds(violations) == [("n", "completeness_check")]
    assert "Expected completeness: 100%" in violations[0]["description"]
    assert "Observed: 75% (3 of 4 values present)" in violations[0]["description"]


def test_categorical_values_check():
    baseline = pd.DataFrame({"plan": ["basic", "pro"] * 20})
    current = pd.DataFrame({"plan": ["basic", "pro"] * 19 + ["enterprise", "basic"]})
    violations = _check(current, baseline)
    assert _kinds(violations) == [("plan", "categorical_values_check")]
    expected = "97.5% of values are in the domain (outside: 'enterprise')"
    assert expected in violations[0]["description"]


def test_non_negative_check():
    violations = _check(pd.DataFrame({"n": [-1, 2, 3, 4]}), pd.DataFrame({"n": [0, 2, 3, 4]}))
    assert _kinds(violations) == [("n", "non_negative_check")]
    assert "Observed minimum: -1" in violations[0]["description"]


def test_feature_overrides_and_disabled_constraints():
    baseline_statistics, constraints = _baseline(pd.DataFrame({"n": [1, 2, 3, 4] * 25}))
    current = monitor.compute_statistics(pd.DataFrame({"n": [None, 9, 9, 9] * 25}))
    assert len(monitor.check_violations(current, baseline_statistics, constraints)["violations"])

    constraints["monitoring_config"]["evaluate_constraints"] = "Disabled"
    constraints["features"][0]["monitoringConfigOverrides"] = {
        "distribution_constraints": {"comparison_threshold": 1.0}
    }
    assert monitor.check_violations(current, baseline_statistics, constraints)["violations"] == []


def test_chi_squared_is_refused_loudly():
    statistics, constraints = _baseline(pd.DataFrame({"plan": ["a", "b"]}))
    constraints["monitoring_config"]["distribution_constraints"]["categorical_drift_method"] = (
        "ChiSquared"
    )
    with pytest.raises(monitor.MonitorError, match="categorical_drift_method: ChiSquared"):
        monitor.check_violations(statistics, statistics, constraints)


# --------------------------------------------------------------------------- job and CLI


def test_baseline_job_writes_valid_files_from_a_directory(tmp_path):
    data = tmp_path / "train"
    _write_csv(data / "part-1.csv", _population(120, seed=6))
    _write_csv(data / "nested" / "part-2.csv", _population(80, seed=7))
    (data / "_SUCCESS").write_text("", encoding="utf-8")
    out = tmp_path / "out"

    result = monitor.run_baseline_job(data, True, out, None, None)

    assert sorted(path.name for path in out.iterdir()) == ["constraints.json", "statistics.json"]
    assert result.violations_path is None and result.violations == []
    statistics = json.loads(result.statistics_path.read_text(encoding="utf-8"))
    constraints = json.loads(result.constraints_path.read_text(encoding="utf-8"))
    assert statistics["dataset"]["item_count"] == 200 == result.item_count
    assert [f["name"] for f in constraints["features"]] == ["x", "count", "plan"]

    current = _write_csv(tmp_path / "current.csv", _population(200, seed=8, shift=4.0))
    checked = monitor.run_baseline_job(
        current, True, tmp_path / "check", result.statistics_path, result.constraints_path
    )
    report = json.loads(checked.violations_path.read_text(encoding="utf-8"))
    assert report == {"violations": checked.violations}
    assert _kinds(checked.violations) == [("x", "baseline_drift_check")]
    assert sorted(path.name for path in (tmp_path / "check").iterdir()) == [
        "constraint_violations.json",
        "constraints.json",
        "statistics.json",
    ]

    monitor.run_baseline_job(current, True, tmp_path / "check", None, None)
    assert not (tmp_path / "check" / "constraint_violations.json").exists()  # no stale report


def test_files_without_header_get_spark_column_names(tmp_path):
    path = _write_csv(tmp_path / "data.csv", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), False)
    statistics = monitor.compute_statistics(monitor.read_dataset(path, header=False))
    assert [(f["name"], f["inferred_type"]) for f in statistics["features"]] == [
        ("_c0", "Integral"),
        ("_c1", "String"),
    ]


def test_cli_prints_violations_and_exits_0(tmp_path, capsys):
    baseline = tmp_path / "baseline.csv"
    baseline.write_text("n,plan\n1,a\n2,b\n3,a\n4,b\n", encoding="utf-8")
    assert monitor.main(["--dataset", str(baseline), "--output-dir", str(tmp_path / "b")]) == 0
    current = tmp_path / "current.csv"  # pandas would write 1.0, 2.0: a data type violation
    current.write_text("n,plan\n1,a\n2,b\n3,a\n,b\n", encoding="utf-8")
    argv = [
        "--dataset", str(current),
        "--output-dir", str(tmp_path / "c"),
        "--baseline-statistics", str(tmp_path / "b" / "statistics.json"),
        "--baseline-constraints", str(tmp_path / "b" / "constraints.json"),
    ]  # fmt: skip

    assert monitor.main(argv) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].endswith(
        "4 rows; wrote statistics.json, constraints.json, "
        f"constraint_violations.json to {tmp_path / 'c'}; 1 violation(s)"
    )
    assert lines[-1].startswith("  n: completeness_check: Data completeness requirement")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "file is empty"),
        ("a,b\n", "no data rows"),
        ("a,b\n1,2,3\n", "could not be parsed as CSV"),
    ],
)
def test_cli_unusable_input_exits_2_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"

    assert monitor.main(["--dataset", str(path), "--output-dir", str(out)]) == 2

    error = capsys.readouterr().err
    assert error.startswith(f"ERROR: {path}: ") and message in error
    assert not out.exists()


def test_cli_refuses_a_directory_without_csv_and_a_broken_baseline(tmp_path, capsys):
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    assert monitor.main(["--dataset", str(empty_dir), "--output-dir", str(tmp_path / "o")]) == 2
    assert f"ERROR: {empty_dir}: no *.csv files" in capsys.readouterr().err

    data = _write_csv(tmp_path / "data.csv", pd.DataFrame({"n": [1]}))
    broken = tmp_path / "constraints.json"
    broken.write_text("{not json", encoding="utf-8")
    argv = ["--dataset", str(data), "--output-dir", str(tmp_path / "o")]
    assert monitor.main([*argv, "--baseline-constraints", str(broken)]) == 2
    assert f"ERROR: {broken}: the constraints file is not valid JSON" in capsys.readouterr().err


def test_files_with_different_headers_are_refused(tmp_path):
    _write_csv(tmp_path / "d" / "1.csv", pd.DataFrame({"a": [1]}))
    second = _write_csv(tmp_path / "d" / "2.csv", pd.DataFrame({"b": [1]}))
    with pytest.raises(monitor.MonitorError, match=f"^{re.escape(str(second))}: columns"):
        monitor.read_dataset(tmp_path / "d", header=True)
