"""The committed lock files, requirements/*.txt: what each install set pins, how two locks differ.

`make lock` writes them (uv pip compile, universal, with hashes); `make install` syncs the venv to
dev.txt, `make bench` to bench.txt. Standard library only: `make upgrade` runs this with the system
Python while it rebuilds the venv.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_DIR = ROOT / "requirements"

# Install set -> the pyproject.toml extras it holds. Each set contains the one before it, with the
# same versions: `make lock` resolves bench once and cuts dev and runtime from it.
SETS: dict[str, tuple[str, ...]] = {"runtime": (), "dev": ("dev",), "bench": ("dev", "bench")}
# What builds the project's editable install, and the locking tool itself.
BUILD_LOCK = "build"
TOOLS_LOCK = "tools"
# The packages whose versions decide the published definition: listed first in every report.
KEY_PACKAGES = re.compile(r"sagemaker(-.+)?|boto3|botocore")

_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;]+)")


class LockError(ValueError):
    """A lock file that is not what `make lock` writes."""


@dataclass(frozen=True)
class Pin:
    """One locked requirement: `name==version ; marker --hash=...`, and what requires it."""

    name: str  # canonical (PEP 503) name
    version: str
    marker: str  # "" when it applies everywhere
    hashes: tuple[str, ...]
    via: tuple[str, ...] = ()  # the `# via` annotations: requirers, `<project> (pyproject.toml)`


def canonical_name(name: str) -> str:
    """PEP 503 normal form: `PyYAML`, `pyyaml` and `py_yaml` name one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_path(name: str, lock_dir: Path = LOCK_DIR) -> Path:
    return lock_dir / f"{name}.txt"


def read_lock(path: Path) -> list[Pin]:
    """Every requirement of a lock file; anything but an exact pin is an error naming the line."""
    if not path.is_file():
        raise LockError(f"{path} is missing: run `make lock`")
    pins = []
    for number, line, via in _entries(path.read_text(encoding="utf-8")):
        requirement = line.split(" --hash=", 1)[0]
        spec, _, marker = requirement.partition(";")
        match = _PIN.fullmatch(spec.strip())
        if match is None:
            raise LockError(
                f"{path}:{number}: {requirement.strip()!r} is not an exact pin (name==version): "
                "run `make lock`"
            )
        hashes = tuple(re.findall(r"--hash=(\S+)", line))
        name = canonical_name(match["name"])
        pins.append(Pin(name, match["version"], marker.strip(), hashes, tuple(via)))
    return pins


def _entries(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line number, requirement with continuations joined, the `# via` notes after it)."""
    entries: list[tuple[int, str, list[str]]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            note = line.lstrip("#").strip()
            note = note[len("via") :].strip() if note.startswith("via") else note
            if entries and not parts and note:
                entries[-1][2].append(note)
            continue
        if not line:
            continue
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        entries.append((start, " ".join(parts), []))
        parts = []
    if parts:
        entries.append((start, " ".join(parts), []))
    return entries


def describe(pins: Sequence[Pin]) -> str:
    """One package's versions in a lock: `1.2.3`, or one per environment where they differ."""
    if len(pins) == 1 and not pins[0].marker:
        return pins[0].version
    return " | ".join(
        f"{pin.version} ; {pin.marker}" if pin.marker else pin.version for pin in pins
    )


def by_name(pins: Sequence[Pin]) -> dict[str, list[Pin]]:
    grouped: dict[str, list[Pin]] = {}
    for pin in pins:
        grouped.setdefault(pin.name, []).append(pin)
    return grouped


def report_order(name: str) -> tuple[bool, str]:
    """Key packages first, then alphabetical."""
    return (KEY_PACKAGES.fullmatch(name) is None, name)


@dataclass(frozen=True)
class Change:
    name: str
    old: str | None  # None: added
    new: str | None  # None: removed


def diff_locks(old: Sequence[Pin], new: Sequence[Pin]) -> list[Change]:
    """The packages whose versions (or markers) differ, key packages first."""
    before, after = by_name(old), by_name(new)
    changes = []
    for name in sorted(before.keys() | after.keys(), key=report_order):
        old_text = describe(before[name]) if name in before else None
        new_text = describe(after[name]) if name in after else None
        if old_text != new_text:
            changes.append(Change(name, old_text, new_text))
    return changes


def format_changes(changes: Sequence[Change], where: Mapping[str, str] | None = None) -> list[str]:
    """`~ name old -> new`, `+ name new (new)`, `- name old (removed)`, each with where it is."""
    if not changes:
        return ["  no version changed"]
    width = max(len(change.name) for change in changes)
    lines = []
    for change in changes:
        if change.old is None:
            text = f"  + {change.name:<{width}}  {change.new} (new)"
        elif change.new is None:
            text = f"  - {change.name:<{width}}  {change.old} (removed)"
        else:
            text = f"  ~ {change.name:<{width}}  {change.old} -> {change.new}"
        lines.append(f"{text}  [{where[change.name]}]" if where and change.name in where else text)
    return lines
