"""Local stand-ins for SageMaker processing, training and batch transform jobs.

Each job runs as a host process (no Docker, no AWS) in a sandbox directory of its own: the
container's ``/opt/ml`` is ``<sandbox>/opt/ml``, and every argument or environment value that
names a path under ``/opt/ml/`` is rewritten to the sandbox path (see :func:`container_path`).
The jobs follow SageMaker's API shapes and container contracts:

* processing (CreateProcessingJob): each ``S3Input`` is copied to its ``LocalPath``, the
  entrypoint runs with its arguments, each output dir is uploaded to its ``S3Uri`` when the job
  completes;
* training (CreateTrainingJob) in the framework containers' script mode
  (sagemaker-training-toolkit): ``sagemaker_program`` from ``sagemaker_submit_directory`` runs
  in ``/opt/ml/code`` with the hyperparameters as ``--key value`` arguments, the channels under
  ``/opt/ml/input/data``, the config files under ``/opt/ml/input/config`` and the toolkit's
  ``SM_*`` environment; ``/opt/ml/model`` is published as ``<job>/output/model.tar.gz``;
* batch transform (CreateTransformJob) of a script-mode model (its CreateModel request gives
  the image environment), through ``python -m runtime.transform``.

Job code runs with the host's (or the given) Python in place of the image's ``python3``: the
images are expected to carry the library versions the project pins. A job that fails reports a
FailureReason the way SageMaker does (a failure file the job wrote, else its last ``ERROR:``
line, else ``AlgorithmError: <last stderr line>, exit code: N``); outputs of a failed job are
never uploaded. Requests SageMaker would reject, data that is missing and features the local
runtime does not support fail the job with a reason that names the field, not with an exception.

Like the rest of ``runtime``, this module knows the SageMaker job contracts only: it imports
nothing from the pipeline packages, the SageMaker SDK or boto3.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import IO, Any

from runtime.files import extract_tar
from runtime.store import LocalS3, StoreError

__all__ = [
    "CommandResult",
    "JobOutcome",
    "JobSetupError",
    "JobStatus",
    "container_path",
    "map_container_value",
    "run_command",
    "run_processing_job",
    "run_training_job",
    "run_transform_job",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""Directory holding the ``runtime`` package (put on PYTHONPATH for ``runtime.transform``)."""

# --------------------------------------------------------------------------- container layout

OPT_ML = "/opt/ml"
CODE_DIR = "/opt/ml/code"
MODEL_DIR = "/opt/ml/model"
INFERENCE_CODE_DIR = "/opt/ml/model/code"
INPUT_DIR = "/opt/ml/input"
INPUT_CONFIG_DIR = "/opt/ml/input/config"
INPUT_DATA_DIR = "/opt/ml/input/data"
OUTPUT_DIR = "/opt/ml/output"
OUTPUT_DATA_DIR = "/opt/ml/output/data"
OUTPUT_INTERMEDIATE_DIR = "/opt/ml/output/intermediate"
FAILURE_FILE = "/opt/ml/output/failure"
MESSAGE_FILE = "/opt/ml/output/message"

HYPERPARAMETERS_FILE = "hyperparameters.json"
RESOURCE_CONFIG_FILE = "resourceconfig.json"
INPUT_DATA_CONFIG_FILE = "inputdataconfig.json"
MODEL_ARCHIVE = "model.tar.gz"
OUTPUT_ARCHIVE = "output.tar.gz"

LOG_NAME = "job.log"
"""The job's stdout and stderr (and the runtime's staging notes) in ``<sandbox>/job.log``."""
LOG_PREFIX = "[local-runtime] "

# --------------------------------------------------------------------------- process control

KILL_GRACE_SECONDS = 5.0
"""Seconds between SIGTERM and SIGKILL when a job is stopped (as ``docker stop`` waits)."""
READER_JOIN_SECONDS = 5.0
STDERR_TAIL_LINES = 50

# --------------------------------------------------------------------------- SageMaker contract

FAILURE_REASON_LIMIT = 1024
"""SageMaker keeps the first 1024 characters of a FailureReason (and of an ExitMessage)."""
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
CURRENT_HOST = "algo-1"
NETWORK_INTERFACE = "eth0"
INSTANCE_GROUP = "homogeneousCluster"
SAGEMAKER_HP_PREFIX = "sagemaker_"
HP_PROGRAM = "sagemaker_program"
HP_SUBMIT_DIRECTORY = "sagemaker_submit_directory"
HP_LOG_LEVEL = "sagemaker_container_log_level"
TOOLKIT_HYPERPARAMETERS = frozenset(
    {
        HP_PROGRAM, HP_SUBMIT_DIRECTORY, HP_LOG_LEVEL, "sagemaker_region", "sagemaker_job_name",
        "sagemaker_enable_cloudwatch_metrics", "sagemaker_s3_output",
    }
)  # fmt: skip
"""``sagemaker_*`` hyperparameters the toolkit itself reads (the rest are framework params)."""
DEFAULT_LOG_LEVEL = 20

# Inference toolkit (batch transform) script mode.
ENV_PROGRAM = "SAGEMAKER_PROGRAM"
ENV_SUBMIT_DIRECTORY = "SAGEMAKER_SUBMIT_DIRECTORY"
FAILURE_REASON_FILE_ENV = "SM_FAILURE_REASON_FILE"
"""Where ``runtime.transform`` writes its failure message (its ``FAILURE_REASON_ENV``)."""
TRANSFORM_MODULE = "runtime.transform"
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_CONTENT_TYPE = "application/octet-stream"
"""Sent when TransformInput has no ContentType (the body then reaches the user code as bytes)."""
ACCEPT_ANY = "*/*"
"""Sent when TransformOutput has no Accept: the container answers with its default Accept."""

VALIDATION = "ValidationException"
CLIENT_ERROR = "ClientError"


class JobStatus(StrEnum):
    """Processing/Training/TransformJobStatus of a finished job."""

    COMPLETED = "Completed"
    FAILED = "Failed"


class JobKind(StrEnum):
    """Job types, as they appear in ARNs."""

    PROCESSING = "processing-job"
    TRAINING = "training-job"
    TRANSFORM = "transform-job"


class S3DataType(StrEnum):
    S3_PREFIX = "S3Prefix"
    MANIFEST_FILE = "ManifestFile"
    AUGMENTED_MANIFEST_FILE = "AugmentedManifestFile"


