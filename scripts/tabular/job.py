"""What every job's entry point does the same way: its command line, its failure, its inputs.

A job that cannot do its work raises :class:`tabular.errors.JobError` (a DataError is one).
:func:`run_job` reports it as SageMaker reads a failure for that kind of job: ``ERROR: <message>``
on stderr, the message in the job's failure file, exit code 2. A usage error of the command line
(:class:`JobParser`) is recorded the same way. The failure file (tabular.contract) is
``message`` for processing jobs (DescribeProcessingJob's ExitMessage) and ``failure`` for
training jobs (DescribeTrainingJob's FailureReason), in the container's output directory:
``$SM_OUTPUT_DIR`` when set (the training toolkit sets it; the processing steps pass it, so a
local runtime can place it in the job's sandbox), else ``/opt/ml/output``. Text is written as
UTF-8: a processing job whose message is not UTF-8 fails with a ClientError.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from .contract import FAILURE_FILE_NAME, MESSAGE_FILE_NAME, OUTPUT_DIR, SM_OUTPUT_DIR
from .errors import JobError

TRAINING = "training"
PROCESSING = "processing"
FAILURE_FILES = {TRAINING: FAILURE_FILE_NAME, PROCESSING: MESSAGE_FILE_NAME}
ERROR_EXIT_CODE = 2
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def failure_path(kind: str) -> Path:
    """The file SageMaker reads a ``kind`` job's failure from."""
    if kind not in FAILURE_FILES:
        raise ValueError(f"job kind {kind!r} is not one of {sorted(FAILURE_FILES)}")
    return Path(os.environ.get(SM_OUTPUT_DIR) or OUTPUT_DIR) / FAILURE_FILES[kind]


def write_failure(kind: str, message: str) -> Path:
    """Record ``message`` as the job's failure reason (as its kind of job reports it)."""
    path = failure_path(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message.strip() + "\n", encoding="utf-8")
    return path


class JobParser(argparse.ArgumentParser):
    """The command line of a ``kind`` job: a usage error is also the job's failure reason."""

    def __init__(self, kind: str, description: str) -> None:
        super().__init__(description=description)
        self.kind = kind

    def error(self, message: str) -> NoReturn:
        write_failure(self.kind, f"{self.prog}: {message}")
        super().error(message)


def run_job(kind: str, work: Callable[[], object]) -> int:
    """Run ``work``; return 0, or 2 after reporting a JobError as the job's failure."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        work()
    except JobError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        write_failure(kind, str(exc))
        return ERROR_EXIT_CODE
    return 0


def find_input(folder: Path, name: str, fix: str, recursive: bool = False) -> Path:
    """``folder/name``, or the only file below ``folder`` with the same suffix; else the fix.

    A channel or processing input may hold its file under another name (a renamed upload).
    """
    path = folder / name
    if path.is_file():
        return path
    suffix = "".join(Path(name).suffixes)
    pattern = f"*{suffix}"
    found = sorted((folder.rglob if recursive else folder.glob)(pattern)) if folder.is_dir() else []
    if len(found) == 1:
        return found[0]
    raise JobError(f"{path}: not found ({len(found)} other {suffix} file(s)). {fix}")


def require_files(folder: Path, names: tuple[str, ...], fix: str) -> None:
    """Raise FileNotFoundError naming the first of ``names`` missing from ``folder``."""
    for name in names:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: not found. {fix}")
