"""The front of a local endpoint: production variants behind one URL, weighted as SageMaker does.

A SageMaker endpoint routes each InvokeEndpoint to one of its production variants in proportion
to their weights (or to the variant a request names with ``X-Amzn-SageMaker-Target-Variant``),
publishes per-variant metrics (Invocations, Invocation4XXErrors, Invocation5XXErrors,
ModelLatency in microseconds) and, with data capture on, writes a sample of requests and
responses to S3 as JSON Lines. This router does the same on this machine, in front of model
servers (:mod:`runtime.serving.server`):

- the endpoint's state is a JSON file (:data:`ENDPOINT_FILE`) that the deploying process
  rewrites atomically; every worker rereads it when it changes, so a weight shift takes effect
  on the next request;
- every request appends one metric record to :data:`METRICS_FILE` (one ``O_APPEND`` write per
  line, whole across workers), read back by whoever evaluates alarms;
- captured requests follow SageMaker's capture format and layout:
  ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<id>.jsonl``, one object per request with
  ``captureData.endpointInput/endpointOutput`` (``observedContentType``, ``mode``, ``data``,
  ``encoding``) and ``eventMetadata`` (``eventId``, ``inferenceTime``).

A request whose variant refuses the connection (a variant that just stopped) goes to another
variant: it never reached a model, so it is not lost.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runtime.serving.server import (
    DEFAULT_TIMEOUT_SECONDS,
    INVOCATIONS,
    MAX_PAYLOAD_BYTES,
    PING,
    gunicorn_options,
    read_body,
    respond,
    run_server,
    too_large,
)
from tabular.files import write_atomic

ENDPOINT_FILE = "endpoint.json"
METRICS_FILE = "metrics.jsonl"
VARIANT_HEADER = "X-Amzn-Invoked-Production-Variant"
TARGET_VARIANT = "HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT"
CAPTURE_VERSION = "0"
TEXT_ENCODINGS = {"text/csv": "CSV", "application/json": "JSON", "application/jsonlines": "JSON"}


@dataclass(frozen=True)
class Variant:
    """A production variant: its model server and its share of traffic."""

    name: str
    url: str
    weight: float
    version: int = 0
    pid: int | None = None
    config: str = ""  # the endpoint config (deployment) it belongs to


@dataclass(frozen=True)
class Capture:
    """DataCaptureConfig: where, how much, which modes."""

    destination: str  # a local folder
    sampling_percent: int
    modes: tuple[str, ...] = ("Input", "Output")


@dataclass(frozen=True)
class EndpointState:
    """What the router routes by; the deploying process owns and rewrites it."""

    name: str
    variants: tuple[Variant, ...] = ()
    capture: Capture | None = None
    status: str = "InService"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EndpointState:
        raw = json.loads(text)
        capture = raw.get("capture")
        return cls(
            name=raw["name"],
            variants=tuple(Variant(**v) for v in raw.get("variants", ())),
            capture=Capture(
                capture["destination"], capture["sampling_percent"], tuple(capture["modes"])
            )
            if capture
            else None,
            status=raw.get("status", "InService"),
            extra=raw.get("extra") or {},
        )

    def with_weights(self, weights: dict[str, float], status: str | None = None) -> EndpointState:
        variants = tuple(
            Variant(**{**asdict(v), "weight": weights.get(v.name, v.weight)}) for v in self.variants
        )
        return EndpointState(
            self.name, variants, self.capture, status or self.status, dict(self.extra)
        )


def read_state(folder: Path) -> EndpointState:
    return EndpointState.from_json((folder / ENDPOINT_FILE).read_text(encoding="utf-8"))


def write_state(folder: Path, state: EndpointState) -> None:
    """Replace the endpoint's state in one rename: a router never reads half of it."""
    write_atomic(folder / ENDPOINT_FILE, state.to_json())


@dataclass(frozen=True)
class Metric:
    """One invocation as the router saw it."""

    time: float
    variant: str  # the variant's endpoint config (its fleet)
    status: int
    model_latency_us: int


def read_metrics(folder: Path, since: float = 0.0) -> list[Metric]:
    """The metric records at or after ``since`` (a torn last line is skipped)."""
    path = folder / METRICS_FILE
    if not path.is_file():
        return []
    found = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record["t"] >= since:
                found.append(Metric(record["t"], record["v"], record["s"], record["l"]))
    return found


def _encoding(content_type: str) -> str:
    return TEXT_ENCODINGS.get(content_type.split(";")[0].strip().lower(), "BASE64")


def _capture_field(content_type: str, mode: str, data: bytes) -> dict[str, str]:
    encoding = _encoding(content_type)
    text = (
        base64.b64encode(data).decode("ascii")
        if encoding == "BASE64"
        else data.decode("utf-8", errors="replace")
    )
    return {"observedContentType": content_type, "mode": mode, "data": text, "encoding": encoding}


def capture_record(
    request: bytes, content_type: str, response: bytes, accept: str, modes: Sequence[str], at: float
) -> dict[str, Any]:
    """One request and its response in SageMaker's data-capture format."""
    data: dict[str, Any] = {}
    if "Input" in modes:
        data["endpointInput"] = _capture_field(content_type, "INPUT", request)
    if "Output" in modes:
        data["endpointOutput"] = _capture_field(accept, "OUTPUT", response)
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "captureData": data,
        "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": stamp},
        "eventVersion": CAPTURE_VERSION,
    }


def capture_path(capture: Capture, endpoint: str, variant: str, at: float, worker: str) -> Path:
    """``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``."""
    hour = datetime.fromtimestamp(at, UTC).strftime("%Y/%m/%d/%H")
    return Path(capture.destination, endpoint, variant, hour, f"{worker}.jsonl")


