"""Files others read are published whole: written under a temporary name, then renamed.

:func:`atomic_path` is the one way this project writes a file that someone else reads: a job's
outputs, and the local runtime's store objects, state, summaries and reports (runtime.files
adds its fault reporting around it). The content goes to a unique temporary name beside the
target (``.<name>.<random>.partial``) and is renamed onto it when complete. A reader sees the old
file or the new one, never half of one; two writers of the same target never share a temporary
(the later rename wins); a failed write leaves nothing behind. ``durable=True`` also flushes the
file and its directory to the disk before returning (``fsync``). Standard library only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

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