class JobSetupError(Exception):
    """The job cannot start: its message is the FailureReason (``<kind>: <what and the fix>``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")


@dataclass(frozen=True)
class CommandResult:
    """How one child process ended.

    ``returncode`` is negative (``-signal``) for a child killed by a signal; ``peak_rss_bytes``
    is the child's own peak resident set size (with its reaped descendants), from ``wait4``.
    """

    returncode: int
    timed_out: bool
    peak_rss_bytes: int
    seconds: float
    stderr_tail: list[str]


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


# --------------------------------------------------------------------------- run_command


class _ProcessGroup:
    """The job's process group: stopped as a container is (SIGTERM, then SIGKILL)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.leader_exited = threading.Event()
        self.timed_out = False

    def send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def on_timeout(self) -> None:
        """Timer thread: stop the group unless the leader already exited."""
        if self.leader_exited.is_set():
            return
        self.timed_out = True
        self.send(signal.SIGTERM)
        if not self.leader_exited.wait(KILL_GRACE_SECONDS):
            self.send(signal.SIGKILL)

    def stop_now(self) -> None:
        """Main thread (the waiter itself): SIGTERM, poll the leader for the grace, SIGKILL."""
        self.send(signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < deadline and not _has_exited(self.pid):
            time.sleep(0.05)
        self.send(signal.SIGKILL)


def _has_exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (its pid stays reserved)."""
    result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return result is not None


def _pump(stream: IO[bytes], log: IO[bytes], lock: threading.Lock, tail: Any) -> None:
    """Copy the job's output to its log, line by line; keep draining when the log cannot be
    written (a full disk), or the job would block on a full pipe and never end."""
    writable = True
    for line in iter(stream.readline, b""):
        if writable:
            with lock:
                try:
                    log.write(line)
                    log.flush()
                except OSError:
                    writable = False
        if tail is not None:
            tail.append(line.decode("utf-8", errors="replace").rstrip("\r\n"))


def _rss_bytes(ru_maxrss: int) -> int:
    """``ru_maxrss`` is in kilobytes on Linux, in bytes on macOS."""
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024


_LAUNCHER = """
import os, signal, sys
report, parent, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
stop = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
for signum in stop:
    signal.signal(signum, signal.SIG_IGN)
orphaned = getattr(signal, "SIGRTMIN", signal.SIGUSR1)

def die_with(signum):
    if sys.platform == "linux":
        import ctypes
        ctypes.CDLL(None).prctl(1, int(signum), 0, 0, 0)  # PR_SET_PDEATHSIG

def end_group(*_):
    os.killpg(0, signal.SIGKILL)

signal.signal(orphaned, end_group)
die_with(orphaned)
if os.getppid() != parent:
    end_group()
launcher = os.getpid()
pid = os.fork()
if pid == 0:
    os.close(report)
    for signum in (*stop, signal.SIGPIPE, signal.SIGXFSZ, orphaned):
        signal.signal(signum, signal.SIG_DFL)
    die_with(signal.SIGKILL)
    if os.getppid() != launcher:
        os._exit(137)
    try:
        os.execvp(argv[0], argv)
    except OSError as error:
        os.write(2, f"ERROR: cannot run {argv[0]!r}: {error.strerror}\\n".encode())
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss).encode())
os.close(report)
if os.WIFSIGNALED(status):
    signum = os.WTERMSIG(status)
    if signum != signal.SIGKILL:
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
os._exit(os.waitstatus_to_exitcode(status))
"""
"""Runs the command as its child and reports the command's ``ru_maxrss`` on fd ``argv[1]``.

On Linux a child's ``ru_maxrss`` starts at the RSS of the process it was forked from (exec
keeps the high-water mark of the replaced address space), so a job started straight from this
(large) process would report at least this process's RSS. Forked from the small launcher, the
job reports its own peak. The launcher ignores SIGTERM/SIGINT/SIGHUP (the job, in the same
process group, receives them with default handlers) and exits as the job did.

