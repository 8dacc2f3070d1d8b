"""Files others read are published whole, and file-system faults are reported with their fix.

:func:`atomic_path` is the one way this project writes a file that someone else reads (a
store object, execution state, a summary, a definition, a report). It lives in the job package
(tabular.files), whose jobs write their outputs with it too, and is re-exported here: the
content goes to a unique temporary name beside the target and is renamed onto it when complete,
so a reader never sees half a file; ``durable=True`` also flushes it to the disk, for the state
a ``--retry`` relies on after a crash.

:class:`WorkspaceError` is what a full disk, a read-only folder or a damaged state file
becomes: a message naming the path, the problem and the fix, instead of a traceback.
"""

from __future__ import annotations

import errno
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tabular.files import TEMP_SUFFIX, atomic_path, extract_tar, is_temporary, write_atomic

__all__ = [
    "TEMP_SUFFIX",
    "WorkspaceError",
    "atomic_path",
    "extract_tar",
    "fault_message",
    "is_fault",
    "is_temporary",
    "reported",
    "require_writable",
    "write_atomic",
]


class WorkspaceError(RuntimeError):
    """A workspace that cannot be used as it is; the message names the path and the fix.

    ``execution_id`` is set when an execution had started: its state on disk is the last one
    saved, which ``--retry <id>`` resumes once the fault is fixed.
    """

    def __init__(self, message: str, execution_id: str | None = None) -> None:
        super().__init__(message)
        self.execution_id = execution_id


# --------------------------------------------------------------------------- faults

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY = frozenset({errno.EROFS})
NO_PERMISSION = frozenset({errno.EACCES, errno.EPERM})
TOO_LARGE = frozenset({errno.EFBIG})
WORKSPACE_FAULTS = NO_SPACE | READ_ONLY | NO_PERMISSION | TOO_LARGE


def is_fault(error: BaseException) -> bool:
    """Whether ``error`` is a fault of the file system (full, read-only, denied, too large)."""
    return isinstance(error, OSError) and error.errno in WORKSPACE_FAULTS


def fault_message(error: OSError, path: Path | str | None = None, then: str = "") -> str:
    """What went wrong with which path, and the fix, for a file-system fault.

    ``path`` names the file or folder when the error does not; ``then`` is what to do once
    the fault is fixed (e.g. how to resume).
    """
    where = error.filename or path or "the workspace"
    folder = Path(str(where)) if Path(str(where)).is_dir() else Path(str(where)).parent
    reason = error.strerror or str(error)
    after = f"; then {then}" if then else ""
    if error.errno in NO_SPACE:
        return (
            f"no space left on the device holding {where} ({reason}): free space there "
            f"(`df -h {folder}` shows how much is left){after}"
        )
    if error.errno in READ_ONLY:
        return (
            f"{where} is on a read-only file system ({reason}): remount it read-write or use a "
            f"workspace on a writable disk{after}"
        )
    if error.errno in NO_PERMISSION:
        return (
            f"no permission to write {where} ({reason}): give this user write access to "
            f"{folder} or use a workspace of your own{after}"
        )
    if error.errno in TOO_LARGE:
        return (
            f"{where} reached the file size limit of this process ({reason}): raise it "
            f"(`ulimit -f unlimited`){after}"
        )
    return f"{where}: {reason}{after}"


@contextmanager
def reported(
    path: Path | str | None = None, then: str = "", execution_id: str | None = None
) -> Iterator[None]:
    """Turn a file-system fault in the block into a :class:`WorkspaceError` (see
    :func:`fault_message` for ``path`` and ``then``); other errors pass through."""
    try:
        yield
    except OSError as error:
        if not is_fault(error):
            raise
        raise WorkspaceError(fault_message(error, path, then), execution_id) from None


def require_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be written in it, else WorkspaceError."""
    with reported(folder):
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check."):
            pass
