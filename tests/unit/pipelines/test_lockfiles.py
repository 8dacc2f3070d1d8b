"""The lock files agree with pyproject.toml, with each other and with the venv (no network).

pyproject.toml declares the compatible ranges; requirements/*.txt pin what `make install` puts in
the venv. A dependency added to pyproject.toml without `make lock`, a lock edited by hand, or a venv
left behind by an older lock all fail here, naming the package and the fix.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from itertools import pairwise
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from tools.lockfiles import (
    BUILD_LOCK,
    KEY_PACKAGES,
    LOCK_DIR,
    ROOT,
    SETS,
    TOOLS_LOCK,
    Change,
    LockError,
    by_name,
    canonical_name,
    diff_locks,
    format_changes,
    lock_path,
    read_lock,
    report_order,
)
from tools.upgrade import SuiteResults, compare_tests, read_junit

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
# How uv marks a requirement that comes straight from pyproject.toml.
DIRECT = f"{PROJECT['name']} (pyproject.toml)"
# Packages the installer itself may leave in a venv (seeded by `python -m venv`), and the project.
NOT_LOCKED = {"pip", "setuptools", "wheel", canonical_name(PROJECT["name"])}


def declared(install_set: str) -> dict[str, Requirement]:
    lines = list(PROJECT["dependencies"])
    for extra in SETS[install_set]:
        lines += PROJECT["optional-dependencies"][extra]
    return {canonical_name(req.name): req for req in map(Requirement, lines)}


def applies_here(pin_marker: str) -> bool:
    return not pin_marker or Marker(pin_marker).evaluate()


def test_every_extra_belongs_to_a_locked_set() -> None:
    extras = set(PROJECT["optional-dependencies"])
    locked = {extra for extras_of_set in SETS.values() for extra in extras_of_set}
    assert extras == locked, (
        f"pyproject.toml's extras {sorted(extras)} differ from the locked sets' "
        f"{sorted(locked)}: add the new extra to tools/lockfiles.py SETS and the Makefile's "
        "`lock` target"
    )


@pytest.mark.parametrize("install_set", SETS)
def test_the_lock_holds_exactly_the_declared_dependencies(install_set: str) -> None:
    pins = read_lock(lock_path(install_set))
    direct = {pin.name for pin in pins if DIRECT in pin.via}
    wanted = set(declared(install_set))
    missing, stale = sorted(wanted - direct), sorted(direct - wanted)
    assert not missing and not stale, (
        f"requirements/{install_set}.txt does not match pyproject.toml: declared but not locked "
        f"{missing}, locked but no longer declared {stale}; run `make lock`"
    )


@pytest.mark.parametrize("install_set", SETS)
def test_every_locked_version_is_within_the_declared_range(install_set: str) -> None:
    pins = by_name(read_lock(lock_path(install_set)))
    outside = [
        f"{pin.name}=={pin.version} (pyproject.toml: {requirement})"
        for name, requirement in declared(install_set).items()
        for pin in pins.get(name, [])
        if not requirement.specifier.contains(pin.version, prereleases=True)
    ]
    assert not outside, (
        f"requirements/{install_set}.txt pins versions pyproject.toml excludes: {outside}; "
        "run `make lock`"
    )


def test_the_sets_come_from_one_resolution() -> None:
    """runtime within dev within bench, each package at the same version and marker."""
    for smaller, larger in pairwise(SETS):
        small, large = (
            {(pin.name, pin.version, pin.marker, pin.hashes) for pin in read_lock(lock_path(name))}
            for name in (smaller, larger)
        )
        differing = sorted(f"{name}=={version}" for name, version, *_ in small - large)
        assert not differing, (
            f"requirements/{smaller}.txt pins {differing}, which requirements/{larger}.txt "
            "does not: run `make lock` (it cuts every set from one resolution)"
        )


@pytest.mark.parametrize("name", [*SETS, BUILD_LOCK, TOOLS_LOCK])
def test_every_pin_is_exact_and_hashed(name: str) -> None:
    pins = read_lock(lock_path(name))
    assert pins, f"requirements/{name}.txt pins nothing"
    unhashed = [pin.name for pin in pins if not pin.hashes]
    assert not unhashed, f"requirements/{name}.txt has no hashes for {unhashed}: run `make lock`"


def test_the_build_lock_follows_the_build_system() -> None:
    inputs = [
        Requirement(line)
        for line in (LOCK_DIR / f"{BUILD_LOCK}.in").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    build_system = [Requirement(line) for line in PYPROJECT["build-system"]["requires"]]
    assert sorted(map(str, inputs)) == sorted(map(str, build_system)), (
        f"requirements/{BUILD_LOCK}.in {sorted(map(str, inputs))} differs from pyproject.toml's "
        f"[build-system] requires {sorted(map(str, build_system))}: copy it over, then `make lock`"
    )
    pins = by_name(read_lock(lock_path(BUILD_LOCK)))
    for requirement in build_system:
        for pin in pins[canonical_name(requirement.name)]:
            assert requirement.specifier.contains(pin.version), (requirement, pin.version)


def test_the_locking_tool_is_pinned_exactly() -> None:
    text = (LOCK_DIR / f"{TOOLS_LOCK}.in").read_text(encoding="utf-8")
    requirement = Requirement(next(line for line in text.splitlines() if line[:1].isalnum()))
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", f"pin the tool exactly in requirements/{TOOLS_LOCK}.in"
    (pin,) = read_lock(lock_path(TOOLS_LOCK))
    assert (pin.name, pin.version) == (canonical_name(requirement.name), specifier.version), (
        f"requirements/{TOOLS_LOCK}.txt is out of date with {TOOLS_LOCK}.in: run `make lock`"
    )


def test_the_venv_holds_the_locked_versions() -> None:
    """A venv synced to an older lock (or changed by hand) is stale: `make install` syncs it."""
    installed = {
        canonical_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    wrong = [
        f"{pin.name} {installed.get(pin.name, 'missing')} (locked {pin.version})"
        for pin in sorted(read_lock(lock_path("dev")), key=lambda pin: report_order(pin.name))
        if applies_here(pin.marker) and installed.get(pin.name) != pin.version
    ]
    assert not wrong, (
        f"the venv does not match requirements/dev.txt: {', '.join(wrong)}. "
        "Run `make install` to sync it."
    )
    sdk = [name for name in installed if KEY_PACKAGES.fullmatch(name)]
    assert "sagemaker" in sdk and "botocore" in sdk, sdk


def test_the_venv_holds_nothing_unlocked() -> None:
    """What an older install left behind goes at the next `make install` (bench adds its extra)."""
    locked = {pin.name for pin in read_lock(lock_path(list(SETS)[-1]))}
    extra = sorted(
        canonical_name(dist.metadata["Name"])
        for dist in metadata.distributions()
        if canonical_name(dist.metadata["Name"]) not in locked | NOT_LOCKED
    )
    assert not extra, f"the venv holds unlocked packages {extra}: `make install` removes them"


def test_the_readme_names_the_locked_versions() -> None:
    """Every `package==version` the README names for a locked package is the locked version."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    locked = {pin.name: pin.version for pin in read_lock(lock_path(list(SETS)[-1]))}
    named = {
        canonical_name(name): version
        for name, version in re.findall(r"\b([A-Za-z][\w.-]*)==(\d[\w.]*)", readme)
        if canonical_name(name) in locked
    }
    assert "sagemaker" in named, "the README names the locked SDK as sagemaker==<version>"
    stale = {name: version for name, version in named.items() if locked[name] != version}
    assert not stale, (
        f"the README names {stale}, the lock holds "
        f"{ {name: locked[name] for name in stale} }: update the README"
    )


