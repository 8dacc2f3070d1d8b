"""SageMaker's job contracts as the local runtime plays them: layout, limits, outcomes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tabular.contract import (
    JobStatus,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""Directory holding the ``runtime`` package (put on PYTHONPATH for ``runtime.serving.batch``)."""
LOG_NAME = "job.log"
"""The job's stdout and stderr (and the runtime's staging notes) in ``<sandbox>/job.log``."""
LOG_PREFIX = "[local-runtime] "
ERROR_PREFIX = "ERROR:"
ACCOUNT_ID = "000000000000"
DEFAULT_REGION = "us-east-1"
REGION_ENV = "AWS_REGION"
RUNTIME_VARIABLES = frozenset(
    {
        "PATH", "LD_LIBRARY_PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR",
        "PYTHONUTF8", "PYTHONIOENCODING", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
        "NUMEXPR_MAX_THREADS", "VECLIB_MAXIMUM_THREADS", "OMP_WAIT_POLICY",
    }
)  # fmt: skip
RUNTIME_PREFIXES = ("LC_",)
"""The host variables a job keeps: what running Python needs (programs and libraries, locale,
time zone, temporary directory, thread counts). A container starts from its image's environment
plus the job's contract variables, never the caller's: no credentials, tokens, profiles, config
files or HOME reach a job (an allowlist, so a variable nobody thought of stays out too)."""
SHARED_HOST_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Thread settings for jobs that share the host's cores, unless the host sets them. A SageMaker
job has its instance to itself; here jobs run beside each other (DataQuality beside Train) and
beside whatever else the machine runs, and OpenMP threads that spin while they wait for a
descheduled sibling (libgomp's default) make each XGBoost round several times slower on a busy
machine (measured in bench/: train time 3-9x on 2 shared cores). Passive threads sleep instead;
what the job computes does not change."""
JOB_HOME = "home"
"""``HOME`` of a job: ``<sandbox>/home``, empty, so ``~/.aws`` and other dotfiles are not found."""
PYTHON_COMMAND = re.compile(r"python(3(\.\d+)?)?")
"""Entrypoint commands replaced by the host Python (``python``, ``python3``, ``python3.11``)."""
# Training toolkit (sagemaker-training-toolkit) script mode.
HOST_PREFIX = "algo-"
"""A training job's hosts are ``algo-1`` ... ``algo-N`` in resourceconfig.json, as on SageMaker."""
MAX_LOCAL_HOSTS = 254
"""Hosts one local training job may run: one loopback address each in a 127.x.y.0/24."""
HOSTS_DIR = "hosts"
"""Host ``algo-k`` (k > 1) of a training job runs in ``<sandbox>/hosts/algo-k``; the first host
in ``<sandbox>`` itself (its log is the job's log, its /opt/ml/model the published model)."""
THREADS_ENV = "OMP_NUM_THREADS"
NETWORK_INTERFACE = "eth0"
INSTANCE_GROUP = "homogeneousCluster"
DEFAULT_LOG_LEVEL = 20
# Inference toolkit (batch transform) script mode.
TRANSFORM_MODULE = "runtime.serving.batch"
DEFAULT_MAX_PAYLOAD_MB = 6
VALIDATION = "ValidationException"
CLIENT_ERROR = "ClientError"


class JobKind(StrEnum):
    """Job types, as they appear in ARNs."""

    PROCESSING = "processing-job"
    TRAINING = "training-job"
    TRANSFORM = "transform-job"


class JobSetupError(Exception):
    """The job cannot start: its message is the FailureReason (``<kind>: <what and the fix>``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")


@dataclass(frozen=True)
class CommandResult:
    """How one child process ended.

    ``returncode`` is negative (``-signal``) for a child killed by a signal; ``peak_rss_bytes``
    is the child's own peak resident set size (with its reaped descendants), from ``wait4``;
    ``started_warm`` tells whether it ran in a warm process (:mod:`runtime.jobs.warm`).
    """

    returncode: int
    timed_out: bool
    peak_rss_bytes: int
    seconds: float
    stderr_tail: list[str]
    started_warm: bool = False


@dataclass(frozen=True)
class JobOutcome:
    """A finished job: its status, FailureReason, Describe*Job response and resource use.

    ``peak_rss_bytes`` and ``seconds`` are 0 when the job failed before its process started.
    """

    status: JobStatus
    failure_reason: str | None
    describe: dict[str, Any]
    peak_rss_bytes: int
    seconds: float
    log_path: Path

    @property
    def succeeded(self) -> bool:
        return self.status is JobStatus.COMPLETED
