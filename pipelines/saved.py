"""Built definitions saved with what they were built from, and reused while nothing changed.

Building the definition imports the SageMaker SDK and runs its builders (seconds: most of an
unchanged `run-local` and all of `make definition`). The result is a pure function of the
validated config, the project's code that builds it, the job code it ships (scripts/) and the
installed SDK, so `python -m pipelines definition` and `run-local` save what they build and
reuse it, without importing the SDK, while all of these are unchanged:

* the entry's name is a digest of the config (the validated model's JSON form, environment
  overrides applied), the Python version and the versions of :data:`DISTRIBUTIONS`: another
  config is another entry, and builds;
* the entry lists every project file the build process had loaded when it finished (its
  modules, by ``sys.modules``) and every file under scripts/, each with its SHA-256: it is
  reused only while each still has that digest (an edit of a builder, of the config package
  or of a job script builds again and replaces the entry).

An entry is one JSON file written atomically (last writer wins); a damaged or unreadable one
is built again. ``upsert`` and ``golden`` always build. :data:`SAVED_ENV` moves the folder
(default build/definitions) or, set to ``off``, neither saves nor reuses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from config import Config
from config.paths import BUILD_DIR, ROOT, SCRIPTS_DIR
from pipelines.document import BuiltPipeline
from steps.code import CodeArtifact
from tabular.files import write_atomic

SAVED_ENV = "PIPELINE_SAVED_DEFINITIONS"
"""Where built definitions are kept (default :data:`SAVED_DIR`); ``off``: build every time."""
SAVED_DIR = BUILD_DIR / "definitions"
OFF = "off"
FORMAT = "tabular-pipelines saved definition 1"
DISTRIBUTIONS = (
    "sagemaker", "sagemaker-core", "sagemaker-mlops", "sagemaker-train", "sagemaker-serve",
    "boto3", "botocore", "pydantic", "pydantic-core",
)  # fmt: skip
"""The installed distributions the build imports; their versions are part of an entry's name."""
SKIPPED_PARTS = frozenset({"__pycache__", ".venv", "build"})


def folder() -> Path | None:
    value = os.environ.get(SAVED_ENV, "")
    if value == OFF:
        return None
    return Path(value) if value else SAVED_DIR


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def entry_path(cfg: Config, where: Path) -> Path:
    key = json.dumps(
        {
            "format": FORMAT,
            "config": cfg.model_dump(mode="json"),
            "python": sys.version,
            "distributions": _versions(),
        },
        sort_keys=True,
    )
    return where / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.json"


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _script_files() -> Iterable[Path]:
    for path in sorted(SCRIPTS_DIR.rglob("*")):
        if path.is_file() and not SKIPPED_PARTS & set(path.relative_to(ROOT).parts):
            yield path


def _loaded_project_files() -> Iterable[Path]:
    """The project's source files among the modules this process has loaded."""
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not name:
            continue
        path = Path(name).resolve()
        if path.is_relative_to(ROOT) and not SKIPPED_PARTS & set(path.relative_to(ROOT).parts):
            yield path


def load(cfg: Config) -> BuiltPipeline | None:
    """The saved build of ``cfg``, if every file it was built from is unchanged."""
    where = folder()
    if where is None:
        return None
    try:
        entry = json.loads(entry_path(cfg, where).read_text(encoding="utf-8"))
        if entry["format"] != FORMAT:
            return None
        for relative, digest in entry["inputs"].items():
            if _digest(ROOT / relative) != digest:
                return None
        code = [
            CodeArtifact(item["s3_uri"], base64.b64decode(item["payload"]))
            for item in entry["code"]
        ]
        return BuiltPipeline(pipeline=None, definition=entry["definition"], code=code)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none saved, or unreadable: build


def save(cfg: Config, built: BuiltPipeline) -> None:
    """Save ``built`` (just built in this process) for the next build of ``cfg``; a folder that
    cannot be written only means the next one builds again."""
    where = folder()
    if where is None:
        return
    inputs = {}
    for path in {*_loaded_project_files(), *_script_files()}:
        digest = _digest(path)
        if digest is None:
            return
        inputs[path.relative_to(ROOT).as_posix()] = digest
    entry = {
        "format": FORMAT,
        "inputs": dict(sorted(inputs.items())),
        "definition": built.definition,
        "code": [
            {"s3_uri": a.s3_uri, "payload": base64.b64encode(a.payload).decode("ascii")}
            for a in built.code
        ],
    }
    try:
        where.mkdir(parents=True, exist_ok=True)
        write_atomic(entry_path(cfg, where), json.dumps(entry))
    except OSError:
        pass
