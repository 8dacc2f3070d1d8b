"""A local artifact store laid out like S3: `s3://bucket/key` lives at `<root>/bucket/key`.

Property references resolve to these real files. Writes go to a temporary name and are renamed
into place, so a reader never sees a half-written object. `file://` URIs name host paths.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

TEMP_SUFFIX = ".partial"


class StoreError(ValueError):
    """A URI the store cannot serve; the message names it and what to do."""


@dataclass(frozen=True)
class StoredObject:
    """One object under a prefix: its local file and its key relative to the prefix."""

    path: Path
    relative: str


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link when possible (same filesystem, no extra disk), else copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + TEMP_SUFFIX)
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


class LocalS3:
    """S3 semantics that matter to pipeline jobs: prefixes, objects, atomic puts."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, uri: str) -> Path:
        """The host path behind an `s3://` or `file://` URI."""
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise StoreError(f"{uri!r} has no bucket; write s3://bucket/key")
            return self.root / parsed.netloc / parsed.path.lstrip("/")
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise StoreError(f"{uri!r} is not a local file URI; write file:///absolute/path")
            return Path(unquote(parsed.path))
        raise StoreError(f"{uri!r}: only s3:// and file:// URIs can be read by a local run")

    def put_bytes(self, uri: str, payload: bytes) -> Path:
        target = self.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + TEMP_SUFFIX)
        temporary.write_bytes(payload)
        os.replace(temporary, target)
        return target

    def objects(self, uri: str) -> list[StoredObject]:
        """Objects an S3Prefix data source selects: the object itself, or those under the prefix."""
        base = self.path(uri)
        if base.is_file():
            return [StoredObject(base, base.name)]
        if base.is_dir():
            found = sorted(p for p in base.rglob("*") if p.is_file() and not _is_partial(p))
            return [StoredObject(p, p.relative_to(base).as_posix()) for p in found]
        return []

    def download(self, uri: str, destination: Path) -> list[Path]:
        """Stage every object under `uri` into `destination`, keeping relative paths."""
        staged = []
        for item in self.objects(uri):
            target = destination / item.relative
            _link_or_copy(item.path, target)
            staged.append(target)
        return staged

    def upload(self, source: Path, uri: str) -> list[str]:
        """Publish a directory's files (or one file) under `uri`, each whole or not at all."""
        base = self.path(uri)
        files = (
            [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        )
        published = []
        for file in files:
            relative = file.name if source.is_file() else file.relative_to(source).as_posix()
            target = base / relative if source.is_dir() else base
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(target.name + TEMP_SUFFIX)
            shutil.move(file, temporary)
            os.replace(temporary, target)
            published.append(f"{uri.rstrip('/')}/{relative}" if source.is_dir() else uri)
        return published

    def remove(self, uri: str) -> None:
        """Delete everything under a prefix (used before re-running a failed step)."""
        base = self.path(uri)
        if base.is_dir():
            shutil.rmtree(base)
        elif base.exists():
            base.unlink()


def _is_partial(path: Path) -> bool:
    return path.name.endswith(TEMP_SUFFIX)