Jobs die with the run. The launcher asks the kernel for a signal when the thread that started
it dies (``prctl(PR_SET_PDEATHSIG)``, Linux; the starting thread waits for the job, so it lives
as long as the job should) and then kills the job's whole process group with SIGKILL: the
engine killed by SIGKILL or the OOM killer leaves no job, transform worker or thread running.
``argv[2]`` is the engine's pid, to notice an engine that died before the request took
effect. The job itself dies by SIGKILL when the launcher dies.
"""


def _read_report(fd: int) -> int | None:
    chunks = []
    while chunk := os.read(fd, 64):
        chunks.append(chunk)
    text = b"".join(chunks).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


def run_command(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    timeout_seconds: float | None,
) -> CommandResult:
    """Run ``argv`` as a job's main process, like a container's PID 1.

    The child starts in its own session (process group). Its stdout and stderr are appended to
    ``log_path`` line by line as they come; the last :data:`STDERR_TAIL_LINES` stderr lines are
    kept. After ``timeout_seconds`` the group gets SIGTERM, then SIGKILL after
    :data:`KILL_GRACE_SECONDS`. When the main process exits, whatever it left running in its
    group is killed (a container ends with its PID 1). On KeyboardInterrupt the group is
    stopped the same way and the interrupt re-raised. A command that cannot be executed ends
    with exit code 127 and ``ERROR: cannot run ...`` on stderr.
    """
    if not argv:
        raise ValueError("run_command needs a command; argv is empty.")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    lock = threading.Lock()
    started = time.monotonic()
    report_read, report_write = os.pipe()
    try:
        with log_path.open("ab") as log:
            try:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-I",
                        "-S",
                        "-c",
                        _LAUNCHER,
                        str(report_write),
                        str(os.getpid()),
                        *argv,
                    ],  # fmt: skip
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=(report_write,),
                )
            finally:
                os.close(report_write)
            assert process.stdout is not None and process.stderr is not None
            readers = [
                threading.Thread(target=_pump, args=(process.stdout, log, lock, None), daemon=True),
                threading.Thread(target=_pump, args=(process.stderr, log, lock, tail), daemon=True),
            ]
            for reader in readers:
                reader.start()
            group = _ProcessGroup(process.pid)
            timer = None
            if timeout_seconds is not None:
                timer = threading.Timer(timeout_seconds, group.on_timeout)
                timer.daemon = True
                timer.start()
            try:
                # Wait without reaping: the leader's pid (= the group id) stays reserved, so the
                # signals below can never reach an unrelated process that reused it.
                os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
            except BaseException:
                group.stop_now()
                _finish(process, group, timer, readers)
                raise
            status, rusage = _finish(process, group, timer, readers)
            process.stdout.close()
            process.stderr.close()
        reported = _read_report(report_read)
    finally:
        os.close(report_read)
    return CommandResult(
        returncode=os.waitstatus_to_exitcode(status),
        timed_out=group.timed_out,
        # Killed before the job ended, the launcher reports nothing: its own figure is the bound.
        peak_rss_bytes=_rss_bytes(reported if reported is not None else rusage.ru_maxrss),
        seconds=time.monotonic() - started,
        stderr_tail=list(tail),
    )


def _finish(
    process: subprocess.Popen[bytes],
    group: _ProcessGroup,
    timer: threading.Timer | None,
    readers: Sequence[threading.Thread],
) -> tuple[int, Any]:
    """Once the leader has exited (or is being killed): end the group, reap, drain the pipes."""
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    group.leader_exited.set()
    if timer is not None:
        timer.cancel()
        if timer.is_alive():
            timer.join()
    group.send(signal.SIGKILL)
    _, status, rusage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(READER_JOIN_SECONDS)
    return status, rusage


# --------------------------------------------------------------------------- path mapping


def container_path(sandbox: Path, path: str) -> Path:
    """The sandbox path behind a container path under ``/opt/ml`` (``<sandbox>/opt/ml/...``)."""
    pure = PurePosixPath(path)
    root = PurePosixPath(OPT_ML)
    if not pure.is_absolute() or ".." in pure.parts or not pure.is_relative_to(root):
        raise ValueError(
            f"{path!r} is not a container path under {OPT_ML}; SageMaker jobs read and write "
            f"under {OPT_ML}/ (e.g. /opt/ml/processing/input)."
        )
    return Path(sandbox, "opt", "ml", *pure.relative_to(root).parts)


def map_container_value(sandbox: Path, value: str) -> str:
    """An argument or environment value with a leading ``/opt/ml/`` path mapped to the sandbox.

    Other values (``--flag``, ``0.3``, ``s3://...``, ``/tmp/x``) are returned as they are.
    """
    if value == OPT_ML or value.startswith(OPT_ML + "/"):
        mapped = str(container_path(sandbox, value))
        return mapped + "/" if value.endswith("/") and not mapped.endswith("/") else mapped
    return value


def _map_tree(sandbox: Path, value: Any) -> Any:
    """:func:`map_container_value` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return map_container_value(sandbox, value)
    if isinstance(value, list):
        return [_map_tree(sandbox, item) for item in value]
    if isinstance(value, dict):
        return {key: _map_tree(sandbox, item) for key, item in value.items()}
    return value


def _sandbox_path(sandbox: Path, path: str, field: str) -> Path:
    try:
        return container_path(sandbox, path)
    except ValueError as error:
        raise JobSetupError(VALIDATION, f"{field}: {error}") from None


# --------------------------------------------------------------------------- shared helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _arn(kind: JobKind, name: str) -> str:
    region = os.environ.get(REGION_ENV) or DEFAULT_REGION
    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind.value}/{name.lower()}"


def _field(mapping: Any, key: str, where: str) -> Any:
    """A required request field; a missing one fails the job as SageMaker's validation would."""
    if not isinstance(mapping, Mapping):
        raise JobSetupError(VALIDATION, f"{where} must be an object, got {mapping!r}.")
    value = mapping.get(key)
    if value is None or value == "":
        raise JobSetupError(VALIDATION, f"{where}.{key} is required but missing from the request.")
    return value


def _base_env(sandbox: Path) -> dict[str, str]:
    """The runtime's share of the host environment, and a HOME inside the sandbox."""
    env = dict(SHARED_HOST_DEFAULTS)
    env.update(
        (key, value)
        for key, value in os.environ.items()
        if key in RUNTIME_VARIABLES or key.startswith(RUNTIME_PREFIXES)
    )
    home = Path(sandbox, JOB_HOME)
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    return env


def _job_env(sandbox: Path, *layers: Mapping[str, Any] | None) -> dict[str, str]:
    """:func:`_base_env` plus each layer in order (``/opt/ml/`` values mapped to the sandbox)."""
    env = _base_env(sandbox)
    for layer in layers:
        for key, value in (layer or {}).items():
            env[str(key)] = map_container_value(sandbox, str(value))
    return env


def _prepare_sandbox(sandbox: Path) -> Path:
    """Create ``<sandbox>/opt/ml``; refuse a sandbox another job already used."""
    opt_ml = Path(sandbox, "opt", "ml")
    if opt_ml.exists() and any(opt_ml.iterdir()):
        raise ValueError(
            f"sandbox {sandbox} already holds a job's /opt/ml; give every job a fresh sandbox "
            "(or remove it before re-running the job)."
        )
    opt_ml.mkdir(parents=True, exist_ok=True)
    log_path = Path(sandbox, LOG_NAME)
    log_path.touch()
    return log_path


def _note(log_path: Path, text: str) -> None:
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"{LOG_PREFIX}{text}\n")


def _stage(store: LocalS3, uri: str, destination: Path, field: str) -> list[Path]:
    """Copy the objects an S3Prefix data source selects; no objects fails as on SageMaker."""
    try:
        staged = store.download(uri, destination)
    except StoreError as error:
        raise JobSetupError(CLIENT_ERROR, f"{field}: {error}") from None
    if not staged:
        raise JobSetupError(
            CLIENT_ERROR,
            f"{field}: no objects found under {uri!r} (local store: {store.path(uri)}): fix the "
            "URI, or run the pipeline again if they were removed (a step whose published "
            "outputs are gone is not reused from the cache: it runs again and writes them).",
        )
    return staged


def _check_uri(store: LocalS3, uri: str, field: str) -> str:
    try:
        store.path(uri)
    except StoreError as error:
        raise JobSetupError(VALIDATION, f"{field}: {error}") from None
    return uri


def _check_s3_data_type(value: Any, field: str) -> None:
    if value not in (None, S3DataType.S3_PREFIX):
        raise JobSetupError(
            CLIENT_ERROR,
            f"{field}={value!r} is not supported by the local runtime; use "
            f"{S3DataType.S3_PREFIX.value!r}.",
        )


