"""The error every job reports for bad data, and how it names a row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

FILE_LEVEL = "file"
LINE_LEVEL = "line"


class DataError(ValueError):
    """An input problem the user must fix; the message names the file, the field and the fix."""


def row_index(source: str, lines: Sequence[int] | np.ndarray) -> pd.MultiIndex:
    """The index every reader gives its rows: ``(source, line number)``."""
    return pd.MultiIndex.from_arrays(
        [np.full(len(lines), source, dtype=object), np.asarray(lines, dtype="int64")],
        names=[FILE_LEVEL, LINE_LEVEL],
    )


def describe_row(label: Any) -> str:
    """``"file.csv line N"`` for an index label of :func:`row_index`."""
    if isinstance(label, tuple) and len(label) == 2:
        return f"{label[0]} line {label[1]}"
    return f"row {label}"


def describe_source(data: pd.DataFrame | pd.Series) -> str:
    """The files a frame's rows come from (the first three), or "input data"."""
    if isinstance(data.index, pd.MultiIndex) and FILE_LEVEL in data.index.names:
        files = list(dict.fromkeys(data.index.get_level_values(FILE_LEVEL)))
        return ", ".join(map(str, files[:3])) + (" ..." if len(files) > 3 else "")
    return "input data"
