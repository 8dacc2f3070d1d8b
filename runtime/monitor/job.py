"""The analyzer job: read the data set, profile it, suggest or check, write the files.

CLI::

    python -m runtime.monitor --dataset PATH [--no-header] --output-dir DIR \\
        [--baseline-statistics FILE --baseline-constraints FILE]

Exit code 0 when the job ran (also with violations: the caller decides what they
mean), 2 with an ``ERROR: ...`` line for unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from runtime.files import write_atomic
from runtime.monitor.constraints import suggest_constraints
from runtime.monitor.contract import CSV_SUFFIX, NO_HEADER_PREFIX, BaselineResult, MonitorError
from runtime.monitor.statistics import compute_statistics
from runtime.monitor.violations import check_violations
from tabular.contract import CONSTRAINTS_FILE, STATISTICS_FILE, VIOLATIONS_FILE


def read_dataset(dataset: Path, header: bool) -> pd.DataFrame:
    """Read a CSV file, or every ``*.csv`` under a directory (sorted), as text columns.

    Without a header the columns are named ``_c0``, ``_c1``, ... as Spark names them.
    Raises :class:`MonitorError` naming the file for missing, empty or malformed input.
    """
    if dataset.is_dir():
        files = sorted(path for path in dataset.rglob(f"*{CSV_SUFFIX}") if path.is_file())
        if not files:
            raise MonitorError(
                f"{dataset}: no *{CSV_SUFFIX} files in this directory. Point --dataset at the "
                "CSV files of the baseline data set."
            )
    elif dataset.is_file():
        files = [dataset]
    else:
        raise MonitorError(
            f"{dataset}: no such file or directory. Give a CSV file or a directory of CSV files."
        )
    frames: list[pd.DataFrame] = []
    for path in files:
        frame = _read_csv(path, header)
        if frames and list(frame.columns) != list(frames[0].columns):
            raise MonitorError(
                f"{path}: columns {list(frame.columns)} differ from {list(frames[0].columns)} "
                f"in {files[0]}. All files of a data set must share one header."
            )
        frames.append(frame)
    data = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    del frames
    if data.empty:
        where = files[0] if len(files) == 1 else dataset
        raise MonitorError(
            f"{where}: no data rows (only a header). Export the data set again with its rows."
        )
    return data


def _read_csv(path: Path, header: bool) -> pd.DataFrame:
    try:
        if path.stat().st_size == 0:
            raise MonitorError(f"{path}: file is empty. Remove it or export the data again.")
        frame = pd.read_csv(
            path, dtype="string[pyarrow]", engine="pyarrow", header=0 if header else None
        )
    except pd.errors.EmptyDataError:
        raise MonitorError(f"{path}: file is empty. Remove it or export the data again.") from None
    except OSError as exc:
        raise MonitorError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    except ValueError as exc:  # ParserError, ArrowInvalid, UnicodeDecodeError
        raise MonitorError(
            f"{path}: could not be parsed as CSV ({exc}). The file must be UTF-8, "
            "comma-separated, with the same number of fields on every line."
        ) from None
    if not header:
        frame.columns = [f"{NO_HEADER_PREFIX}{i}" for i in range(frame.shape[1])]
    return frame


def load_json(path: Path, what: str) -> dict[str, Any]:
    """Load a statistics or constraints file written by a baseline job."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        reason = exc.strerror or exc
        raise MonitorError(f"{path}: cannot read the {what} file ({reason}).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MonitorError(
            f"{path}: the {what} file is not valid JSON ({exc}). Give the {what} written "
            "by a baseline job."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise MonitorError(
            f"{path}: the {what} file has no 'features' list. Give the {what} written by a "
            "baseline job."
        )
    return data


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Publish ``payload`` as JSON at ``path`` whole (:func:`runtime.files.write_atomic`)."""
    write_atomic(path, json.dumps(payload, indent=2, allow_nan=False) + "\n", durable=True)


def run_baseline_job(
    dataset: Path,
    header: bool,
    output_dir: Path,
    baseline_statistics: Path | None = None,
    baseline_constraints: Path | None = None,
) -> BaselineResult:
    """Profile ``dataset`` into ``output_dir``; check it when a baseline is given.

    statistics.json and constraints.json describe ``dataset`` and are always written;
    constraint_violations.json is written when ``baseline_constraints`` is given (drift
    also needs ``baseline_statistics``), and a stale one is removed otherwise. Nothing is
    written when the input is unusable.
    """
    if baseline_statistics is not None and baseline_constraints is None:
        raise MonitorError(
            f"{baseline_statistics}: baseline statistics need baseline constraints too "
            "(--baseline-constraints), which hold the thresholds of the check."
        )
    base_statistics = load_json(baseline_statistics, "statistics") if baseline_statistics else None
    base_constraints = (
        load_json(baseline_constraints, "constraints") if baseline_constraints else None
    )
    frame = read_dataset(dataset, header)
    statistics = compute_statistics(frame)
    del frame
    constraints = suggest_constraints(statistics)
    report = None
    if base_constraints is not None:
        try:
            report = check_violations(statistics, base_statistics, base_constraints)
        except MonitorError as exc:
            raise MonitorError(f"{baseline_constraints}: {exc}") from None
    output_dir.mkdir(parents=True, exist_ok=True)
    statistics_path = output_dir / STATISTICS_FILE
    constraints_path = output_dir / CONSTRAINTS_FILE
    violations_path = output_dir / VIOLATIONS_FILE
    write_json_atomic(statistics_path, statistics)
    write_json_atomic(constraints_path, constraints)
    if report is None:
        violations_path.unlink(missing_ok=True)
    else:
        write_json_atomic(violations_path, report)
    return BaselineResult(
        statistics_path=statistics_path,
        constraints_path=constraints_path,
        violations_path=violations_path if report is not None else None,
        violations=report["violations"] if report is not None else [],
        item_count=int(statistics["dataset"]["item_count"]),
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.monitor",
        description="Local Model Monitor analyzer: data-quality baseline and constraint check.",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="CSV file, or directory whose *.csv files form the data set",
    )
    parser.add_argument(
        "--no-header",
        dest="header",
        action="store_false",
        help="the CSV files have no header row (columns become _c0, _c1, ...)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        required=True,
        help="where statistics.json, constraints.json and violations go",
    )
    parser.add_argument(
        "--baseline-statistics",
        type=Path,
        help="statistics.json of the baseline (enables the drift check)",
    )
    parser.add_argument(
        "--baseline-constraints",
        type=Path,
        help="constraints.json of the baseline (enables the constraint checks)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0 ran, 2 unusable input)."""
    args = _parse_args(argv)
    try:
        result = run_baseline_job(
            args.dataset,
            args.header,
            args.output_dir,
            args.baseline_statistics,
            args.baseline_constraints,
        )
    except MonitorError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    written = [result.statistics_path.name, result.constraints_path.name]
    if result.violations_path is not None:
        written.append(result.violations_path.name)
    checked = "" if result.violations_path is None else f"; {len(result.violations)} violation(s)"
    print(
        f"{args.dataset}: {result.item_count} rows; wrote {', '.join(written)} "
        f"to {args.output_dir}{checked}"
    )
    for violation in result.violations:
        print(
            f"  {violation['feature_name']}: {violation['constraint_check_type']}: "
            f"{violation['description']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