def _check_uncompressed(value: Any, field: str) -> None:
    if value not in (None, "None"):
        raise JobSetupError(
            CLIENT_ERROR,
            f"{field}={value!r} is not supported by the local runtime; stage uncompressed "
            "objects ('None').",
        )


def _safe_extract(archive: Path, destination: Path, field: str) -> None:
    """Extract a tar archive, refusing members that would land outside ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise JobSetupError(
                        CLIENT_ERROR,
                        f"{field}: {archive.name} holds the unsafe member {member.name!r} "
                        "(absolute or '..' path); rebuild the archive with relative paths.",
                    )
            extract_tar(tar, destination)
    except tarfile.TarError as error:
        raise JobSetupError(
            CLIENT_ERROR, f"{field}: {archive} is not a readable tar archive: {error}"
        ) from None


def _fetch_code(store: LocalS3, uri: str, destination: Path, field: str) -> None:
    """Code from a ``sourcedir.tar.gz`` object (extracted) or a prefix of loose files."""
    try:
        source = store.path(uri)
    except StoreError as error:
        raise JobSetupError(VALIDATION, f"{field}: {error}") from None
    if source.is_file() and tarfile.is_tarfile(source):
        _safe_extract(source, destination, field)
    else:
        _stage(store, uri, destination, field)


def _write_tar_gz(source: Path, archive: Path) -> None:
    """Archive a directory's contents, members in sorted order (parents before children)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)


def _read_message(path: Path) -> str | None:
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        return text or None
    return None


def _truncate(reason: str) -> str:
    return (
        reason
        if len(reason) <= FAILURE_REASON_LIMIT
        else reason[: FAILURE_REASON_LIMIT - 3] + "..."
    )


def _error_lines(stderr_tail: Sequence[str]) -> str | None:
    """The last run of consecutive ``ERROR:`` lines on stderr, without the prefix."""
    lines = [line.strip() for line in stderr_tail if line.strip()]
    ends = [i for i, line in enumerate(lines) if line.startswith(ERROR_PREFIX)]
    if not ends:
        return None
    start = end = ends[-1]
    while start > 0 and lines[start - 1].startswith(ERROR_PREFIX):
        start -= 1
    return "; ".join(line[len(ERROR_PREFIX) :].strip() for line in lines[start : end + 1])


def _failure_reason(
    result: CommandResult, timeout_seconds: float | None, message_files: Iterable[Path]
) -> str | None:
    """SageMaker's FailureReason for a finished command, None when it succeeded."""
    if result.timed_out:
        limit = f"{timeout_seconds:g}" if timeout_seconds is not None else "?"
        return f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds={limit}"
    if result.returncode == 0:
        return None
    for path in message_files:
        message = _read_message(path)
        if message:  # SageMaker shows the file's first 1024 characters, as they are
            return message[:FAILURE_REASON_LIMIT]
    error = _error_lines(result.stderr_tail)
    if error:
        return _truncate(error)
    lines = [line.strip() for line in result.stderr_tail if line.strip()]
    exit_code = str(result.returncode)
    if result.returncode < 0:
        exit_code += f" (killed by {signal.Signals(-result.returncode).name})"
    if not lines:
        return f"AlgorithmError: (no output on stderr), exit code: {exit_code}"
    return _truncate(f"AlgorithmError: {lines[-1]}, exit code: {exit_code}")


@dataclass
class _Run:
    """One job attempt: its times, its command's result (None if it never started), reason."""

    started: datetime
    ended: datetime
    result: CommandResult | None
    reason: str | None

    @property
    def status(self) -> JobStatus:
        return JobStatus.FAILED if self.reason else JobStatus.COMPLETED


def _outcome(run: _Run, describe: dict[str, Any], log_path: Path) -> JobOutcome:
    return JobOutcome(
        status=run.status,
        failure_reason=run.reason,
        describe=describe,
        peak_rss_bytes=run.result.peak_rss_bytes if run.result else 0,
        seconds=run.result.seconds if run.result else 0.0,
        log_path=log_path,
    )


def _timeout(request: Mapping[str, Any]) -> float | None:
    value = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return float(value) if value is not None else None


