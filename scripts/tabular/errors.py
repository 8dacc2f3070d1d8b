"""The errors every job reports, and how a message names a row.

* :class:`JobError`: a problem the user must fix (an input, a setting); the message names it and
  the fix. A job's entry point reports it as the job's failure reason (:mod:`tabular.job`).
* :class:`DataError`: a JobError about the data: the file, the line or column, the fix.
* :class:`RequestError`: a request the serving code cannot score, with its HTTP status (400,
  or 415 / 406 for a content type or Accept it does not serve). In SageMaker's serving
  containers it is an instance of the inference toolkit's own error class, the only kind the
  toolkit answers with the error's status instead of 500 (``Transformer.transform`` in
  sagemaker_inference/transformer.py); elsewhere it carries the same ``status_code``, which is
  what the local model server (runtime.serving) reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FILE_LEVEL = "file"
LINE_LEVEL = "line"


class JobError(ValueError):
    """A problem the user must fix; the message names the input or setting and the fix."""


class DataError(JobError):
    """An input problem the user must fix; the message names the file, the field and the fix."""


try:  # in SageMaker's serving containers
    from sagemaker_inference.errors import (
        BaseInferenceToolkitError as _AnsweredWithStatus,
    )
except ImportError:  # anywhere else: the same attributes

    class _AnsweredWithStatus(Exception):  # type: ignore[no-redef]
        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            self.status_code = status_code
            self.message = message
            self.phrase = phrase
            super().__init__(status_code, message, phrase)


class RequestError(DataError, _AnsweredWithStatus):
    """A request the model cannot score: its HTTP status and what the client must fix."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        _AnsweredWithStatus.__init__(self, int(status), message, HTTPStatus(status).phrase)

    def __str__(self) -> str:
        return str(self.message)


def row_index(source: str, lines: Sequence[int] | np.ndarray) -> pd.MultiIndex:
    """The index every reader gives its rows: ``(source, line number)``."""
    import numpy as np
    import pandas as pd

    at = np.asarray(lines, dtype="int64")
    return pd.MultiIndex(  # built from codes: each record starts on its own line
        levels=[pd.Index([source], dtype=object), pd.Index(at)],
        codes=[np.zeros(len(at), dtype=np.int8), np.arange(len(at))],
        names=[FILE_LEVEL, LINE_LEVEL],
        verify_integrity=False,
    )


def describe_row(label: Any) -> str:
    """``"file.csv line N"`` for an index label of :func:`row_index`."""
    if isinstance(label, tuple) and len(label) == 2:
        return f"{label[0]} line {label[1]}"
    return f"row {label}"


def describe_source(data: pd.DataFrame | pd.Series) -> str:
    """The files a frame's rows come from (the first three), or "input data"."""
    names = getattr(data.index, "names", None) or ()
    if FILE_LEVEL in names:
        files = list(dict.fromkeys(data.index.get_level_values(FILE_LEVEL)))
        return ", ".join(map(str, files[:3])) + (" ..." if len(files) > 3 else "")
    return "input data"
