"""A model container, as a model package or CreateModel describes it, staged for the local server.

SageMaker downloads ``ModelDataUrl`` and extracts it into ``/opt/ml/model``, and fetches the
inference code from ``SAGEMAKER_SUBMIT_DIRECTORY`` (a ``sourcedir.tar.gz`` or a prefix), before it
starts the container. :func:`stage_container` does the same from the local store, with the
staging rules batch transform uses (:mod:`runtime.jobs`), and returns the folder and the
environment the model server (:mod:`runtime.serving.server`) starts with.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.jobs import JobSetupError, _fetch_code, _safe_extract
from runtime.serving.server import ENV_PROGRAM, ENV_SUBMIT_DIRECTORY, ServingError
from runtime.store import LocalS3, StoreError

MODEL_SUBDIR = "model"
CODE_SUBDIR = "code"


@dataclass(frozen=True)
class StagedContainer:
    """A container's model folder and the environment its server starts with."""

    model_dir: Path
    environment: dict[str, str]


def stage_container(
    store: LocalS3, container: Mapping[str, Any], destination: Path
) -> StagedContainer:
    """Extract the model archive and fetch the code of ``container`` into ``destination``.

    ``destination`` is replaced as a whole once everything is staged, so a failure leaves what
    was there before. Raises :class:`ServingError` naming the field and the fix.
    """
    environment = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
    if not environment.get(ENV_PROGRAM):
        raise ServingError(
            f"the model's container has no {ENV_PROGRAM} in its Environment; the local server "
            "serves script-mode models (inference code named by SAGEMAKER_PROGRAM)."
        )
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        model_dir = partial / MODEL_SUBDIR
        model_dir.mkdir()
        model_data = container.get("ModelDataUrl")
        if model_data:
            try:
                archive = store.path(model_data)
            except StoreError as error:
                raise ServingError(f"ModelDataUrl: {error}") from None
            if not archive.is_file():
                raise ServingError(
                    f"ModelDataUrl {model_data!r} does not exist (local store: {archive}); run "
                    "the pipeline again to register a package whose model is in the store."
                )
            _safe_extract(archive, model_dir, "ModelDataUrl")
        submit = environment.get(ENV_SUBMIT_DIRECTORY)
        if submit and "://" in submit:
            _fetch_code(store, submit, partial / CODE_SUBDIR, f"Environment.{ENV_SUBMIT_DIRECTORY}")
        if destination.exists():
            shutil.rmtree(destination)
        partial.rename(destination)
    except JobSetupError as error:
        raise ServingError(str(error).split(": ", 1)[-1]) from None
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    if submit and "://" in submit:
        environment[ENV_SUBMIT_DIRECTORY] = str(destination / CODE_SUBDIR)
    return StagedContainer(destination / MODEL_SUBDIR, environment)
