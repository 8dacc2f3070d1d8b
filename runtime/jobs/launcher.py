"""The one skeleton every job runs through: stage, run, judge, publish, describe."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from runtime.jobs import process
from runtime.jobs.contract import (
    ACCOUNT_ID,
    DEFAULT_REGION,
    ERROR_PREFIX,
    HOST_PREFIX,
    HOSTS_DIR,
    MAX_LOCAL_HOSTS,
    REGION_ENV,
    THREADS_ENV,
    VALIDATION,
    CommandResult,
    JobKind,
    JobOutcome,
    JobSetupError,
    JobStatus,
)
from runtime.jobs.sandbox import container_path, note, prepare_sandbox
from tabular.contract import FAILURE_REASON_LIMIT, LOCAL_HOST_ADDRESSES


def now() -> datetime:
    return datetime.now(UTC)


def job_arn(kind: JobKind, name: str) -> str:
    region = os.environ.get(REGION_ENV) or DEFAULT_REGION
    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind.value}/{name.lower()}"


def read_message(path: Path) -> str | None:
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


def failure_reason(
    result: CommandResult, timeout_seconds: float | None, message_files: Iterable[Path]
) -> str | None:
    """SageMaker's FailureReason for a finished command, None when it succeeded."""
    if result.timed_out:
        limit = f"{timeout_seconds:g}" if timeout_seconds is not None else "?"
        return f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds={limit}"
    if result.returncode == 0:
        return None
    for path in message_files:
        message = read_message(path)
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
class Attempt:
    """One job attempt: its times, its command's result (None if it never started), reason."""

    started: datetime
    ended: datetime
    result: CommandResult | None
    reason: str | None

    @property
    def status(self) -> JobStatus:
        return JobStatus.FAILED if self.reason else JobStatus.COMPLETED


JOB_PREFIXES = {
    JobKind.PROCESSING: "Processing",
    JobKind.TRAINING: "Training",
    JobKind.TRANSFORM: "Transform",
}
"""How each kind names its fields in Describe*Job: ``<Prefix>JobName``, ``<Prefix>StartTime``."""


def describe_job(
    kind: JobKind, name: str, run: Attempt, request: Mapping[str, Any], *echoed: str
) -> dict[str, Any]:
    """The Describe*Job fields every kind shares, with the request fields it echoes."""
    prefix = JOB_PREFIXES[kind]
    return {
        f"{prefix}JobName": name,
        f"{prefix}JobArn": job_arn(kind, name),
        f"{prefix}JobStatus": run.status.value,
        **describe_fields(request, *echoed),
        **describe_times(prefix, run),
    }


def outcome(run: Attempt, describe: dict[str, Any], log_path: Path) -> JobOutcome:
    """The finished job; a failed one's Describe*Job carries its FailureReason."""
    if run.reason:
        describe["FailureReason"] = run.reason
    return JobOutcome(
        status=run.status,
        failure_reason=run.reason,
        describe=describe,
        peak_rss_bytes=run.result.peak_rss_bytes if run.result else 0,
        seconds=run.result.seconds if run.result else 0.0,
        log_path=log_path,
    )


def max_runtime(request: Mapping[str, Any]) -> float | None:
    value = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return float(value) if value is not None else None


