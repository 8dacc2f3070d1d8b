"""A real headless Chromium (Debian's package), driven over the DevTools protocol on a pipe.

``--remote-debugging-pipe`` makes the browser read protocol messages from fd 3 and write them
to fd 4, each a JSON object ended by a NUL byte: no websocket library and no port. The browser
runs in a network namespace of its own (``unshare -n``) where the machine allows it, and is told
to resolve no name and to use an unreachable proxy, so a page that tried to fetch anything
would show it in the requests it made, and could not get it.

:func:`ensure_chromium` installs the OS package (``apt-get install chromium``) when it is
missing: the browser comes from the distribution, never from a library's download at run time.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline_guard import can_unshare_network

CHROMIUM_NAMES = ("chromium", "chromium-browser")
APT_PACKAGE = "chromium"
TIMEOUT_SECONDS = 60


class BrowserUnavailable(RuntimeError):
    """Chromium is not installed and could not be installed; the message says how to."""


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def ensure_chromium() -> str:
    """The chromium binary; installed from the OS packages (apt) when missing."""
    found = find_chromium()
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BrowserUnavailable(
            f"chromium is not installed; install the OS package: sudo apt-get install {APT_PACKAGE}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", APT_PACKAGE]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([apt, "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BrowserUnavailable(
                f"apt-get install {APT_PACKAGE} failed: {done.stderr.strip()[-500:]}"
            )
    found = find_chromium()
    if not found:
        raise BrowserUnavailable(f"apt-get installed {APT_PACKAGE} but no chromium is on PATH")
    return found


@dataclass
class Browser:
    """One page of a headless Chromium, spoken to over the DevTools pipe."""

    process: subprocess.Popen[bytes]
    to_browser: Any
    from_browser: Any
    session: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0
    _buffer: bytes = b""

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self.from_browser.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command (to the page's session once attached); return its result."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            command["sessionId"] = self.session
        self.to_browser.write(json.dumps(command).encode() + b"\0")
        self.to_browser.flush()
        while True:
            message = self._read_message()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str) -> dict[str, Any]:
        for index, message in enumerate(self.events):
            if message["method"] == event:
                return self.events.pop(index)
        while True:
            message = self._read_message()
            if message.get("method") == event:
                return message
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])


@contextmanager
def headless(width: int, height: int, mobile: bool) -> Iterator[Browser]:
    """A fresh headless Chromium (own profile, no network) with one page at ``width``."""
    chromium = ensure_chromium()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-default-apps", "--metrics-recording-only",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
            "about:blank",
        ]  # fmt: skip
        if can_unshare_network():
            command = [shutil.which("unshare") or "unshare", "-n", *command]
        to_read, to_browser = os.pipe()
        from_browser, to_write = os.pipe()

        def descriptors() -> None:  # the child's fd 3 reads commands, fd 4 writes answers
            # Move both ends above 4 first, so neither dup2 overwrites the other's source.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_read, to_write)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        # close_fds=False: fds 3 and 4 are made after Popen's closing of inherited fds would run;
        # every other descriptor Python opens is non-inheritable and closes on exec anyway.
        process = subprocess.Popen(
            command, close_fds=False, preexec_fn=descriptors, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_read)
        os.close(to_write)
        browser = Browser(process, os.fdopen(to_browser, "wb"), os.fdopen(from_browser, "rb"))
        try:
            targets = browser.call("Target.getTargets")["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            attached = browser.call(
                "Target.attachToTarget", targetId=page["targetId"], flatten=True
            )
            browser.session = attached["sessionId"]
            browser.call("Page.enable")
            browser.call("Network.enable")
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                width=width, height=height, deviceScaleFactor=1, mobile=mobile,
            )  # fmt: skip
            yield browser
        finally:
            _close(browser)


def _close(browser: Browser) -> None:
    """Ask the browser to quit; then end its process group (its renderers included)."""
    try:
        browser.session = ""
        browser.call("Browser.close")
    except (OSError, RuntimeError):
        pass  # it is gone already; the process group goes below either way
    with suppress(subprocess.TimeoutExpired):
        browser.process.wait(timeout=TIMEOUT_SECONDS)
    with suppress(ProcessLookupError):
        os.killpg(browser.process.pid, signal.SIGKILL)  # the group this test started
    browser.process.wait(timeout=TIMEOUT_SECONDS)
    browser.to_browser.close()
    browser.from_browser.close()


def load(browser: Browser, page: Path) -> None:
    """Open ``page`` and wait until it and its images have loaded."""
    browser.call("Page.navigate", url=page.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")


def requested_urls(browser: Browser) -> list[str]:
    """Every URL the page asked for (Network.requestWillBeSent), the page itself included."""
    return [
        e["params"]["request"]["url"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
    ]
