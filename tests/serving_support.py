"""Model servers and local registries for the serving tests: real processes, real HTTP.

`ServerProcess` starts `python -m runtime.serving.server` (or the CLI) as a subprocess in a bare
environment (no AWS_* variables, an empty HOME), waits for the line naming its URL and stops it
with SIGTERM. `registry_with` puts a trained model and its serving code into a local workspace's
store and registers them as a package, as the pipeline's Register step does.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runtime.state import LocalState
from runtime.store import LocalS3
from tabular.files import extract_tar

ROOT = Path(__file__).resolve().parent.parent
LISTENING = "listening on "
GROUP = "tabular-xgboost"
BUCKET = "s3://tabular-xgboost-artifacts-123456789012/tabular-xgboost"


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no AWS_* variables, an empty HOME, the project importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    return env


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    url: str
    lines: list[str]

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str], timeout: float = 120) -> ServerProcess:
        process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith(LISTENING):
                url = line[len(LISTENING) :].split()[0]
                server = cls(process, url, lines)
                server.wait_ready(deadline - time.monotonic())
                return server
        process.kill()
        raise AssertionError("server did not start:\n" + "".join(lines))

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/ping")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{self.url}/ping never answered 200")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()

    def stop(self, timeout: float = 45) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def output(self) -> str:
        assert self.process.stdout is not None
        return "".join(self.lines) + self.process.stdout.read()


def server_argv(model_dir: Path) -> list[str]:
    return [sys.executable, "-m", "runtime.serving.server", "--model-dir", str(model_dir),
            "--port", "0"]  # fmt: skip


def extract(archive_dir: Path, destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_dir / "model.tar.gz") as tar:
        extract_tar(tar, destination)
    return destination


def _tar(folder: Path, archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if "__pycache__" not in path.parts:
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)


def code_folder(scripts: Path, destination: Path, extra: dict[str, str] | None = None) -> Path:
    """The serving code as the pipeline ships it: inference.py beside the job package."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy2(scripts / "inference.py", destination / "inference.py")
    shutil.copytree(scripts / "tabular", destination / "tabular",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name, text in (extra or {}).items():
        (destination / name).write_text(text, encoding="utf-8")
    return destination


def register(
    workspace: Path,
    archive_dir: Path,
    code: Path,
    sample: dict[str, Any] | None,
    *,
    program: str = "inference.py",
    status: str = "Approved",
    region: str = "us-east-1",
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Register a package in the workspace's local registry, its artifacts in its store."""
    store = LocalS3(workspace / "s3")
    state = LocalState(workspace / "state.db", region, store)
    state.ensure_group(GROUP)
    run = f"{BUCKET}/runs/test-{len(state.packages(GROUP)) + 1}"
    model_uri = f"{run}/model.tar.gz"
    code_uri = f"{run}/code/sourcedir.tar.gz"
    shutil.copy2(archive_dir / "model.tar.gz", _target(store, model_uri))
    _tar(code, _target(store, code_uri))
    request: dict[str, Any] = {
        "ModelPackageGroupName": GROUP,
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [{
                "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
                "ModelDataUrl": model_uri,
                "Environment": {"SAGEMAKER_PROGRAM": program,
                                "SAGEMAKER_SUBMIT_DIRECTORY": code_uri,
                                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"},
            }],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    }  # fmt: skip
    if baseline is not None:  # the DataQuality step's statistics.json and constraints.json
        quality = {}
        for kind, name in (("Statistics", "statistics.json"), ("Constraints", "constraints.json")):
            uri = f"{run}/DataQuality/{name}"
            shutil.copy2(baseline / name, _target(store, uri))
            quality[kind] = {"ContentType": "application/json", "S3Uri": uri}
        request["DriftCheckBaselines"] = {"ModelDataQuality": quality}
    if sample is not None:
        sample_uri = f"{run}/smoke_sample.json"
        store.put_bytes(sample_uri, json.dumps(sample).encode())
        request["CustomerMetadataProperties"] = {"SmokeSampleS3Uri": sample_uri}
    return state.register_package(request, f"test-{time.time_ns()}")


def _target(store: LocalS3, uri: str) -> Path:
    path = store.path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