# --------------------------------------------------------------------------- reading and reporting


def write_lock(path: Path, body: str) -> Path:
    path.write_text("# This file was autogenerated by uv via the following command:\n" + body)
    return path


def test_read_lock_joins_continuations_and_keeps_markers_and_annotations(tmp_path: Path) -> None:
    lock = write_lock(
        tmp_path / "dev.txt",
        "PyYAML==6.0.3 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "    # via tabular-pipelines (pyproject.toml)\n"
        "colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:cc\n"
        "    # via\n    #   click\n    #   pytest\n"
        "moto[s3]==5.2.5\n",
    )
    yaml, colorama, moto = read_lock(lock)
    assert (yaml.name, yaml.version, yaml.hashes) == ("pyyaml", "6.0.3", ("sha256:aa", "sha256:bb"))
    assert yaml.via == ("tabular-pipelines (pyproject.toml)",)
    assert (colorama.marker, colorama.via) == ("sys_platform == 'win32'", ("click", "pytest"))
    assert (moto.name, moto.version, moto.hashes) == ("moto", "5.2.5", ())


@pytest.mark.parametrize("line", ["pandas>=2.2", "numpy", "-e .", "./dist/x.whl"])
def test_read_lock_refuses_anything_but_an_exact_pin(tmp_path: Path, line: str) -> None:
    lock = write_lock(tmp_path / "dev.txt", f"boto3==1.44.8\n{line}\n")
    with pytest.raises(LockError, match=r"dev\.txt:3: .* is not an exact pin.*make lock"):
        read_lock(lock)


