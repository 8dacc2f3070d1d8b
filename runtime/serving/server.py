"""The model server of a SageMaker inference container, on this machine.

SageMaker starts a framework container with ``serve``; its model server answers ``GET /ping``
and ``POST /invocations`` on port 8080 and runs the user's inference module in script mode,
the way batch transform does (:class:`runtime.serving.handler.Handler`: ``model_fn`` once
per worker, then ``input_fn`` -> ``predict_fn`` -> ``output_fn``, or ``transform_fn``, per request).
This module serves the same handler over HTTP with gunicorn (several worker processes, each with
its own copy of the model, as the XGBoost container runs gunicorn; a worker answers one
request per connection, see :func:`gunicorn_options`), honouring the container's environment:

- ``SAGEMAKER_PROGRAM``: the inference module (required);
- ``SAGEMAKER_SUBMIT_DIRECTORY``: where it is (a local folder; default ``<model dir>/code``);
- ``SAGEMAKER_MODEL_SERVER_WORKERS``: worker processes (default: one per CPU);
- ``SAGEMAKER_MODEL_SERVER_TIMEOUT``: seconds a worker may be silent before it is replaced
  (gunicorn's timeout, as the container sets it; default 60, SageMaker's per-request limit);
- ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``: the Accept of a request that sends none or ``*/*``.

The contract (SageMaker Developer Guide, "Use your own inference code with hosting services"):
``GET /ping`` answers 200 once the worker's model is loaded (a worker takes connections only
then); ``POST /invocations`` answers with the handler's body and the negotiated content type;
a body above the real-time payload limit (6 MB) is refused with 413; a request the inference
code refuses with an HTTP status (an exception carrying ``status_code``, as the inference
toolkit's errors do) gets that status, a body that is not valid UTF-8 for a text type gets 400,
and any other error in the inference code is the model's: 500. Error bodies are the message,
naming the function and the line of the inference code that raised it.

On SIGTERM the server stops taking connections, answers every request it accepted and
exits (gunicorn's graceful stop; SageMaker sends SIGKILL 30 s after SIGTERM, the grace
given here).

Like the rest of ``runtime``, this module knows the SageMaker contract only.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from runtime.serving.handler import Handler, ServingError, UserCodeError, load_handler
from tabular.contract import (
    ANY,
    DEFAULT_ACCEPT,
    DEFAULT_ACCEPT_ENV,
    SERVING_PROGRAM,
    SERVING_SUBMIT_DIRECTORY,
)

__all__ = [
    "InferenceApp",
    "ServerSettings",
    "ServingError",
    "accept_candidates",
    "main",
    "run_server",
]

ENV_PROGRAM = SERVING_PROGRAM
ENV_SUBMIT_DIRECTORY = SERVING_SUBMIT_DIRECTORY
ENV_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
ENV_TIMEOUT = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
ENV_OMP_THREADS = "OMP_NUM_THREADS"
CODE_SUBDIR = "code"
"""Where the container looks for the inference module without a submit directory."""
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""InvokeEndpoint's real-time payload limit (6 MB)."""
DEFAULT_TIMEOUT_SECONDS = 60
GRACE_SECONDS = 30
"""SageMaker stops a container with SIGTERM, then SIGKILL 30 s later."""
THREADS_PER_WORKER = 4
"""A router worker's threads."""
KEEPALIVE_SECONDS = 5
MODEL_THREADS = 2
"""A model server worker's threads: requests it runs at a time."""
DRAIN_FACTOR = 8
PING = "/ping"
INVOCATIONS = "/invocations"
TEXT = "text/plain; charset=utf-8"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ServingError(
            f"{name}={raw!r} is not a positive whole number; unset it or set e.g. 2."
        )
    return value


def _local_folder(value: str, name: str) -> Path:
    path = Path(value.removeprefix("file://"))
    if "://" in value and not value.startswith("file://"):
        raise ServingError(
            f"{name}={value!r}: the local server reads code from a folder on this machine; "
            "stage the code first (or point it at a local folder)."
        )
    return path


