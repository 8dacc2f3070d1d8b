"""A local artifact store laid out like S3: `s3://bucket/key` lives at `<root>/bucket/key`.

Property references resolve to these real files. Every object is published whole through
`runtime.files.atomic_path` (a unique temporary name, renamed into place), so a reader never
sees a half-written object and two runs writing the same key never collide. `file://` URIs name
host paths. A manifest records what a step published (size, mtime, SHA-256 of each object) so
that a cache hit or a resumed step can prove its outputs are still there, unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from runtime.files import atomic_path, is_temporary

DIGEST_CHUNK = 1 << 20


class StoreError(ValueError):
    """A URI the store cannot serve; the message names it and what to do."""


@dataclass(frozen=True)
class StoredObject:
    """One object under a prefix: its local file and its key relative to the prefix."""

    path: Path
    relative: str


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link when possible (same filesystem, no extra disk), else copy."""
    with atomic_path(target) as temporary:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stat(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


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
        with atomic_path(target) as temporary:
            temporary.write_bytes(payload)
        return target

    def objects(self, uri: str) -> list[StoredObject]:
        """Objects an S3Prefix data source selects: the object itself, or those under the prefix."""
        base = self.path(uri)
        if base.is_file():
            return [StoredObject(base, base.name)]
        if base.is_dir():
            found = sorted(p for p in base.rglob("*") if p.is_file() and not is_temporary(p))
            return [StoredObject(p, p.relative_to(base).as_posix()) for p in found]
        return []

    def download(self, uri: str, destination: Path, shard: tuple[int, int] = (0, 1)) -> list[Path]:
        """Stage every object under `uri` into `destination`, keeping relative paths.

        ``shard=(i, n)``: only objects ``i, i + n, i + 2n, ...`` in key order (host ``i`` of
        ``n`` under ShardedByS3Key: each gets about 1/n of the objects, none twice).
        """
        index, count = shard
        staged = []
        for item in self.objects(uri)[index::count]:
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
            with atomic_path(target) as temporary:
                shutil.move(file, temporary)
            published.append(f"{uri.rstrip('/')}/{relative}" if source.is_dir() else uri)
        return published

    def remove(self, uri: str) -> None:
        """Delete everything under a prefix (used before re-running a failed step)."""
        base = self.path(uri)
        if base.is_dir():
            shutil.rmtree(base)
        elif base.exists():
            base.unlink()

    def manifest(self, uris: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Every object under each URI: its size, modification time and SHA-256."""
        recorded: dict[str, dict[str, Any]] = {}
        for uri in uris:
            for item in self.objects(uri):
                key = uri if item.path == self.path(uri) else f"{uri.rstrip('/')}/{item.relative}"
                recorded[key] = {**_stat(item.path), "sha256": _sha256(item.path)}
        return recorded

    def changed(self, manifest: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The objects of a :meth:`manifest` that are gone or hold other bytes now.

        Size and modification time are compared first (as make and rsync do); an object whose
        time changed but whose size did not is compared by its SHA-256, so a copy restored with
        the same bytes still counts as unchanged.
        """
        problems = []
        for uri, expected in manifest.items():
            path = self.path(uri)
            if not path.is_file():
                problems.append(f"{uri} is gone")
                continue
            now = _stat(path)
            if now["size"] != expected["size"]:
                problems.append(f"{uri} changed ({expected['size']} bytes then, {now['size']} now)")
            elif now["mtime_ns"] != expected["mtime_ns"] and _sha256(path) != expected["sha256"]:
                problems.append(f"{uri} changed (other bytes than when it was written)")
        return problems
