"""Files others read are published whole, and file-system faults are reported with their fix.

:func:`atomic_path` is the one way this project writes a file that someone else reads (a
store object, execution state, a summary, a definition, a report): the content goes to a
unique temporary name beside the target (``.<name>.<random>.partial``) and is renamed onto
it when complete. A reader sees the old file or the new one, never half of one; two writers
of the same target never share a temporary (the later rename wins); a failed write leaves
nothing behind. ``durable=True`` also flushes the file and its directory to the disk before
returning (``fsync``), for the state a ``--retry`` relies on after a crash.

:class:`WorkspaceError` is what a full disk, a read-only folder or a damaged state file
becomes: a message naming the path, the problem and the fix, instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

TEMP_SUFFIX = ".partial"
"""Temporary names end with this; listings of published files skip them."""


class WorkspaceError(RuntimeError):
    """A workspace that cannot be used as it is; the message names the path and the fix.

    ``execution_id`` is set when an execution had started: its state on disk is the last one
    saved, which ``--retry <id>`` resumes once the fault is fixed.
    """

    def __init__(self, message: str, execution_id: str | None = None) -> None:
        super().__init__(message)
        self.execution_id = execution_id


def extract_tar(tar: tarfile.TarFile, destination: Path) -> None:
    """Extract ``tar`` into ``destination`` under tarfile's "data" filter.

    Pythons before 3.11.4 (Debian 12 ships 3.11.2) have no extraction filters; there the same
    rule is applied by hand: only files and folders whose paths stay inside ``destination``,
    anything else (links, devices, absolute or ``..`` paths) refused with tarfile.TarError.
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data")
        return
    root = destination.resolve()
    for member in tar.getmembers():
        if not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"{member.name!r} is not a regular file or folder")
        if not (root / member.name).resolve().is_relative_to(root):
            raise tarfile.TarError(f"{member.name!r} would land outside {destination}")
    tar.extractall(destination)  # members checked above


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary of :func:`atomic_path` (not a published file)."""
    return path.name.endswith(TEMP_SUFFIX)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(target: Path, *, durable: bool = False) -> Iterator[Path]:
    """A fresh temporary path beside ``target``: write it in the block, it is renamed on exit.

    The temporary does not exist yet (create it, link to it or move a file onto it). When the
    block raises, the temporary is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
    try:
        yield temporary
        if durable:
            _fsync(temporary)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    if durable:
        # The rename itself is durable once the directory entry is on disk (Linux fsync(2)).
        with suppress(OSError):
            _fsync(target.parent)


def write_atomic(target: Path, data: bytes | str, *, durable: bool = False) -> Path:
    """Publish ``data`` (text is UTF-8) at ``target`` whole, through :func:`atomic_path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(target, durable=durable) as temporary:
        temporary.write_bytes(payload)
    return target


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
