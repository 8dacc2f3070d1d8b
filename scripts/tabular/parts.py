"""Preprocess across hosts: what each host learns from its share of the input, and the merge.

With ``PreprocessInstanceCount`` = N the input files are shared out whole (ShardedByS3Key) and
Preprocess runs as three steps (scripts/preprocess.py, ``--stage``): every host profiles its
files (:class:`ProfilePart`), every host merges all the profiles (:func:`merge_parts`: the same
feature types, class mapping and split counts on every host, as one host reading every file
would find them) and writes its rows to their splits with its share of the train statistics
(:class:`tabular.stats.TrainStats`), and one host merges the statistics
(:func:`tabular.stats.merge`) and fits the transformer. Each part is written by its host as
one file (:func:`write_part`) and read back by the next step from all hosts
(:func:`read_parts`). The files are this package's own objects (pickle), passed between this
pipeline's steps only.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError
from .feature_types import TypeProfile, merge_typing
from .files import atomic_path
from .names import SPLITS, host_file


@dataclass
class ProfilePart:
    """One host's first pass over its files (or all files, on one host)."""

    typing: TypeProfile
    classes: Counter[str] = field(default_factory=Counter)
    first_label: dict[str, Any] = field(default_factory=dict)
    """Each class's first row, ``(file, line)``."""
    rows: dict[str, Counter[str]] = field(
        default_factory=lambda: {name: Counter() for name in SPLITS}
    )
    dropped: int = 0
    input_columns: list[str] = field(default_factory=list)
    first_file: str | None = None
    """The first file of the part (None: the host had no file)."""


def merge_parts(parts: Sequence[ProfilePart]) -> ProfilePart:
    """The profile of every host's files together, whatever the number of hosts: parts in the
    order of their first file, counts added, each class's first row the earliest. Hosts
    without a file add nothing; every file must have the same columns."""
    found = sorted((p for p in parts if p.first_file is not None), key=lambda p: p.first_file or "")
    if not found:
        return parts[0]
    merged = ProfilePart(
        found[0].typing, input_columns=found[0].input_columns, first_file=found[0].first_file
    )
    for index, part in enumerate(found):
        if part.input_columns != merged.input_columns:
            raise DataError(
                f"{part.first_file}: columns {part.input_columns} differ from those of "
                f"{merged.first_file} {merged.input_columns}. All input files must have the "
                "same columns in the same order."
            )
        if index:
            merged.typing = merge_typing(merged.typing, part.typing)
        merged.classes.update(part.classes)
        for label, at in part.first_label.items():
            known = merged.first_label.get(label)
            merged.first_label[label] = at if known is None else min(known, at)
        for name in SPLITS:
            merged.rows[name].update(part.rows[name])
        merged.dropped += part.dropped
    return merged


def write_part(part: object, folder: Path, name: str, host: str) -> Path:
    """Write one host's part as ``folder/name`` (``name`` tagged with ``host`` when several
    hosts write to the same output), whole or not at all."""
    target = folder / host_file(name, host)
    with atomic_path(target) as temporary:
        temporary.write_bytes(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    return target


def read_parts(folder: Path, name: str, fix: str) -> list[Any]:
    """Every host's part in ``folder`` (``name`` and its host-tagged forms), in name order."""
    stem, _, suffix = name.rpartition(".")
    paths = sorted(folder.glob(f"{stem}*.{suffix}")) if folder.is_dir() else []
    if not paths:
        raise DataError(f"{folder}: no {name} found. {fix}")
    parts = []
    for path in paths:
        try:
            parts.append(pickle.loads(path.read_bytes()))
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            raise DataError(f"{path}: cannot be read ({exc}). {fix}") from None
    return parts