class _Connections(threading.local):
    """One keep-alive connection per variant per worker thread."""

    def __init__(self) -> None:
        self.pool: dict[str, http.client.HTTPConnection] = {}


class RouterApp:
    """The WSGI application of one router worker."""

    def __init__(self, folder: Path, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.folder = Path(folder)
        self.timeout = timeout_seconds
        self._state: EndpointState | None = None
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._connections = _Connections()
        self._worker = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        self._metrics = os.open(self.folder / METRICS_FILE, flags, 0o644)

    def state(self) -> EndpointState:
        path = self.folder / ENDPOINT_FILE
        info = path.stat()
        stamp = (info.st_mtime_ns, info.st_ino)
        with self._lock:
            if stamp != self._stamp or self._state is None:
                self._state, self._stamp = read_state(self.folder), stamp
            return self._state

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == PING:
            serving = [v for v in self.state().variants if v.weight > 0]
            health = HTTPStatus.OK if serving else HTTPStatus.SERVICE_UNAVAILABLE
            return respond(start_response, health, b"")
        if path != INVOCATIONS or environ.get("REQUEST_METHOD") != "POST":
            return respond(start_response, HTTPStatus.NOT_FOUND, b"use POST /invocations")
        body = read_body(environ, MAX_PAYLOAD_BYTES)
        if body is None:
            return too_large(start_response, MAX_PAYLOAD_BYTES)
        headers = {"Content-Type": environ.get("CONTENT_TYPE") or ""}
        if environ.get("HTTP_ACCEPT"):
            headers["Accept"] = environ["HTTP_ACCEPT"]
        state = self.state()
        tried: set[str] = set()
        while True:
            variant = self._choose(state, environ.get(TARGET_VARIANT), tried)
            if variant is None:
                message = f"endpoint {state.name} has no variant to serve the request"
                return respond(start_response, HTTPStatus.SERVICE_UNAVAILABLE, message.encode())
            try:
                status, answer, content_type, latency = self._forward(variant, body, headers)
            except ConnectionRefusedError:  # the variant stopped before the request reached it
                tried.add(variant.config)
                state = self.state()
                continue
            break
        now = time.time()
        self._record(now, variant.config, status, latency)
        if status == HTTPStatus.OK and state.capture is not None:
            self._capture(state, variant.name, body, headers["Content-Type"], answer,
                          content_type, now)  # fmt: skip
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", content_type), ("Content-Length", str(len(answer))),
             (VARIANT_HEADER, variant.name)],
        )  # fmt: skip
        return [answer]

    def _choose(self, state: EndpointState, target: str | None, tried: set[str]) -> Variant | None:
        if target:
            named = [v for v in state.variants if v.name == target and v.config not in tried]
            return (
                random.choices(named, weights=[v.weight or 1 for v in named])[0] if named else None
            )
        live = [v for v in state.variants if v.weight > 0 and v.config not in tried]
        if not live:
            return None
        return random.choices(live, weights=[v.weight for v in live])[0]

    def _forward(
        self, variant: Variant, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, str, int]:
        pool = self._connections.pool
        while True:
            connection = pool.get(variant.url)
            # An open socket kept alive from an earlier answer (a server that closes after each
            # answer leaves none: http.client then connects afresh).
            reused = connection is not None and connection.sock is not None
            if connection is None:
                parts = urlsplit(variant.url)
                connection = http.client.HTTPConnection(
                    parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout
                )
                pool[variant.url] = connection
            started = time.perf_counter()
            try:
                connection.request("POST", INVOCATIONS, body, headers)
                response = connection.getresponse()
                answer = response.read()
            except ConnectionRefusedError:
                pool.pop(variant.url, None).close()  # type: ignore[union-attr]
                raise
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                pool.pop(variant.url, None).close()  # type: ignore[union-attr]
                if not reused:  # a fresh connection: the variant may have run the request
                    raise
                continue  # a kept-alive connection the variant closed while idle: again, fresh
            latency = int((time.perf_counter() - started) * 1e6)
            content_type = response.getheader("Content-Type") or "application/octet-stream"
            return response.status, answer, content_type, latency

    def _record(self, at: float, variant: str, status: int, latency: int) -> None:
        line = json.dumps({"t": at, "v": variant, "s": status, "l": latency}) + "\n"
        os.write(self._metrics, line.encode())

    def _capture(
        self,
        state: EndpointState,
        variant: str,
        body: bytes,
        content_type: str,
        answer: bytes,
        accept: str,
        at: float,
    ) -> None:
        capture = state.capture
        assert capture is not None
        if random.uniform(0, 100) >= capture.sampling_percent:
            return
        record = capture_record(body, content_type, answer, accept, capture.modes, at)
        path = capture_path(capture, state.name, variant, at, self._worker)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runtime.serving.router --folder DIR --port P [--workers N]``."""
    parser = argparse.ArgumentParser(prog="python -m runtime.serving.router")
    parser.add_argument("--folder", type=Path, required=True, help="the endpoint's state folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0: a free port")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.folder / ENDPOINT_FILE).is_file():
        print(
            f"ERROR: {args.folder / ENDPOINT_FILE}: no endpoint state to route by", file=sys.stderr
        )
        return 2
    options = gunicorn_options(
        f"{args.host}:{args.port}", args.workers, DEFAULT_TIMEOUT_SECONDS, keep_alive=True
    )
    status = run_server(
        lambda: RouterApp(args.folder),
        options,
        lambda url: print(f"listening on {url}", flush=True),
    )
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