def test_read_lock_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="missing: run `make lock`"):
        read_lock(tmp_path / "dev.txt")


def test_the_lock_diff_lists_key_packages_first_with_added_removed_and_forks(
    tmp_path: Path,
) -> None:
    old = write_lock(
        tmp_path / "old.txt", "attrs==25.1\nbotocore==1.44.8\nnumpy==2.4.6\nsix==1.17.0\n"
    )
    new = write_lock(
        tmp_path / "new.txt",
        "attrs==25.1\nbotocore==1.44.9\nnumpy==2.4.6 ; python_full_version < '3.12'\n"
        "numpy==2.5.5 ; python_full_version >= '3.12'\nsagemaker==3.28.0\n",
    )
    changes = diff_locks(read_lock(old), read_lock(new))
    assert changes == [
        Change("botocore", "1.44.8", "1.44.9"),
        Change("sagemaker", None, "3.28.0"),
        Change(
            "numpy",
            "2.4.6",
            "2.4.6 ; python_full_version < '3.12' | 2.5.5 ; python_full_version >= '3.12'",
        ),
        Change("six", "1.17.0", None),
    ]
    lines = format_changes(changes, where={"botocore": "runtime dev bench"})
    assert lines[0] == "  ~ botocore   1.44.8 -> 1.44.9  [runtime dev bench]"
    assert lines[1] == "  + sagemaker  3.28.0 (new)"
    assert lines[3] == "  - six        1.17.0 (removed)"
    assert format_changes([]) == ["  no version changed"]


def test_the_test_report_compares_failures_before_and_after(tmp_path: Path) -> None:
    junit = tmp_path / "after.xml"
    junit.write_text(
        '<?xml version="1.0"?><testsuites><testsuite>'
        '<testcase classname="tests.test_definition" name="test_golden"><failure/></testcase>'
        '<testcase classname="tests.test_config" name="test_ok"/>'
        '<testcase classname="tests.test_config" name="test_skip"><skipped/></testcase>'
        '<testcase classname="tests.test_publish" name="test_setup"><error/></testcase>'
        "</testsuite></testsuites>"
    )
    after = read_junit(junit, lint_ok=True)
    assert (after.passed, after.failed, after.skipped) == (1, 2, 1)
    before = SuiteResults(
        lint_ok=False, ran=True, passed=3, failed=1, failing=("tests.test_publish::test_setup",)
    )
    lines = compare_tests(before, after)
    assert lines[0] == "  before: lint FAILED; pytest 3 passed, 1 failed, 0 skipped"
    assert lines[1] == "  after:  lint passed; pytest 1 passed, 2 failed, 1 skipped"
    assert lines[2:] == [
        "  newly failing (1):",
        "    tests.test_definition::test_golden",
        "  failing before and after (1):",
        "    tests.test_publish::test_setup",
    ]
    assert not after.ok
    missing = read_junit(tmp_path / "none.xml", lint_ok=True)
    assert not missing.ok and "did not run" in missing.summary()
    blocked = SuiteResults(lint_ok=False, ran=False, not_run="the lock does not install")
    assert compare_tests(blocked, after)[0] == "  before: not run: the lock does not install"
