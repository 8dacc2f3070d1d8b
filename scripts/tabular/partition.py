"""Which split, and which train shard, a row goes to: decided per row, from where it is.

A row's split depends only on the seed, its class (binary targets) and how many rows of that
class come before it in its input file; never on the other files, on how the file is read in
chunks, on how files are spread over processing instances, or on the file's name (the same rows
under a new object key split the same way, so a data-quality baseline compares like with like).
Row ``i`` of a class in a file takes the point ``u = frac(offset + i * PHI)`` of the
golden-ratio sequence (``offset`` a seeded hash of the class); ``u < test_fraction`` is test,
the next ``validation_fraction`` is validation, the rest train. That sequence spreads any
``n`` points over [0, 1) with a discrepancy of order ``log(n) / n`` (Weyl; Kuipers and Niederreiter,
"Uniform Distribution of Sequences"), so each class of each file is split within a couple of
rows of the fractions, at every size: a stratified split without a global shuffle. Train rows
go to shard ``(offset + j) mod n`` (``j`` counting the file's train rows, ``offset`` a seeded
hash of the file name), so shards differ by at most one row per file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

PHI = (np.sqrt(5.0) - 1.0) / 2.0
TRAIN_CODE, VALIDATION_CODE, TEST_CODE = 0, 1, 2
"""Split codes of :func:`assign`; :data:`tabular.names.SPLITS` names them in this order."""


def offset(seed: int, *parts: str) -> float:
    """A seeded point in [0, 1) for a file (and class): the start of its sequence."""
    digest = hashlib.sha256("\x1f".join([str(seed), *parts]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass
class FileCursor:
    """How many rows of each class (and of train) one file has had so far."""

    name: str
    seed: int
    seen: dict[str, int] = field(default_factory=dict)
    train_rows: int = 0

    def splits(
        self, classes: np.ndarray, validation_fraction: float, test_fraction: float
    ) -> np.ndarray:
        """The split code of each next row, given its class (any labels; one for regression)."""
        codes = np.full(len(classes), TRAIN_CODE, dtype=np.int8)
        for label in np.unique(classes):
            rows = np.flatnonzero(classes == label)
            key = str(label)
            start = self.seen.get(key, 0)
            self.seen[key] = start + len(rows)
            position = np.arange(start, start + len(rows), dtype=np.float64)
            point = np.mod(offset(self.seed, key) + position * PHI, 1.0)
            codes[rows[point < test_fraction]] = TEST_CODE
            middle = (point >= test_fraction) & (point < test_fraction + validation_fraction)
            codes[rows[middle]] = VALIDATION_CODE
        return codes

    def shards(self, count: int, shards: int) -> np.ndarray:
        """The shard of each of the next ``count`` train rows."""
        start = self.train_rows
        self.train_rows += count
        first = int(offset(self.seed, self.name, "shards") * shards)
        return (first + np.arange(start, start + count)) % shards