@dataclass(frozen=True)
class ServerSettings:
    """What the container's environment says about the model server."""

    model_dir: Path
    code_dir: Path
    program: str
    workers: int
    timeout_seconds: int
    default_accept: str
    max_payload_bytes: int = MAX_PAYLOAD_BYTES

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], model_dir: Path) -> ServerSettings:
        program = (environ.get(ENV_PROGRAM) or "").strip()
        if not program:
            raise ServingError(
                f"{ENV_PROGRAM} is not set: name the inference module (e.g. inference.py), "
                "as the model's container environment does."
            )
        submit = environ.get(ENV_SUBMIT_DIRECTORY)
        code_dir = (
            _local_folder(submit, ENV_SUBMIT_DIRECTORY) if submit else model_dir / CODE_SUBDIR
        )
        if not (code_dir / program).is_file():
            raise ServingError(
                f"{code_dir / program}: the inference module {program!r} ({ENV_PROGRAM}) is not "
                f"in {code_dir} ({ENV_SUBMIT_DIRECTORY}); package it with the model or point "
                f"{ENV_SUBMIT_DIRECTORY} at its folder."
            )
        if not Path(model_dir).is_dir():
            raise ServingError(f"{model_dir}: the model directory does not exist.")
        return cls(
            model_dir=Path(model_dir),
            code_dir=code_dir,
            program=program,
            workers=_positive_int(environ, ENV_WORKERS, os.cpu_count() or 1),
            timeout_seconds=_positive_int(environ, ENV_TIMEOUT, DEFAULT_TIMEOUT_SECONDS),
            default_accept=environ.get(DEFAULT_ACCEPT_ENV) or DEFAULT_ACCEPT,
        )


# --------------------------------------------------------------------------- HTTP


def accept_candidates(header: str | None, default: str) -> list[str]:
    """The media types of an Accept header, most preferred first (q=0 dropped, ``*/*`` and an
    absent header mean ``default``)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        quality = 1.0
        for parameter in fields[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, default if media == ANY else media))
    chosen = [media for _, _, media in sorted(ranked)]
    return list(dict.fromkeys(chosen)) or [default]


def error_status(error: UserCodeError) -> int:
    """The HTTP status of a failed request: the status the inference code's error carries (the
    inference toolkit's rule), 400 for a body that cannot be decoded, else 500."""
    code = getattr(error.error, "status_code", None)
    if isinstance(code, int) and 400 <= code < 600:
        return code
    if error.location is None and error.function.startswith("decoding"):
        return HTTPStatus.BAD_REQUEST
    return HTTPStatus.INTERNAL_SERVER_ERROR


def respond(
    start_response: Callable[..., Any], status: int, body: bytes, content_type: str = TEXT
) -> list[bytes]:
    phrase = HTTPStatus(status).phrase
    start_response(
        f"{status} {phrase}",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]