def describe_fields(request: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The request's fields among ``keys`` that it sets (Describe* echoes what was created)."""
    return {key: request[key] for key in keys if request.get(key) is not None}


def describe_times(prefix: str, run: Attempt) -> dict[str, str]:
    return {
        "CreationTime": run.started.isoformat(),
        f"{prefix}StartTime": run.started.isoformat(),
        f"{prefix}EndTime": run.ended.isoformat(),
        "LastModifiedTime": run.ended.isoformat(),
    }


@dataclass(frozen=True)
class Host:
    """One more instance of a job (a training job's ``algo-k``, k > 1): its command, its own
    sandbox and log. The job's first instance is the :class:`Launch` itself."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    sandbox: Path
    log_path: Path


@dataclass(frozen=True)
class Launch:
    """A staged job: its command, environment and folder, and what to publish when it succeeds.

    ``hosts``: the job's other instances, started with it (training with InstanceCount > 1).
    """

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    publish: Callable[[], object]
    host: str = ""
    hosts: tuple[Host, ...] = ()


class HostSetup(Protocol):
    """What staging one host of a job gives: its command, environment and folder."""

    @property
    def argv(self) -> list[str]: ...

    @property
    def env(self) -> dict[str, str]: ...

    @property
    def cwd(self) -> Path: ...


def host_addresses(value: Any, field: str) -> dict[str, str]:
    """``value`` (a job's instance count, from ``field``) hosts ``algo-1`` ... on one random
    127.x.y.0/24: every host binds its own loopback address (all of 127/8 is the loopback
    interface), and jobs that run side by side never share one."""
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if not 1 <= count <= MAX_LOCAL_HOSTS:
        raise JobSetupError(
            VALIDATION, f"{field}={value!r}: the local runtime runs 1 to {MAX_LOCAL_HOSTS} hosts."
        )
    network = f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(254) + 1}"
    return {f"{HOST_PREFIX}{k}": f"{network}.{k}" for k in range(1, count + 1)}


def cpu_share(hosts: int) -> int:
    """The cores one of ``hosts`` local hosts may use (SM_NUM_CPUS, OpenMP threads)."""
    return max(1, (os.cpu_count() or 1) // hosts)


def add_host_env(env: dict[str, str], addresses: Mapping[str, str]) -> None:
    """A host's view of the others when a job has several: their addresses (the runtime's
    stand-in for the cluster's DNS) and its share of this machine's cores, since each host is
    an instance of its own and N hosts' thread pools would otherwise fight over the same
    cores (an OpenMP thread count the job sets itself is kept)."""
    if len(addresses) > 1:
        env[LOCAL_HOST_ADDRESSES] = json.dumps(dict(addresses), sort_keys=True)
        env.setdefault(THREADS_ENV, str(cpu_share(len(addresses))))


S = TypeVar("S", bound=HostSetup)


def stage_hosts(
    sandbox: Path,
    log_path: Path,
    addresses: Mapping[str, str],
    stage: Callable[[Path, Path, int], S],
) -> tuple[S, tuple[Host, ...]]:
    """Stage every host of a job: ``stage(sandbox, log_path, index)`` for the first host in
    ``sandbox`` itself, and for host ``algo-k`` (k > 1) in ``sandbox/hosts/algo-k``, a sandbox
    and log of its own. Returns the first host's setup and the others as :class:`Host`."""
    names = list(addresses)
    first = stage(sandbox, log_path, 0)
    others = []
    for index, host in enumerate(names[1:], start=1):
        root = Path(sandbox, HOSTS_DIR, host)
        log = prepare_sandbox(root)
        other = stage(root, log, index)
        others.append(Host(host, other.argv, other.env, other.cwd, root, log))
    if others:
        note(log_path, f"hosts: {dict(addresses)}; the others run in {HOSTS_DIR}/<host>")
    return first, tuple(others)


def launch(
    sandbox: Path, timeout: float | None, message_file: str, stage: Callable[[Path], Launch]
) -> tuple[Attempt, Path]:
    """The skeleton of every job: stage it, run it, judge it, publish its outputs.

    ``stage(log_path)`` prepares the sandbox and returns the command (a JobSetupError it raises
    fails the job before any process starts). The FailureReason is what the job wrote to
    ``message_file`` (the file SageMaker reads for this kind of job), else its last ``ERROR:``
    line, else its last stderr line; outputs are published only when it succeeded. A job of
    several hosts runs them all at once and fails with its first failing host (see
    :func:`_run_hosts`).
    """
    log_path = prepare_sandbox(sandbox)
    started = now()
    result = None
    try:
        job = stage(log_path)
    except JobSetupError as error:
        reason: str | None = str(error)
        note(log_path, f"ERROR: {reason}")
    else:
        note(log_path, f"run: {' '.join(job.argv)}")
        first = Host(job.host, job.argv, job.env, job.cwd, sandbox, log_path)
        result, reason = _run_hosts((first, *job.hosts), timeout, message_file)
        if reason is None:
            job.publish()
    return Attempt(started, now(), result, reason), log_path


def _run_host(
    host: Host, timeout: float | None, message_file: str, cancel: threading.Event | None
) -> tuple[CommandResult, str | None]:
    result = process.run_command(
        host.argv,
        env=host.env,
        cwd=host.cwd,
        log_path=host.log_path,
        timeout_seconds=timeout,
        cancel=cancel,
    )
    return result, failure_reason(result, timeout, [container_path(host.sandbox, message_file)])


def _run_hosts(
    hosts: Sequence[Host], timeout: float | None, message_file: str
) -> tuple[CommandResult, str | None]:
    """Run every host's process at once, as SageMaker starts a job's instances together.

    When a host fails, the others are stopped (SIGTERM, then SIGKILL), as SageMaker stops the
    job's other instances, and its FailureReason is the job's. The job's result: the failing
    (else the first) host's exit, the largest peak RSS and the longest time of any host.
    """
    if len(hosts) == 1:
        return _run_host(hosts[0], timeout, message_file, None)
    cancel = threading.Event()
    results: list[tuple[CommandResult, str | None] | None] = [None] * len(hosts)
    failed: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            outcome = _run_host(hosts[index], timeout, message_file, cancel)
        except BaseException as error:  # re-raised below, once every host has ended
            with lock:
                errors.append(error)
            cancel.set()
            return
        with lock:
            results[index] = outcome
            if outcome[1] and not failed:
                failed.append(index)
                cancel.set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(hosts))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        cancel.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]
    chosen = failed[0] if failed else 0
    first, reason = results[chosen]  # type: ignore[misc]
    if failed:
        logs = ", ".join(f"{h.name}: {h.log_path}" for h in hosts)
        note(hosts[0].log_path, f"host {hosts[chosen].name} failed: {reason} (logs: {logs})")
    finished = [item[0] for item in results if item is not None]
    result = CommandResult(
        returncode=first.returncode,
        timed_out=any(item.timed_out for item in finished),
        peak_rss_bytes=max(item.peak_rss_bytes for item in finished),
        seconds=max(item.seconds for item in finished),
        stderr_tail=first.stderr_tail,
    )
    return result, reason
