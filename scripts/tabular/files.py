"""Files others read are published whole: written under a temporary name, then renamed.

:func:`atomic_path` is the one way this project writes a file that someone else reads: a job's
outputs, and the local runtime's store objects, state, summaries and reports (runtime.files
adds its fault reporting around it). The content goes to a unique temporary name beside the
target (``.<name>.<random>.partial``) and is renamed onto it when complete. A reader sees the old
file or the new one, never half of one; two writers of the same target never share a temporary
(the later rename wins); a failed write leaves nothing behind. ``durable=True`` also flushes the
file and its directory to the disk before returning (``fsync``).

:func:`extract_tar` is the one way an archive is unpacked (a model archive by Evaluate, code and
model archives by the local runtime): every member is checked first, and an archive with a
member that would land outside the folder, or that is a link or device, extracts nothing.
Standard library only.
"""

from __future__ import annotations

import os
import tarfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path, PurePosixPath

TEMP_SUFFIX = ".partial"
"""Temporary names end with this; listings of published files skip them."""


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


def write_all(writers: Mapping[Path, Callable[[Path], object]]) -> None:
    """Call each writer on a temporary beside its target, then rename them all into place.

    If any writer fails, every temporary is removed and no target changes.
    """
    with ExitStack() as stack:
        for target, write in writers.items():
            write(stack.enter_context(atomic_path(target)))


class UnsafeMember(tarfile.TarError):
    """An archive member that may not be extracted; the message names it and why."""


def check_member(member: tarfile.TarInfo, root: Path) -> None:
    """Refuse a member whose path leaves ``root`` (absolute, ``..``) or that is not a plain file
    or folder (links, devices): tarfile's "data" filter, applied before anything is written."""
    parts = PurePosixPath(member.name).parts
    if (
        member.name.startswith(("/", "\\"))
        or ".." in parts
        or not (root / member.name).resolve().is_relative_to(root)
    ):
        raise UnsafeMember(f"member {member.name!r} would extract outside the target directory")
    if not (member.isfile() or member.isdir()):
        raise UnsafeMember(f"member {member.name!r} is a link or special file")


def extract_tar(tar: tarfile.TarFile, destination: Path) -> list[str]:
    """Extract ``tar`` into ``destination``; return the names of the files it held.

    Every member is checked (:func:`check_member`) before the first is written, so a refused
    archive leaves nothing behind. Pythons with extraction filters (3.11.4 and later) extract
    under the "data" filter as well; before 3.11.4 (Debian 12 ships 3.11.2) the check is the rule.
    """
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    members = tar.getmembers()
    for member in members:
        check_member(member, root)
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data")
    else:
        tar.extractall(destination)  # every member checked above
    return [member.name for member in members if member.isfile()]
