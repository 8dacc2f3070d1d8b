"""Job code as content-addressed S3 objects, so a step's arguments change only when its code does.

The SDK would upload code while the definition is built (needing credentials) and, for training,
under a timestamped key that defeats step caching. Here each object's key carries a digest of
what it holds: the definition is built offline, and `make upsert` uploads exactly the objects
the definition names.

The digest is taken over a manifest of (path, content) with text files' line endings made LF,
never over compressed bytes: the same sources give the same keys on every machine, whatever its
zlib (zlib-ng compresses differently) and whatever `core.autocrlf` did to the checkout. The
bytes uploaded are a pure function of that manifest too: text files with LF line endings, and
archives written without a compressor (a tar with fixed owners, modes and times, wrapped in
gzip's "stored" blocks, which every gzip reader accepts).

Every job ships the shared job package (`scripts/tabular`, imported as `tabular`) beside its
script: a processing job gets a prefix of loose files (S3Prefix inputs keep the key paths below
the prefix, so `tabular/` lands next to the script and imports as a sibling), a framework job a
`sourcedir.tar.gz` (extracted into its code directory, which is on `sys.path`). Code that one
job alone uses lives in a package of its own, shipped with that job only (Evaluate's report,
`scripts/evaluation`), so an edit of it re-keys that job's step alone.
"""

from __future__ import annotations

import binascii
import hashlib
import io
import struct
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from config.paths import SCRIPTS_DIR
from tabular.names import PACKAGE as SHARED_PACKAGE

SOURCEDIR_ARCHIVE = "sourcedir.tar.gz"
FILES_FOLDER = "files"
TEXT_SUFFIXES = frozenset({".py", ".json", ".txt", ".yaml", ".yml", ".cfg", ".toml", ".sh"})
MANIFEST_VERSION = "tabular-pipelines code manifest 1"
STORED_BLOCK = 0xFFFF
"""Largest deflate stored block (RFC 1951, 3.2.4)."""


@dataclass(frozen=True)
class CodeArtifact:
    """One object to upload: its bytes and the S3 URI the definition names."""

    s3_uri: str
    payload: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


def normalised(name: str, content: bytes) -> bytes:
    """A file's content as shipped: CRLF line endings of text files become LF."""
    if Path(name).suffix.lower() in TEXT_SUFFIXES:
        return content.replace(b"\r\n", b"\n")
    return content


def manifest_digest(kind: str, files: Mapping[str, bytes]) -> str:
    """SHA-256 of the sorted (path, size, content digest) lines of ``files``, already normalised.

    ``kind`` (a file, loose files, an archive) is part of the manifest, so two objects of
    different shapes never share a key.
    """
    lines = [MANIFEST_VERSION, kind]
    for name in sorted(files):
        lines.append(f"{hashlib.sha256(files[name]).hexdigest()} {len(files[name])} {name}")
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def deterministic_tar(files: Mapping[str, bytes]) -> bytes:
    """A tar whose bytes depend only on names and contents (sorted, owner 0, mode 644, time 0)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    return raw.getvalue()


def gzip_stored(data: bytes) -> bytes:
    """``data`` as a gzip member of stored (uncompressed) deflate blocks (RFC 1952, RFC 1951).

    No compressor is involved, so the bytes are the same with any zlib; the header carries
    no name, mtime 0 and OS 255 ("unknown").
    """
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"
    blocks = []
    starts = range(0, len(data), STORED_BLOCK) if data else [0]
    for start in starts:
        chunk = data[start : start + STORED_BLOCK]
        final = start + STORED_BLOCK >= len(data)
        blocks.append(
            bytes([1 if final else 0]) + struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF) + chunk
        )
    trailer = struct.pack("<II", binascii.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + b"".join(blocks) + trailer


class CodeStore:
    """Builds code artifacts under `s3://<bucket>/<prefix>/code/<digest>/` and remembers them."""

    def __init__(self, bucket: str, prefix: str, scripts_dir: Path = SCRIPTS_DIR) -> None:
        self._root = f"s3://{bucket}/{prefix}/code"
        self._scripts_dir = scripts_dir
        self._artifacts: dict[str, CodeArtifact] = {}

    def _read(self, name: str) -> bytes:
        return normalised(name, (self._scripts_dir / name).read_bytes())

    def _job_files(self, scripts: tuple[str, ...], packages: tuple[str, ...]) -> dict[str, bytes]:
        """The scripts plus every module of the shared job package and of ``packages``."""
        names = [*scripts]
        for package in (SHARED_PACKAGE, *packages):
            names += sorted(
                path.relative_to(self._scripts_dir).as_posix()
                for path in (self._scripts_dir / package).rglob("*.py")
                if "__pycache__" not in path.parts
            )
        return {name: self._read(name) for name in names}

    def _put(self, uri: str, payload: bytes) -> str:
        self._artifacts[uri] = CodeArtifact(uri, payload)
        return uri

    def bundle(self, *scripts: str, packages: tuple[str, ...] = ()) -> str:
        """The S3 prefix of a processing job's code: the scripts, the shared package and the
        job's own ``packages`` (folders of ``scripts/`` only this job ships).

        Mounted as the `code` input, the entry script finds `tabular/` beside it.
        """
        files = self._job_files(scripts, packages)
        folder = f"{self._root}/{manifest_digest(FILES_FOLDER, files)}/{FILES_FOLDER}/"
        for name, payload in files.items():
            self._put(folder + name, payload)
        return folder

    def sourcedir(self, *scripts: str) -> str:
        """The S3 URI of a sourcedir.tar.gz of the scripts and the shared package (script mode)."""
        files = self._job_files(scripts, ())
        digest = manifest_digest(SOURCEDIR_ARCHIVE, files)
        return self._put(
            f"{self._root}/{digest}/{SOURCEDIR_ARCHIVE}", gzip_stored(deterministic_tar(files))
        )

    def document(self, name: str, payload: bytes) -> str:
        """The S3 URI of a data document a job reads (e.g. its settings), keyed by content."""
        content = normalised(name, payload)
        digest = manifest_digest(name, {name: content})
        return self._put(f"{self._root}/{digest}/{name}", content)

    @property
    def artifacts(self) -> list[CodeArtifact]:
        """Every artifact the definition names, in a stable order."""
        return [self._artifacts[uri] for uri in sorted(self._artifacts)]