def read_body(environ: Mapping[str, Any], limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes.

    A body above the limit is read to its end (up to :data:`DRAIN_FACTOR` times the limit) and
    dropped, so the client gets the 413 instead of a connection reset while it still sends."""
    stream = environ["wsgi.input"]
    body: bytes = stream.read(limit + 1)
    if len(body) <= limit:
        return body
    drained = len(body)
    while drained < DRAIN_FACTOR * limit:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        drained += len(chunk)
    return None


def too_large(start_response: Callable[..., Any], limit: int) -> list[bytes]:
    message = (
        f"the request body is larger than the real-time payload limit of {limit} bytes; "
        "send fewer records per request (or use batch transform or an async endpoint)."
    )
    return respond(start_response, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message.encode())


class InferenceApp:
    """The WSGI application of one worker: the handler, loaded once, behind the contract."""

    def __init__(self, settings: ServerSettings, handler: Handler | None = None) -> None:
        self.settings = settings
        self.handler = handler or load_handler(
            settings.code_dir, settings.program, settings.model_dir
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == PING:
            if method not in ("GET", "HEAD"):
                return respond(start_response, HTTPStatus.METHOD_NOT_ALLOWED, b"use GET /ping")
            return respond(start_response, HTTPStatus.OK, b"")
        if path == INVOCATIONS:
            if method != "POST":
                return respond(
                    start_response, HTTPStatus.METHOD_NOT_ALLOWED, b"use POST /invocations"
                )
            return self.invoke(environ, start_response)
        return respond(
            start_response, HTTPStatus.NOT_FOUND, f"{path}: use {PING} or {INVOCATIONS}".encode()
        )

    def invoke(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = read_body(environ, self.settings.max_payload_bytes)
        if body is None:
            return too_large(start_response, self.settings.max_payload_bytes)
        content_type = environ.get("CONTENT_TYPE") or ""
        candidates = accept_candidates(environ.get("HTTP_ACCEPT"), self.settings.default_accept)
        for index, accept in enumerate(candidates):
            try:
                answer = self.handler(body, content_type, accept)
            except UserCodeError as error:
                status = error_status(error)
                if status == HTTPStatus.NOT_ACCEPTABLE and index + 1 < len(candidates):
                    continue  # the next type the client accepts
                return respond(start_response, status, str(error).encode())
            return respond(start_response, HTTPStatus.OK, answer, accept)
        raise AssertionError("accept_candidates returns at least one type")


# --------------------------------------------------------------------------- gunicorn


def gunicorn_options(
    bind: str,
    workers: int,
    timeout_seconds: int,
    log_level: str = "warning",
    *,
    keep_alive: bool = False,
) -> dict[str, Any]:
    """The gunicorn settings of a local model server, or of a router (``keep_alive=True``).

    A model server's worker answers one request per connection (no keep-alive) and runs
    :data:`MODEL_THREADS` of them at a time; the others wait their turn in order. A kept-alive
    connection stays with the worker that accepted it, and one worker accepted all 8 of the
    load run's connections (bench/serving.py) in half the runs while the other idled. Two
    threads, not four, take turns on the worker's interpreter lock: 1-row p99 lower in 4 of 5
    interleaved load runs. A router forwards (it waits on its variants): four threads and
    keep-alive.

    A worker takes every connection it is sent (gunicorn's ``worker_connections``, 1000): one
    the workers have not accepted when SIGTERM comes is reset, not answered. At 4 per worker,
    4 of 16 requests in flight were (tests/integration/test_serving.py); quiet machine, 1-row
    p99 at 4 and at 1000 back to back: 10.8 / 11.4 and 12.5 / 11.9 ms.
    """
    threads = THREADS_PER_WORKER if keep_alive else MODEL_THREADS
    return {
        "bind": [bind],
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": timeout_seconds,
        "graceful_timeout": GRACE_SECONDS,
        "keepalive": KEEPALIVE_SECONDS if keep_alive else 0,
        "preload_app": False,  # each worker loads its model after the fork (OpenMP is fork-unsafe)
        "accesslog": None,
        "errorlog": "-",
        "loglevel": log_level,
        "limit_request_line": 8190,
        "control_socket_disable": True,  # no socket under $HOME: servers here are not managed
    }


def run_server(
    factory: Callable[[], WSGIApp],
    options: Mapping[str, Any],
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Run gunicorn in this process until SIGTERM/SIGINT; return its exit status.

    ``factory`` builds the WSGI app in each worker. ``on_ready`` gets ``http://host:port`` once
    the socket listens (port 0 binds a free port). A worker that cannot load its app stops the
    server (gunicorn's "worker failed to boot", status 3).
    """
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)
            if on_ready is not None:

                def when_ready(server: Any) -> None:
                    host, port = server.LISTENERS[0].getsockname()[:2]
                    on_ready(f"http://{host}:{port}")

                self.cfg.set("when_ready", when_ready)

        def load(self) -> WSGIApp:
            return factory()

    arbiter = os.getpid()
    try:
        Application().run()
    except SystemExit as stop:
        if os.getpid() != arbiter:  # a worker leaving: its status is the arbiter's to read
            raise
        return stop.code if isinstance(stop.code, int) else 1
    return 0


def load_app(settings: ServerSettings) -> WSGIApp:
    """A worker's app; a model that cannot be loaded stops the server with its message (as
    gunicorn's AppImportError: the worker exits, the arbiter halts instead of respawning)."""
    from gunicorn.errors import AppImportError

    # One OpenMP thread per worker: the workers already use every core, and more threads than
    # cores make each request wait on the others' (SageMaker's serving toolkits default
    # OMP_NUM_THREADS to 1, e.g. sagemaker_mxnet_serving_container/serving.py). Set before the
    # model's libraries load (after the fork, so a setting of the user's stays).
    os.environ.setdefault(ENV_OMP_THREADS, "1")
    try:
        app = InferenceApp(settings)
    except ServingError as error:
        raise AppImportError(f"ERROR: {error}") from None
    # What the worker holds once its model is loaded (the libraries, the model) lives as long as
    # the worker: out of the collector's sight, a full collection no longer walks it (about
    # 140,000 objects; one such pass stalled a worker 100 ms under load).
    gc.collect()
    gc.freeze()
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runtime.serving.server --model-dir DIR --port P``: serve until SIGTERM.

    The environment carries the container's ``SAGEMAKER_*`` variables. Prints
    ``listening on http://host:port`` once the socket listens; exits 2 on a bad setting, 1 when
    the model cannot be loaded.
    """
    parser = argparse.ArgumentParser(prog="python -m runtime.serving.server")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0: a free port")
    args = parser.parse_args(argv)
    try:
        settings = ServerSettings.from_environ(os.environ, args.model_dir)
    except ServingError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    options = gunicorn_options(
        f"{args.host}:{args.port}", settings.workers, settings.timeout_seconds
    )
    status = run_server(
        lambda: load_app(settings),
        options,
        lambda url: print(f"listening on {url}", flush=True),
    )
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
