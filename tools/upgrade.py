"""`make upgrade`: the newest versions pyproject.toml allows, arriving as one reviewed diff.

1. Relock with `--upgrade`; when no lock file changes, that is all.
2. Sync the venv to the committed lock, lint and test.
3. Install the new lock, rebuild the golden definition, lint and test again.
4. Print the version changes, the golden definition's diff and the test results before and after
   (also written to build/upgrade/report.txt, with the logs beside it).

If relocking or installing fails (or is interrupted), the previous lock files come back and the venv
is synced to them. Otherwise the venv ends on the new lock, which is not committed yet: the report
says so, and how to go back.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.lockfiles import (
    BUILD_LOCK,
    LOCK_DIR,
    ROOT,
    SETS,
    TOOLS_LOCK,
    Change,
    by_name,
    diff_locks,
    format_changes,
    lock_path,
    read_lock,
)

UPGRADE_DIR = ROOT / "build" / "upgrade"
GOLDEN = ROOT / "tests" / "golden" / "pipeline.json"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
LOCK_NAMES = (*SETS, BUILD_LOCK, TOOLS_LOCK)
# The superset: one resolution for every set (see SETS).
ALL_SET = list(SETS)[-1]
STATE = """State:
  The venv holds the new lock in requirements/, which is NOT committed yet.
  Keep it: review this report, then commit requirements/ and tests/golden/ together (with any
  pyproject.toml change, and the README's versions if a test names them).
  Drop it: git checkout -- requirements tests/golden && make install"""


class UpgradeError(Exception):
    """Stops the upgrade with a message; the exit status is the second argument."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SuiteResults:
    lint_ok: bool
    ran: bool  # pytest wrote its report
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failing: tuple[str, ...] = ()
    not_run: str = ""  # why neither lint nor the tests ran

    @property
    def ok(self) -> bool:
        return self.lint_ok and self.ran and self.failed == 0

    def summary(self) -> str:
        if self.not_run:
            return f"not run: {self.not_run}"
        lint = "lint passed" if self.lint_ok else "lint FAILED"
        if not self.ran:
            return f"{lint}; pytest did not run to the end (see its log)"
        return f"{lint}; pytest {self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def read_junit(path: Path, lint_ok: bool) -> SuiteResults:
    """Counts and failing test ids from pytest's JUnit XML (errors count as failures)."""
    if not path.is_file():
        return SuiteResults(lint_ok=lint_ok, ran=False)
    passed = failed = skipped = 0
    failing = []
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failing.append(f"{case.get('classname', '')}::{case.get('name', '')}")
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return SuiteResults(lint_ok, True, passed, failed, skipped, tuple(failing))


def compare_tests(before: SuiteResults, after: SuiteResults) -> list[str]:
    lines = [f"  before: {before.summary()}", f"  after:  {after.summary()}"]
    groups = (
        ("newly failing", sorted(set(after.failing) - set(before.failing))),
        ("failing before, passing now", sorted(set(before.failing) - set(after.failing))),
        ("failing before and after", sorted(set(before.failing) & set(after.failing))),
    )
    for title, names in groups:
        if names:
            lines.append(f"  {title} ({len(names)}):")
            lines.extend(f"    {name}" for name in names)
    return lines


def golden_diff(before: str, after: str) -> list[str]:
    label = GOLDEN.relative_to(ROOT).as_posix()
    diff = difflib.unified_diff(
        before.splitlines(), after.splitlines(), f"a/{label}", f"b/{label}", lineterm=""
    )
    return [f"  {line}" for line in diff] or ["  unchanged"]


def lock_changes(before_dir: Path, after_dir: Path) -> list[str]:
    """Version changes of the superset with the sets they touch; then the build and tool locks."""
    lines = [f"Versions ({LOCK_DIR.relative_to(ROOT).as_posix()}/, one resolution for all sets):"]
    changes = diff_locks(
        read_lock(lock_path(ALL_SET, before_dir)), read_lock(lock_path(ALL_SET, after_dir))
    )
    lines.extend(format_changes(changes, where=_set_membership(changes, before_dir, after_dir)))
    for name in (BUILD_LOCK, TOOLS_LOCK):
        old, new = read_lock(lock_path(name, before_dir)), read_lock(lock_path(name, after_dir))
        other = diff_locks(old, new)
        if other:
            lines.append(f"{name.capitalize()} ({name}.txt):")
            lines.extend(format_changes(other))
    return lines


def _set_membership(
    changes: Sequence[Change], before_dir: Path, after_dir: Path
) -> Mapping[str, str]:
    members: dict[str, list[str]] = {}
    for install_set in SETS:
        names = set(by_name(read_lock(lock_path(install_set, after_dir))))
        names |= set(by_name(read_lock(lock_path(install_set, before_dir))))
        for change in changes:
            if change.name in names:
                members.setdefault(change.name, []).append(install_set)
    return {name: " ".join(sets) for name, sets in members.items()}


# --------------------------------------------------------------------------- the steps


def say(message: str) -> None:
    print(f"\n== upgrade: {message}", flush=True)


def make(*arguments: str, log: Path | None = None) -> int:
    """A make target of this project; its output goes to the terminal, or to `log`."""
    command = [os.environ.get("MAKE", "make"), "--no-print-directory", *arguments]
    return run(command, log)


def run(command: Sequence[str | Path], log: Path | None) -> int:
    if log is None:
        return subprocess.run([str(part) for part in command], cwd=ROOT, check=False).returncode
    with log.open("w", encoding="utf-8") as stream:
        return subprocess.run(
            [str(part) for part in command],
            cwd=ROOT,
            stdout=stream,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode


def run_tests(label: str) -> SuiteResults:
    say(f"lint and tests {label} (logs: build/upgrade/{label}-*.log)")
    if make("install", log=UPGRADE_DIR / f"{label}-install.log") != 0:
        results = SuiteResults(
            lint_ok=False,
            ran=False,
            not_run=f"the lock does not install (build/upgrade/{label}-install.log)",
        )
        print(f"   {results.summary()}", flush=True)
        return results
    lint_ok = make("lint", log=UPGRADE_DIR / f"{label}-lint.log") == 0
    junit = UPGRADE_DIR / f"{label}-pytest.xml"
    junit.unlink(missing_ok=True)
    run([VENV_PYTHON, "-m", "pytest", f"--junitxml={junit}"], UPGRADE_DIR / f"{label}-pytest.log")
    results = read_junit(junit, lint_ok)
    print(f"   {results.summary()}", flush=True)
    return results


def require_clean_tree() -> None:
    paths = [LOCK_DIR.relative_to(ROOT).as_posix(), GOLDEN.parent.relative_to(ROOT).as_posix()]
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if status.returncode != 0:
        raise UpgradeError(
            "make upgrade reports against the committed lock, and needs a git checkout: "
            + status.stderr.strip(),
            2,
        )
    if status.stdout.strip():
        raise UpgradeError(
            f"{' and '.join(paths)} have uncommitted changes; commit or discard them first, so "
            f"that the report shows the upgrade alone:\n{status.stdout.rstrip()}",
            2,
        )


def copy_locks(source: Path, target: Path, names: Sequence[str], keep_time: bool) -> None:
    target.mkdir(parents=True, exist_ok=True)
    copy = shutil.copy2 if keep_time else shutil.copyfile
    for name in names:
        copy(lock_path(name, source), lock_path(name, target))


def restore(before_dir: Path, resync: bool) -> str:
    # The old files keep their old times, so a venv still synced to them is not reinstalled.
    copy_locks(before_dir, LOCK_DIR, LOCK_NAMES, keep_time=True)
    if resync and make("install") != 0:
        return "the lock files are back as committed, but `make install` failed: run it again"
    return "the lock files are back as committed" + (", and so is the venv" if resync else "")


def upgrade() -> int:
    require_clean_tree()
    before_dir, after_dir = UPGRADE_DIR / "before", UPGRADE_DIR / "after"
    shutil.rmtree(UPGRADE_DIR, ignore_errors=True)
    copy_locks(LOCK_DIR, before_dir, LOCK_NAMES, keep_time=True)
    golden_before = GOLDEN.read_text(encoding="utf-8") if GOLDEN.is_file() else ""

    say("relock with the newest versions pyproject.toml allows")
    try:
        relocked = make("lock", "LOCK_ARGS=--upgrade") == 0
        if relocked:
            copy_locks(LOCK_DIR, after_dir, LOCK_NAMES, keep_time=True)
    finally:
        # The venv still holds the committed lock: test it on that first.
        restore(before_dir, resync=False)
    if not relocked:
        raise UpgradeError("relocking failed (see above); nothing changed")
    changed = [
        name
        for name in LOCK_NAMES
        if lock_path(name, before_dir).read_bytes() != lock_path(name, after_dir).read_bytes()
    ]
    if not changed:
        say("every package is already at the newest version pyproject.toml allows: nothing to do")
        return 0

    before = run_tests("before")
    try:
        say(f"install the new lock ({', '.join(f'{name}.txt' for name in changed)})")
        copy_locks(after_dir, LOCK_DIR, changed, keep_time=False)
        if make("install") != 0:
            restored = restore(before_dir, resync=True)
            raise UpgradeError(f"installing the new lock failed (see above); {restored}")
    except KeyboardInterrupt:
        raise UpgradeError(f"interrupted; {restore(before_dir, resync=True)}", 130) from None

    try:
        say("rebuild the golden definition")
        golden_ok = make("golden") == 0
        after = run_tests("after")
    except KeyboardInterrupt:
        raise UpgradeError(f"interrupted.\n{STATE}", 130) from None

    golden_after = GOLDEN.read_text(encoding="utf-8") if GOLDEN.is_file() else ""
    report = [
        *lock_changes(before_dir, after_dir),
        "",
        "Golden definition" + ("" if golden_ok else " (make golden FAILED: see its output above)"),
        *golden_diff(golden_before, golden_after),
        "",
        "Tests:",
        *compare_tests(before, after),
        "",
        STATE,
    ]
    text = "\n".join(report) + "\n"
    (UPGRADE_DIR / "report.txt").write_text(text, encoding="utf-8")
    say("report (also build/upgrade/report.txt)")
    print(text, end="", flush=True)
    return 0 if golden_ok and after.ok else 1


def main() -> int:
    try:
        return upgrade()
    except UpgradeError as error:
        print(f"make upgrade: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print("make upgrade: interrupted before anything changed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
