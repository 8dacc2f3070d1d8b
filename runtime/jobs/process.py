"""A job's process: launched in its own group, logged, timed, stopped as a container is."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from runtime.jobs import warm
from runtime.jobs.contract import CommandResult

KILL_GRACE_SECONDS = 5.0


"""Seconds between SIGTERM and SIGKILL when a job is stopped (as ``docker stop`` waits)."""


READER_JOIN_SECONDS = 5.0


STDERR_TAIL_LINES = 50


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

    def on_cancel(self, cancel: threading.Event) -> None:
        """Watcher thread: stop the group once ``cancel`` is set, unless the leader exited."""
        while not self.leader_exited.is_set():
            if cancel.wait(0.2):
                if not self.leader_exited.is_set():
                    self.send(signal.SIGTERM)
                    if not self.leader_exited.wait(KILL_GRACE_SECONDS):
                        self.send(signal.SIGKILL)
                return

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


def launcher_argv(report_write: int, argv: Sequence[str]) -> list[str]:
    """The launcher's command line: it runs ``argv`` and reports on ``report_write``."""
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(report_write), str(os.getpid()), *argv]


def _start_cold(
    argv: Sequence[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """The launcher running ``argv`` from a fresh interpreter (``exec``)."""
    report_read, report_write = os.pipe()
    try:
        process = subprocess.Popen(
            launcher_argv(report_write, argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(report_write,),
        )
    except BaseException:
        os.close(report_read)
        raise
    finally:
        os.close(report_write)
    return process, report_read


def _start(
    argv: Sequence[str], env: dict[str, str], cwd: Path, warm_start: warm.Warm | None
) -> tuple[subprocess.Popen[bytes], int, warm.Warm | None]:
    """The job's launcher: a warm process handed the job, else a cold start. A warm process
    that ended before it got its job (stopped, or its pipe broke) gives way to a cold start."""
    if warm_start is not None:
        try:
            warm_start.start(argv, env, cwd)
        except OSError:
            warm_start.discard()
        else:
            return warm_start.process, warm_start.report_read, warm_start
    process, report_read = _start_cold(argv, env, cwd)
    return process, report_read, None


def run_command(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    timeout_seconds: float | None,
    cancel: threading.Event | None = None,
) -> CommandResult:
    """Run ``argv`` as a job's main process, like a container's PID 1.

    The child starts in its own session (process group). Its stdout and stderr are appended to
    ``log_path`` line by line as they come; the last :data:`STDERR_TAIL_LINES` stderr lines are
    kept. After ``timeout_seconds`` the group gets SIGTERM, then SIGKILL after
    :data:`KILL_GRACE_SECONDS`. When the main process exits, whatever it left running in its
    group is killed (a container ends with its PID 1). On KeyboardInterrupt the group is
    stopped the same way and the interrupt re-raised. A command that cannot be executed ends
    with exit code 127 and ``ERROR: cannot run ...`` on stderr. Setting ``cancel`` stops the
    group as a timeout does (the other hosts of a training job one of whose hosts failed).
    """
    if not argv:
        raise ValueError("run_command needs a command; argv is empty.")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    lock = threading.Lock()
    started = time.monotonic()
    report_read: int | None = None
    warm_start = warm.take(argv, env)
    try:
        with log_path.open("ab") as log:
            process, report_read, warm_start = _start(argv, env, cwd, warm_start)
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
            if cancel is not None:
                watcher = threading.Thread(target=group.on_cancel, args=(cancel,), daemon=True)
                watcher.start()
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
        if report_read is not None:
            os.close(report_read)
        elif warm_start is not None:  # the log could not be opened: the job never started
            warm_start.discard()
    return CommandResult(
        returncode=os.waitstatus_to_exitcode(status),
        started_warm=warm_start is not None,
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


STOP_POLL_SECONDS = 0.2
"""Longest a waiting main thread goes without looking at :func:`stop_on_signals`' event."""


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and Ctrl-C set ``stop`` (the caller stops its jobs and records the run as
    Stopped) instead of raising KeyboardInterrupt wherever the main thread happens to be.

    Raised from a signal, KeyboardInterrupt can be lost: a signal handled while the main thread
    is on its way into a lock wait (``concurrent.futures.wait`` without a timeout) leaves it
    blocked until a job ends, and a frozen job never does (measured: about one run in four
    kept waiting). Raised inside library code it can also leave a lock taken. The handler
    here only sets the event; the caller waits in slices of :data:`STOP_POLL_SECONDS` and
    looks at it between them. A SIGINT inherited as ignored (a shell's background job, ``nohup``)
    stays ignored, as Python itself leaves it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, frame: Any) -> None:
        stop.set()

    handled = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        handled.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, request) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _children() -> dict[int, str]:
    """pid -> state letter of this process's children (each job leads its own process group)."""
    me, found = str(os.getpid()), {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            found[int(stat.parent.name)] = fields[0]
    return found


def _signal_groups(groups: Iterable[int], *signums: int) -> None:
    for group in groups:
        for signum in signums:
            try:
                os.killpg(group, signum)
            except (ProcessLookupError, PermissionError):
                break


def stop_children() -> None:
    """Stop every job this run started as ``docker stop`` does: SIGTERM (and SIGCONT, for a
    stopped job) to each job's process group, SIGKILL to what is left after the grace period.
    The threads waiting for the jobs then see them end."""
    groups = list(_children())
    _signal_groups(groups, signal.SIGTERM, signal.SIGCONT)
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline:
        running = {pid for pid, state in _children().items() if state != "Z"}
        if not running & set(groups):
            break
        time.sleep(0.05)
    _signal_groups(set(groups) & set(_children()), signal.SIGKILL)  # still ours: not reused