def _present(request: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The request's fields among ``keys`` that it sets (Describe* echoes what was created)."""
    return {key: request[key] for key in keys if request.get(key) is not None}


def _times(prefix: str, run: _Run) -> dict[str, str]:
    return {
        "CreationTime": run.started.isoformat(),
        f"{prefix}StartTime": run.started.isoformat(),
        f"{prefix}EndTime": run.ended.isoformat(),
        "LastModifiedTime": run.ended.isoformat(),
    }


# --------------------------------------------------------------------------- processing


@dataclass(frozen=True)
class _Upload:
    local: Path
    uri: str


def _python_argv(command: Sequence[str], python: str) -> list[str]:
    first, *rest = command
    if PYTHON_COMMAND.fullmatch(PurePosixPath(first).name):
        return [python, *rest]
    return [first, *rest]


def _stage_processing(
    request: Mapping[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str,
    log_path: Path,
    image_environment: Mapping[str, str] | None,
) -> tuple[list[str], dict[str, str], list[_Upload]]:
    app = _field(request, "AppSpecification", "CreateProcessingJob")
    entrypoint = app.get("ContainerEntrypoint")
    if not entrypoint:
        raise JobSetupError(
            CLIENT_ERROR,
            f"AppSpecification.ContainerEntrypoint is not set; the local runtime cannot run the "
            f"built-in entrypoint of {app.get('ImageUri')!r}. Give the job an entrypoint, e.g. "
            "['python3', '/opt/ml/processing/input/code/<script>.py'].",
        )
    for index, item in enumerate(request.get("ProcessingInputs") or []):
        where = f"ProcessingInputs[{index}]"
        name = item.get("InputName", index)
        if item.get("DatasetDefinition"):
            raise JobSetupError(
                CLIENT_ERROR,
                f"{where} ({name}): DatasetDefinition inputs are not supported "
                "by the local runtime; use an S3Input.",
            )
        s3 = _field(item, "S3Input", where)
        uri = _field(s3, "S3Uri", f"{where}.S3Input")
        local = _field(s3, "LocalPath", f"{where}.S3Input")
        _check_s3_data_type(s3.get("S3DataType"), f"{where}.S3Input.S3DataType")
        _check_uncompressed(s3.get("S3CompressionType"), f"{where}.S3Input.S3CompressionType")
        if s3.get("S3InputMode") not in (None, "File"):
            raise JobSetupError(
                CLIENT_ERROR,
                f"{where}.S3Input.S3InputMode={s3['S3InputMode']!r} is not "
                "supported by the local runtime; use 'File'.",
            )
        target = _sandbox_path(sandbox, local, f"{where}.S3Input.LocalPath")
        staged = _stage(store, uri, target, f"{where} ({name})")
        _note(log_path, f"input {name}: {len(staged)} object(s) from {uri} -> {local}")
    container_path(sandbox, OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    uploads = []
    outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    for index, item in enumerate(outputs):
        where = f"ProcessingOutputConfig.Outputs[{index}]"
        s3 = _field(item, "S3Output", where)
        uri = _check_uri(store, _field(s3, "S3Uri", f"{where}.S3Output"), f"{where}.S3Output.S3Uri")
        local = _field(s3, "LocalPath", f"{where}.S3Output")
        target = _sandbox_path(sandbox, local, f"{where}.S3Output.LocalPath")
        target.mkdir(parents=True, exist_ok=True)
        uploads.append(_Upload(target, uri))
    command = [*entrypoint, *(app.get("ContainerArguments") or [])]
    argv = [map_container_value(sandbox, str(part)) for part in _python_argv(command, python)]
    env = _job_env(sandbox, image_environment, request.get("Environment"))
    return argv, env, uploads


def run_processing_job(
    name: str,
    request: dict[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str = sys.executable,
    image_environment: Mapping[str, str] | None = None,
) -> JobOutcome:
    """Run a CreateProcessingJob request (values resolved to plain JSON) in ``sandbox``.

    Inputs are staged from ``store``, the entrypoint (``python3``/``python`` replaced by
    ``python``) runs with its arguments, and on success every output dir is uploaded to its
    ``S3Uri``. ``image_environment`` is what the image itself would set (under the request's
    Environment), for a local stand-in of an image. The FailureReason is what the job wrote to
    ``/opt/ml/output/message`` (the file SageMaker returns as a processing job's ExitMessage, its
    documented way of telling why it failed; ``/opt/ml/output/failure`` is the training jobs'
    file), else the job's last ``ERROR:`` line, else its last stderr line.
    """
    log_path = _prepare_sandbox(sandbox)
    started = _now()
    result = None
    timeout = _timeout(request)
    try:
        argv, env, uploads = _stage_processing(
            request, store, sandbox, python, log_path, image_environment
        )
    except JobSetupError as error:
        reason: str | None = str(error)
        _note(log_path, f"ERROR: {reason}")
    else:
        _note(log_path, f"run: {' '.join(argv)}")
        result = run_command(argv, env=env, cwd=sandbox, log_path=log_path, timeout_seconds=timeout)
        reason = _failure_reason(result, timeout, [container_path(sandbox, MESSAGE_FILE)])
        if reason is None:
            for upload in uploads:
                store.upload(upload.local, upload.uri)
    run = _Run(started, _now(), result, reason)
    describe = {
        "ProcessingJobName": name,
        "ProcessingJobArn": _arn(JobKind.PROCESSING, name),
        "ProcessingJobStatus": run.status.value,
        **_present(
            request,
            "ProcessingInputs",
            "ProcessingOutputConfig",
            "ProcessingResources",
            "StoppingCondition",
            "AppSpecification",
            "Environment",
            "NetworkConfig",
            "RoleArn",
        ),
        **_times("Processing", run),
    }
    exit_message = _read_message(container_path(sandbox, MESSAGE_FILE))
    if exit_message:
        describe["ExitMessage"] = exit_message[:FAILURE_REASON_LIMIT]
    if reason:
        describe["FailureReason"] = reason
    return _outcome(run, describe, log_path)


# --------------------------------------------------------------------------- training


def _decode_hyperparameter(value: str) -> Any:
    """The toolkit's reading of a hyperparameters.json value: JSON if it parses, else the text."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _hyperparameter_text(value: Any) -> str:
    """HyperParameters values are strings in the API; a resolved non-string is JSON-encoded."""
    return value if isinstance(value, str) else json.dumps(value)


def _cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``--key value`` per hyperparameter, sorted by key (the toolkit's ``to_cmd_args``)."""
    args = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        args.append(f"--{key}" if len(key) > 1 else f"-{key}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append("" if value is None else str(value))
    return args


def _env_value(value: Any) -> str:
    """The toolkit's ``to_env_vars`` value format: strings as they are, the rest compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class _TrainingSetup:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    metrics: list[tuple[str, re.Pattern[str]]]


def _metric_definitions(algorithm: Mapping[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    metrics = []
    for index, item in enumerate(algorithm.get("MetricDefinitions") or []):
        where = f"AlgorithmSpecification.MetricDefinitions[{index}]"
        name = _field(item, "Name", where)
        try:
            metrics.append((name, re.compile(_field(item, "Regex", where))))
        except re.error as error:
            raise JobSetupError(
                VALIDATION, f"{where}.Regex is not a valid regex: {error}"
            ) from None
    return metrics


def _stage_channels(
    request: Mapping[str, Any], store: LocalS3, sandbox: Path, log_path: Path
) -> dict[str, dict[str, str]]:
    """Copy each channel to /opt/ml/input/data/<channel>; return inputdataconfig.json."""
    input_mode = (request.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    config = {}
    for index, channel in enumerate(request.get("InputDataConfig") or []):
        where = f"InputDataConfig[{index}]"
        name = _field(channel, "ChannelName", where)
        source = _field(channel, "DataSource", where)
        if "S3DataSource" not in source:
            raise JobSetupError(
                CLIENT_ERROR,
                f"{where} ({name}): only S3DataSource channels are supported by the local runtime.",
            )
        s3 = source["S3DataSource"]
        _check_s3_data_type(s3.get("S3DataType"), f"{where}.DataSource.S3DataSource.S3DataType")
        _check_uncompressed(channel.get("CompressionType"), f"{where}.CompressionType")
        mode = channel.get("InputMode") or input_mode
        if mode != "File":
            raise JobSetupError(
                CLIENT_ERROR,
                f"{where} ({name}): input mode {mode!r} is not supported by the "
                "local runtime; use 'File'.",
            )
        uri = _field(s3, "S3Uri", f"{where}.DataSource.S3DataSource")
        target = container_path(sandbox, f"{INPUT_DATA_DIR}/{name}")
        staged = _stage(store, uri, target, f"{where} ({name})")
        _note(log_path, f"channel {name}: {len(staged)} object(s) from {uri}")
        entry = {
            "TrainingInputMode": mode,
            "S3DistributionType": s3.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        config[name] = entry
    return config


def _toolkit_env(
    name: str,
    hyperparameters: Mapping[str, Any],
    input_data_config: Mapping[str, Any],
    resource_config: Mapping[str, Any],
    program: str,
    submit_directory: str,
    sandbox: Path,
) -> dict[str, str]:
    """The ``SM_*`` variables sagemaker-training-toolkit sets for the user's script."""
    user = {k: v for k, v in hyperparameters.items() if not k.startswith(SAGEMAKER_HP_PREFIX)}
    framework = {
        k: v
        for k, v in hyperparameters.items()
        if k.startswith(SAGEMAKER_HP_PREFIX) and k not in TOOLKIT_HYPERPARAMETERS
    }
    channels = {channel: f"{INPUT_DATA_DIR}/{channel}" for channel in input_data_config}
    module_name = program[:-3] if program.endswith(".py") else program
    values: dict[str, Any] = {
        "additional_framework_parameters": framework,
        "channel_input_dirs": channels,
        "current_host": resource_config["current_host"],
        "current_instance_type": resource_config["current_instance_type"],
        "current_instance_group": INSTANCE_GROUP,
        "framework_module": None,
        "hosts": resource_config["hosts"],
        "hyperparameters": user,
        "input_config_dir": INPUT_CONFIG_DIR,
        "input_data_config": dict(input_data_config),
        "input_dir": INPUT_DIR,
        "is_master": True,
        "job_name": name,
        "log_level": hyperparameters.get(HP_LOG_LEVEL, DEFAULT_LOG_LEVEL),
        "model_dir": MODEL_DIR,
        "module_dir": submit_directory,
        "module_name": module_name,
        "network_interface_name": resource_config["network_interface_name"],
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": 0,
        "output_data_dir": OUTPUT_DATA_DIR,
        "output_dir": OUTPUT_DIR,
        "output_intermediate_dir": OUTPUT_INTERMEDIATE_DIR,
        "resource_config": dict(resource_config),
        "user_entry_point": program,
    }
    env = {
        key: values[key]
        for key in (
            "hosts",
            "network_interface_name",
            "user_entry_point",
            "resource_config",
            "input_data_config",
            "output_data_dir",
            "current_host",
            "current_instance_type",
            "current_instance_group",
            "module_name",
            "log_level",
            "framework_module",
            "input_dir",
            "input_config_dir",
            "output_dir",
            "num_cpus",
            "num_gpus",
            "model_dir",
            "module_dir",
            "output_intermediate_dir",
        )
    }
    env["hps"] = user
    env["framework_params"] = framework
    env["channels"] = sorted(channels)
    env["training_env"] = values
    env["user_args"] = _cmd_args(user)
    for channel, path in channels.items():
        env[f"channel_{channel}"] = path
    for key, value in user.items():
        env[f"hp_{key}"] = value
    mapped = _map_tree(sandbox, env)
    return {f"SM_{key.upper()}": _env_value(value) for key, value in mapped.items()}


def _stage_training(
    name: str,
    request: Mapping[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str,
    log_path: Path,
) -> _TrainingSetup:
    algorithm = _field(request, "AlgorithmSpecification", "CreateTrainingJob")
    metrics = _metric_definitions(algorithm)
    raw = {
        str(k): _hyperparameter_text(v) for k, v in (request.get("HyperParameters") or {}).items()
    }
    hyperparameters = {k: _decode_hyperparameter(v) for k, v in raw.items()}
    program = hyperparameters.get(HP_PROGRAM)
    if not program:
        raise JobSetupError(
            CLIENT_ERROR,
            f"HyperParameters has no {HP_PROGRAM}: the job would run the built-in algorithm of "
            f"{algorithm.get('TrainingImage')!r}, and built-in algorithm mode is not supported "
            "by the local runtime. Run the image in script mode (an estimator with entry_point).",
        )
    program = str(program)
    output_path = _field(
        _field(request, "OutputDataConfig", "CreateTrainingJob"), "S3OutputPath", "OutputDataConfig"
    )
    _check_uri(store, output_path, "OutputDataConfig.S3OutputPath")
    for directory in (
        MODEL_DIR,
        CODE_DIR,
        INPUT_CONFIG_DIR,
        OUTPUT_DATA_DIR,
        OUTPUT_INTERMEDIATE_DIR,
    ):
        container_path(sandbox, directory).mkdir(parents=True, exist_ok=True)
    code_dir = container_path(sandbox, CODE_DIR)
    submit_directory = hyperparameters.get(HP_SUBMIT_DIRECTORY)
    if submit_directory:
        _fetch_code(
            store, str(submit_directory), code_dir, f"HyperParameters.{HP_SUBMIT_DIRECTORY}"
        )
        _note(log_path, f"code: {submit_directory} -> {CODE_DIR}")
    entry = code_dir / program
    if not entry.is_file():
        raise JobSetupError(
            CLIENT_ERROR,
            f"entry point {program!r} ({HP_PROGRAM}) is not in the code from "
            f"{HP_SUBMIT_DIRECTORY}={submit_directory!r}; files there: "
            f"{sorted(p.relative_to(code_dir).as_posix() for p in code_dir.rglob('*'))[:20]}.",
        )
    input_data_config = _stage_channels(request, store, sandbox, log_path)
    resources = request.get("ResourceConfig") or {}
    instance_type = resources.get("InstanceType", "local")
    resource_config = {
        "current_host": CURRENT_HOST,
        "current_instance_type": instance_type,
        "current_group_name": INSTANCE_GROUP,
        "hosts": [CURRENT_HOST],
        "instance_groups": [
            {
                "instance_group_name": INSTANCE_GROUP,
                "instance_type": instance_type,
                "hosts": [CURRENT_HOST],
            }
        ],
        "network_interface_name": NETWORK_INTERFACE,
    }
    config_dir = container_path(sandbox, INPUT_CONFIG_DIR)
    for file_name, content in (
        (HYPERPARAMETERS_FILE, raw),
        (RESOURCE_CONFIG_FILE, resource_config),
        (INPUT_DATA_CONFIG_FILE, input_data_config),
    ):
        (config_dir / file_name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    toolkit = _toolkit_env(
        name,
        hyperparameters,
        input_data_config,
        resource_config,
        program,
        str(submit_directory or CODE_DIR),
        sandbox,
    )
    env = _job_env(sandbox, request.get("Environment"))
    env.update(toolkit)
    env["TRAINING_JOB_NAME"] = name
    env["TRAINING_JOB_ARN"] = _arn(JobKind.TRAINING, name)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), env.get("PYTHONPATH")]))
    user = {k: v for k, v in hyperparameters.items() if not k.startswith(SAGEMAKER_HP_PREFIX)}
    args = [map_container_value(sandbox, arg) for arg in _cmd_args(user)]
    if program.endswith(".py"):
        argv = [python, program, *args]
    elif program.endswith(".sh"):
        argv = ["/bin/sh", program, *args]
    else:
        raise JobSetupError(
            CLIENT_ERROR,
            f"{HP_PROGRAM}={program!r}: the local runtime runs Python (.py) or shell (.sh) entry "
            "points only.",
        )
    return _TrainingSetup(argv, env, code_dir, metrics)


def _final_metrics(
    log_path: Path, metrics: Sequence[tuple[str, re.Pattern[str]]], timestamp: datetime
) -> list[dict[str, Any]]:
    """The last value each MetricDefinitions regex captured in the job's log, line by line."""
    if not metrics or not log_path.is_file():
        return []
    last: dict[str, float] = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        for metric, pattern in metrics:
            match = pattern.search(line)
            if match is None:
                continue
            try:
                last[metric] = float(match.group(1) if match.groups() else match.group(0))
            except ValueError:
                continue
    return [
        {"MetricName": metric, "Value": last[metric], "Timestamp": timestamp.isoformat()}
        for metric, _ in metrics
        if metric in last
    ]


def run_training_job(
    name: str,
    request: dict[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str = sys.executable,
) -> JobOutcome:
    """Run a CreateTrainingJob request in the framework containers' script mode, in ``sandbox``.

    On success ``/opt/ml/model`` is published as ``<S3OutputPath>/<name>/output/model.tar.gz``
    and a non-empty ``/opt/ml/output/data`` as ``.../output/output.tar.gz``. The FailureReason
    is ``/opt/ml/output/failure`` when the job wrote it, else as for processing jobs.
    """
    log_path = _prepare_sandbox(sandbox)
    started = _now()
    result = None
    metrics: list[tuple[str, re.Pattern[str]]] = []
    timeout = _timeout(request)
    output_path = str((request.get("OutputDataConfig") or {}).get("S3OutputPath", "")).rstrip("/")
    job_output = f"{output_path}/{name}/output"
    try:
        setup = _stage_training(name, request, store, sandbox, python, log_path)
    except JobSetupError as error:
        reason: str | None = str(error)
        _note(log_path, f"ERROR: {reason}")
    else:
        metrics = setup.metrics
        _note(log_path, f"run: {' '.join(setup.argv)}")
        result = run_command(
            setup.argv, env=setup.env, cwd=setup.cwd, log_path=log_path, timeout_seconds=timeout
        )
        reason = _failure_reason(result, timeout, [container_path(sandbox, FAILURE_FILE)])
        if reason is None:
            _publish_training_outputs(store, sandbox, job_output)
    run = _Run(started, _now(), result, reason)
    describe = {
        "TrainingJobName": name,
        "TrainingJobArn": _arn(JobKind.TRAINING, name),
        "TrainingJobStatus": run.status.value,
        "SecondaryStatus": _secondary_status(run),
        "ModelArtifacts": {"S3ModelArtifacts": f"{job_output}/{MODEL_ARCHIVE}"},
        **_present(
            request,
            "AlgorithmSpecification",
            "HyperParameters",
            "InputDataConfig",
            "OutputDataConfig",
            "ResourceConfig",
            "StoppingCondition",
            "Environment",
            "RoleArn",
        ),
        **_times("Training", run),
        "TrainingTimeInSeconds": int(run.result.seconds) if run.result else 0,
    }
    final_metrics = _final_metrics(log_path, metrics, run.ended)
    if final_metrics:
        describe["FinalMetricDataList"] = final_metrics
    if reason:
        describe["FailureReason"] = reason
    return _outcome(run, describe, log_path)


def _secondary_status(run: _Run) -> str:
    if run.status is JobStatus.COMPLETED:
        return "Completed"
    return "MaxRuntimeExceeded" if run.result and run.result.timed_out else "Failed"


def _publish_training_outputs(store: LocalS3, sandbox: Path, job_output: str) -> None:
    artifacts = Path(sandbox, "artifacts")
    model_archive = artifacts / MODEL_ARCHIVE
    _write_tar_gz(container_path(sandbox, MODEL_DIR), model_archive)
    store.upload(model_archive, f"{job_output}/{MODEL_ARCHIVE}")
    output_data = container_path(sandbox, OUTPUT_DATA_DIR)
    if any(output_data.iterdir()):
        output_archive = artifacts / OUTPUT_ARCHIVE
        _write_tar_gz(output_data, output_archive)
        store.upload(output_archive, f"{job_output}/{OUTPUT_ARCHIVE}")


# --------------------------------------------------------------------------- transform


def _primary_container(model: Mapping[str, Any]) -> Mapping[str, Any]:
    if model.get("PrimaryContainer"):
        return model["PrimaryContainer"]
    containers = model.get("Containers") or []
    if len(containers) == 1:
        return containers[0]
    found = f"{len(containers)} Containers (an inference pipeline)" if containers else "nothing"
    raise JobSetupError(
        CLIENT_ERROR,
        f"model {model.get('ModelName')!r} has no PrimaryContainer but {found}; the local "
        "runtime serves a single script-mode container.",
    )


def _stage_inference_code(
    store: LocalS3, submit_directory: str | None, sandbox: Path, log_path: Path
) -> Path:
    """Where the inference toolkit finds the user's module (default ``/opt/ml/model/code``)."""
    field = f"model Environment.{ENV_SUBMIT_DIRECTORY}"
    if not submit_directory:
        return container_path(sandbox, INFERENCE_CODE_DIR)
    if submit_directory.startswith("/"):
        return _sandbox_path(sandbox, submit_directory, field)
    code_dir = container_path(sandbox, CODE_DIR)
    _fetch_code(store, submit_directory, code_dir, field)
    _note(log_path, f"code: {submit_directory} -> {CODE_DIR}")
    return code_dir


def _stage_transform(
    request: Mapping[str, Any],
    model: Mapping[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str,
    log_path: Path,
) -> tuple[list[str], dict[str, str], Path, str]:
    container = _primary_container(model)
    model_env = container.get("Environment") or {}
    program = model_env.get(ENV_PROGRAM)
    if not program:
        raise JobSetupError(
            CLIENT_ERROR,
            f"model {model.get('ModelName')!r} has no {ENV_PROGRAM} in its container "
            "Environment; the local runtime serves script-mode models only (give the model an "
            "entry_point).",
        )
    model_dir = container_path(sandbox, MODEL_DIR)
    model_dir.mkdir(parents=True, exist_ok=True)
    model_data = container.get("ModelDataUrl")
    if model_data:
        try:
            archive = store.path(model_data)
        except StoreError as error:
            raise JobSetupError(VALIDATION, f"ModelDataUrl: {error}") from None
        if not archive.is_file():
            raise JobSetupError(
                CLIENT_ERROR,
                f"ModelDataUrl {model_data!r} does not exist (local store: {archive}): the "
                "model archive was removed after the model was created. Run the pipeline again: "
                "training runs again when its cached archive is gone, and a new model is "
                "created from what it writes.",
            )
        _safe_extract(archive, model_dir, "ModelDataUrl")
        _note(log_path, f"model: {model_data} -> {MODEL_DIR}")
    code_dir = _stage_inference_code(store, model_env.get(ENV_SUBMIT_DIRECTORY), sandbox, log_path)
    if not (code_dir / program).is_file():
        raise JobSetupError(
            CLIENT_ERROR,
            f"{ENV_PROGRAM}={program!r} is not in the inference code directory "
            f"{model_env.get(ENV_SUBMIT_DIRECTORY) or INFERENCE_CODE_DIR}; package it with the "
            "model (code/ inside model.tar.gz) or set SAGEMAKER_SUBMIT_DIRECTORY.",
        )

    transform_input = _field(request, "TransformInput", "CreateTransformJob")
    s3 = _field(
        _field(transform_input, "DataSource", "TransformInput"),
        "S3DataSource",
        "TransformInput.DataSource",
    )
    _check_s3_data_type(s3.get("S3DataType"), "TransformInput.DataSource.S3DataSource.S3DataType")
    _check_uncompressed(transform_input.get("CompressionType"), "TransformInput.CompressionType")
    uri = _field(s3, "S3Uri", "TransformInput.DataSource.S3DataSource")
    input_root = Path(sandbox, "transform", "input")
    input_files = _stage(store, uri, input_root, "TransformInput")
    _note(log_path, f"input: {len(input_files)} object(s) from {uri}")
    transform_output = _field(request, "TransformOutput", "CreateTransformJob")
    output_uri = _check_uri(
        store,
        _field(transform_output, "S3OutputPath", "TransformOutput"),
        "TransformOutput.S3OutputPath",
    )
    output_dir = Path(sandbox, "transform", "output")
    output_dir.mkdir(parents=True, exist_ok=True)
    processing = request.get("DataProcessing") or {}
    max_payload_mb = request.get("MaxPayloadInMB")
    spec: dict[str, Any] = {
        "model_dir": str(model_dir),
        "code_dir": str(code_dir),
        "program": program,
        "input_files": [str(path) for path in input_files],
        "input_root": str(input_root),
        "output_dir": str(output_dir),
        "content_type": transform_input.get("ContentType") or DEFAULT_CONTENT_TYPE,
        "accept": transform_output.get("Accept") or ACCEPT_ANY,
        "split_type": transform_input.get("SplitType") or "None",
        "batch_strategy": request.get("BatchStrategy") or "MultiRecord",
        "max_payload_bytes": int(
            (DEFAULT_MAX_PAYLOAD_MB if max_payload_mb is None else max_payload_mb) * 1024 * 1024
        ),
        "assemble_with": transform_output.get("AssembleWith") or "None",
        "join_source": processing.get("JoinSource") or "None",
    }
    for key, field in (("input_filter", "InputFilter"), ("output_filter", "OutputFilter")):
        if processing.get(field) is not None:
            spec[key] = processing[field]
    request_path = Path(sandbox, "transform", "request.json")
    request_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")

    env = _job_env(sandbox, model_env, request.get("Environment"))
    env[FAILURE_REASON_FILE_ENV] = str(container_path(sandbox, FAILURE_FILE))
    container_path(sandbox, OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    argv = [python, "-m", TRANSFORM_MODULE, "--request", str(request_path)]
    return argv, env, output_dir, output_uri


def run_transform_job(
    name: str,
    request: dict[str, Any],
    model: dict[str, Any],
    store: LocalS3,
    sandbox: Path,
    python: str = sys.executable,
) -> JobOutcome:
    """Run a CreateTransformJob request against ``model`` (the CreateModel request it names).

    The model archive is extracted into ``/opt/ml/model``, the inference code found as the
    inference toolkit does, the input objects staged, and ``python -m runtime.transform`` runs
    the job; on success ``<relative key>.out`` files are uploaded under ``S3OutputPath``.
    """
    log_path = _prepare_sandbox(sandbox)
    started = _now()
    result = None
    try:
        argv, env, output_dir, output_uri = _stage_transform(
            request, model, store, sandbox, python, log_path
        )
    except JobSetupError as error:
        reason: str | None = str(error)
        _note(log_path, f"ERROR: {reason}")
    else:
        _note(log_path, f"run: {' '.join(argv)}")
        result = run_command(argv, env=env, cwd=sandbox, log_path=log_path, timeout_seconds=None)
        reason = _failure_reason(result, None, [container_path(sandbox, FAILURE_FILE)])
        if reason is None:
            store.upload(output_dir, output_uri)
    run = _Run(started, _now(), result, reason)
    describe = {
        "TransformJobName": name,
        "TransformJobArn": _arn(JobKind.TRANSFORM, name),
        "TransformJobStatus": run.status.value,
        **_present(
            request,
            "ModelName",
            "MaxConcurrentTransforms",
            "MaxPayloadInMB",
            "BatchStrategy",
            "Environment",
            "TransformInput",
            "TransformOutput",
            "TransformResources",
            "DataProcessing",
        ),
        **_times("Transform", run),
    }
    if reason:
        describe["FailureReason"] = reason
    return _outcome(run, describe, log_path)
