"""Job code as content-addressed S3 objects, so a step's arguments change only when its code does.

The SDK would upload code while the definition is built (needing credentials) and, for training,
under a timestamped key that defeats step caching. Here each artifact's key carries the SHA-256 of
its bytes: the definition is built offline and byte-identical from the same sources, and
`make upsert` uploads exactly the objects the definition names.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
SOURCEDIR_ARCHIVE = "sourcedir.tar.gz"


@dataclass(frozen=True)
class CodeArtifact:
    """One object to upload: its bytes and the S3 URI the definition names."""

    s3_uri: str
    payload: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


def _deterministic_tar_gz(files: dict[str, bytes]) -> bytes:
    """A tar.gz whose bytes depend only on the file names and contents (no mtimes, owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return compressed.getvalue()


class CodeStore:
    """Builds code artifacts under `s3://<bucket>/<prefix>/code/<sha256>/` and remembers them."""

    def __init__(self, bucket: str, prefix: str, scripts_dir: Path = SCRIPTS_DIR) -> None:
        self._root = f"s3://{bucket}/{prefix}/code"
        self._scripts_dir = scripts_dir
        self._artifacts: dict[str, CodeArtifact] = {}

    def _add(self, name: str, payload: bytes) -> str:
        digest = hashlib.sha256(payload).hexdigest()
        uri = f"{self._root}/{digest}/{name}"
        self._artifacts[uri] = CodeArtifact(uri, payload)
        return uri

    def script(self, filename: str) -> str:
        """The S3 URI of one script, for a processing job's `code`."""
        return self._add(filename, (self._scripts_dir / filename).read_bytes())

    def prefix(self, *filenames: str) -> str:
        """The S3 prefix holding these scripts side by side, for a processing input."""
        files = {name: (self._scripts_dir / name).read_bytes() for name in filenames}
        digest = hashlib.sha256(_deterministic_tar_gz(files)).hexdigest()
        folder = f"{self._root}/{digest}/files/"
        for name, payload in files.items():
            self._artifacts[folder + name] = CodeArtifact(folder + name, payload)
        return folder

    def sourcedir(self, *filenames: str) -> str:
        """The S3 URI of a sourcedir.tar.gz holding these scripts (framework script mode)."""
        files = {name: (self._scripts_dir / name).read_bytes() for name in filenames}
        return self._add(SOURCEDIR_ARCHIVE, _deterministic_tar_gz(files))

    @property
    def artifacts(self) -> list[CodeArtifact]:
        """Every artifact the definition names, in a stable order."""
        return [self._artifacts[uri] for uri in sorted(self._artifacts)]
