"""Code objects: keyed by content, the same on every machine, and shipping the shared package.

A colleague's machine may have another zlib (zlib-ng compresses to other bytes) or a checkout
with CRLF line endings (core.autocrlf=true); neither may change a key, an uploaded byte or the
definition, or every job step misses the cache and the golden test fails.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from config import Config
from config.paths import ROOT, SCRIPTS_DIR
from steps.code import SHARED_PACKAGE, manifest_digest


def _build(config: Config, scripts: Path = SCRIPTS_DIR):  # type: ignore[no-untyped-def]
    from pipelines.definition import build

    return build(config, scripts_dir=scripts)


def _payloads(built) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    return {artifact.s3_uri: artifact.payload for artifact in built.code}


def test_keys_and_bytes_do_not_depend_on_the_compressor(
    base_config: Config, built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another zlib (level, strategy, implementation) gives the same keys and the same bytes."""
    real = zlib.compressobj

    def other_zlib(level: int = -1, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        return real(1, *args, **kwargs)  # level 1 compresses to other bytes than level 9

    monkeypatch.setattr(zlib, "compressobj", other_zlib)
    monkeypatch.setattr(zlib, "compress", lambda data, level=-1, **_: real(1).compress(data))
    monkeypatch.setattr(gzip, "compress", lambda data, *a, **k: b"other compressor " + data)
    again = _build(base_config)
    assert again.definition == built.definition
    assert _payloads(again) == _payloads(built)


def test_keys_and_bytes_do_not_depend_on_line_endings(
    base_config: Config, built, tmp_path: Path
) -> None:
    """A checkout with core.autocrlf=true (CRLF in every text file) builds the same thing."""
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    converted = 0
    for path in scripts.rglob("*.py"):
        text = path.read_bytes()
        path.write_bytes(text.replace(b"\n", b"\r\n"))
        converted += text.count(b"\n") > 0
    assert converted >= 5
    again = _build(base_config, scripts)
    assert again.definition == built.definition
    assert _payloads(again) == _payloads(built)


def test_an_archive_is_the_bytes_its_key_names(built) -> None:  # type: ignore[no-untyped-def]
    archives = [a for a in built.code if a.s3_uri.endswith(".tar.gz")]
    assert len(archives) == 2  # training code, serving code
    for artifact in archives:
        raw = gzip.decompress(artifact.payload)  # any gzip reader reads it
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            assert names == sorted(names)
            assert all(m.isfile() and m.mtime == 0 and m.mode == 0o644 for m in members)
            assert all(m.uid == 0 and m.gid == 0 and not m.uname for m in members)
            files = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
        assert all(b"\r\n" not in content for content in files.values())
        digest = artifact.s3_uri.rsplit("/", 2)[-2]
        assert digest == manifest_digest("sourcedir.tar.gz", files)


def test_loose_files_are_keyed_by_their_manifest(built) -> None:  # type: ignore[no-untyped-def]
    folders: dict[str, dict[str, bytes]] = {}
    for artifact in built.code:
        if "/files/" in artifact.s3_uri:
            folder, name = artifact.s3_uri.split("/files/")
            folders.setdefault(folder, {})[name] = artifact.payload
    assert len(folders) == 2  # Preprocess, Evaluate
    for folder, files in folders.items():
        assert folder.rsplit("/", 1)[-1] == manifest_digest("files", files)
        for name, payload in files.items():
            source = (SCRIPTS_DIR / name).read_bytes().replace(b"\r\n", b"\n")
            assert hashlib.sha256(payload).digest() == hashlib.sha256(source).digest(), name


def test_every_job_ships_the_shared_package(built) -> None:  # type: ignore[no-untyped-def]
    """Preprocess, Evaluate (with the serving code), Train and the model carry `tabular/`."""
    package = sorted(
        p.relative_to(SCRIPTS_DIR).as_posix()
        for p in (SCRIPTS_DIR / SHARED_PACKAGE).rglob("*.py")
        if "__pycache__" not in p.parts
    )
    shipped: dict[str, set[str]] = {}
    for artifact in built.code:
        if artifact.s3_uri.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(artifact.payload)) as tar:
                shipped[artifact.s3_uri] = set(tar.getnames())
        elif "/files/" in artifact.s3_uri:
            folder, name = artifact.s3_uri.split("/files/")
            shipped.setdefault(folder, set()).add(name)
    scripts = {frozenset(n for n in names if "/" not in n) for names in shipped.values()}
    assert scripts == {
        frozenset({"preprocess.py"}),
        frozenset({"evaluate.py", "inference.py"}),
        frozenset({"train.py"}),
        frozenset({"inference.py"}),
    }
    for names in shipped.values():
        assert set(package) <= names


def test_the_checkout_keeps_lf_line_endings() -> None:
    """.gitattributes pins LF for what keys and the golden snapshot are computed from."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["scripts/preprocess.py", "scripts/tabular/values.py", "tests/golden/pipeline.json",
             "configs/base.yaml", "Makefile"]  # fmt: skip
    result = subprocess.run(
        ["git", "check-attr", "eol", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [f"{p}: eol: lf" for p in paths]
