"""Offline proof: every connection attempt and name lookup fails loudly, in every thread.

`sys.addaudithook` sees CPython's `socket.*` audit events in every thread of the process (the
SDK's telemetry runs in daemon threads that swallow errors, which patching `connect` in the
main thread never noticed). A hook cannot be removed, so it is installed once and armed per use:

* in this process, the `no_network` fixture (tests/conftest.py) arms it for one test and fails
  the test on teardown if anything tried the network, even from a thread that swallowed it;
* in a subprocess, `bare_env(..., guard=log)` puts offline_site/ on PYTHONPATH, whose
  sitecustomize installs the hook, armed, writing each attempt to `log`.

`bare_env` is the shell of a new user: PATH, LANG and an empty HOME, nothing else (no AWS_*
variables, no ~/.aws); `bare_command` adds `unshare -n` (no network namespace access) where the
machine allows it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from functools import cache
from pathlib import Path

SITE_DIR = Path(__file__).resolve().parent / "offline_site"
LOG_VARIABLE = "OFFLINE_GUARD_LOG"
ALLOW_VARIABLE = "OFFLINE_GUARD_ALLOW"  # "host:port" a test serves itself (a moto server)
# CPython's audit events for opening a connection or resolving a name (or sending a datagram,
# as a resolver does).
NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)


class NetworkBlocked(ConnectionError):
    """Raised in place of the connection or lookup a test forbids."""


class _Guard:
    def __init__(self) -> None:
        self.armed = False
        self.attempts: list[str] = []
        self.log: Path | None = None
        self.allowed: set[tuple[str, int]] = set()
        self.lock = threading.Lock()

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.armed or event not in NETWORK_EVENTS:
            return
        if event.startswith("socket.") and args and isinstance(args[0], socket.socket):
            if args[0].family == socket.AF_UNIX:  # local IPC, not the network
                return
            target = args[1:]
        else:
            target = args
        address = target[0] if event != "socket.getaddrinfo" else target[:2]
        if isinstance(address, tuple) and tuple(address[:2]) in self.allowed:
            return
        line = f"{event} {target!r} in thread {threading.current_thread().name!r}"
        with self.lock:
            self.attempts.append(line)
            if self.log is not None:
                with self.log.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
        print(f"OFFLINE GUARD: {line}", file=sys.stderr, flush=True)
        raise NetworkBlocked(f"network access attempted: {line}")


GUARD = _Guard()
_installed = False


def install(log: Path | None = None, allow: str = "") -> _Guard:
    """Install the hook once per process; `log` receives every attempt (subprocess use).

    `allow`: comma-separated host:port a test serves itself, e.g. "127.0.0.1:5000".
    """
    global _installed
    if not _installed:
        sys.addaudithook(GUARD.hook)
        _installed = True
    GUARD.log = log
    for item in filter(None, allow.split(",")):
        host, port = item.rsplit(":", 1)
        GUARD.allowed.add((host, int(port)))
    return GUARD


@cache
def can_unshare_network() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True)
    return probe.returncode == 0


def bare_env(
    home: Path, guard: Path | None = None, allow: str = "", **extra: str
) -> dict[str, str]:
    """A new user's shell: PATH, LANG, an empty HOME; `guard` arms the offline guard."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    # The tests' one departure: the definition is built, never reused from the checkout's
    # build/ folder (pipelines/saved.py), so that what a test checks is a build.
    env["PIPELINE_SAVED_DEFINITIONS"] = "off"
    if guard is not None:
        env["PYTHONPATH"] = str(SITE_DIR)
        env[LOG_VARIABLE] = str(guard)
        env[ALLOW_VARIABLE] = allow
    env.update(extra)
    return env


def bare_command(argv: list[str], network: bool = False) -> list[str]:
    """`argv`, without access to any network where `unshare -n` is available."""
    if network or not can_unshare_network():
        return argv
    return [str(shutil.which("unshare")), "-n", *argv]
