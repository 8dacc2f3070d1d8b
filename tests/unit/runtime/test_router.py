"""The router sends a request to a variant once, never again after the variant may have run it."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.serving.router import RouterApp, Variant

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 4\r\n\r\n0.5\n"


class ScriptedVariant:
    """A real TCP server on a free port. For each request it reads, in order, ``script`` says
    what it does: ``answer`` (and keep the connection), ``answer-close`` (answer, then close
    the connection without saying so, as a server whose keep-alive ran out) or ``drop`` (close
    without an answer, as a server that died while running it)."""

    def __init__(self, script: list[str]) -> None:
        self.script, self.requests = list(script), 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.script:
            connection, _ = self.listener.accept()
            with connection:
                while self.script:
                    data = b""
                    while b"\r\n\r\n" not in data or not data.endswith(b"x\n"):
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break  # the router closed this connection
                    self.requests += 1
                    action = self.script.pop(0)
                    if action == "drop":
                        break  # close without an answer
                    connection.sendall(ANSWER)
                    if action == "answer-close":
                        break


@pytest.fixture
def router(tmp_path: Path) -> Iterator[RouterApp]:
    yield RouterApp(tmp_path, timeout_seconds=10)


def forward(router: RouterApp, server: ScriptedVariant) -> tuple[int, bytes, str, int]:
    variant = Variant(name="AllTraffic", url=server.url, weight=1.0, config="c1")
    return router._forward(variant, b"x\n", {"Content-Type": "text/csv"})


def test_a_request_dropped_on_a_fresh_connection_is_not_sent_again(router: RouterApp) -> None:
    server = ScriptedVariant(["drop", "answer"])
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        forward(router, server)
    assert server.requests == 1, "the variant may have run it: sending it again runs it twice"


def test_a_kept_alive_connection_closed_while_idle_is_opened_again(router: RouterApp) -> None:
    server = ScriptedVariant(["answer", "answer-close", "answer"])
    assert forward(router, server)[:2] == (200, b"0.5\n")
    assert forward(router, server)[:2] == (200, b"0.5\n")  # then the variant closes it
    assert forward(router, server)[:2] == (200, b"0.5\n")  # the router opens a new one
    assert server.requests == 3
