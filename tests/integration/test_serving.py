"""The local model server: a real gunicorn server in a subprocess, talked to over real HTTP.

Served twice: the pipeline's own model and inference.py (answers equal the serving handler's, the
one batch transform runs), and a small inference program that exercises the rest of the contract
(JSON, Accept negotiation, errors with a status, slow requests for the graceful stop, workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from serving_support import ROOT, ServerProcess, bare_env, code_folder, extract, server_argv

from pipelines.deploy.smoke import SmokeSample
from runtime.serving.handler import load_handler
from runtime.serving.server import MAX_PAYLOAD_BYTES, accept_candidates

PROGRAM = textwrap.dedent(
    '''
    """A small inference program: echo records, JSON or CSV, errors that carry a status."""
    import gc
    import json
    import os
    import time
    from pathlib import Path


    class RequestError(ValueError):
        def __init__(self, message, status_code=400):
            super().__init__(message)
            self.status_code = status_code


    def model_fn(model_dir):
        return float(Path(model_dir, "offset.txt").read_text())


    def input_fn(body, content_type):
        if content_type == "application/json":
            return json.loads(body)["instances"]
        if content_type != "text/csv":
            raise RequestError(f"content type {content_type!r} is not supported", 415)
        rows = []
        for number, line in enumerate(body.splitlines(), start=1):
            if line.startswith("sleep:"):
                time.sleep(float(line[6:]))
                line = "0"
            if line == "pid":
                line = str(os.getpid())
            if line == "omp":
                line = os.environ.get("OMP_NUM_THREADS", "-1")
            if line == "frozen":
                line = str(gc.get_freeze_count())
            try:
                rows.append(float(line))
            except ValueError:
                raise RequestError(f"request line {number}: {line!r} is not a number") from None
        return rows


    def predict_fn(rows, offset):
        if any(r < 0 for r in rows):
            raise ZeroDivisionError("the model cannot score a negative value")
        return [r + offset for r in rows]


    def output_fn(prediction, accept):
        if accept == "application/json":
            return json.dumps({"predictions": prediction})
        if accept == "text/csv":
            return "".join(f"{p:g}\\n" for p in prediction)
        raise RequestError(f"accept {accept!r} is not supported", 406)
    '''
)


@pytest.fixture(scope="module")
def program_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("echo-model")
    (model / "offset.txt").write_text("0.5")
    (model / "code").mkdir()
    (model / "code" / "echo.py").write_text(PROGRAM)
    return model


@pytest.fixture()
def serve(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(model_dir: Path, **env: str) -> ServerProcess:
        server = ServerProcess.start(server_argv(model_dir), bare_env(tmp_path / "home", **env))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def pipeline_model(
    job_model_archive: Callable[[str], Path],
    job_scripts_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    model = extract(job_model_archive("binary"), tmp_path_factory.mktemp("pipeline-model"))
    code_folder(job_scripts_dir, model / "code")
    return model


def echo_env(**extra: str) -> dict[str, str]:
    return {"SAGEMAKER_PROGRAM": "echo.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "2", **extra}


def test_the_pipeline_model_answers_as_batch_transform_does(
    serve: Callable[..., ServerProcess], pipeline_model: Path, job_served: Any
) -> None:
    sample = SmokeSample.parse(job_served.sample, "smoke sample")
    rows = sample.body(5).decode()
    server = serve(
        pipeline_model,
        SAGEMAKER_PROGRAM="inference.py",
        SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv",
    )
    status, body, headers = server.request(
        "POST", "/invocations", rows.encode(), {"Content-Type": "text/csv"}
    )
    handler = load_handler(pipeline_model / "code", "inference.py", pipeline_model)
    assert (status, headers["Content-Type"]) == (200, "text/csv")
    assert body == handler(rows.encode(), "text/csv", "text/csv")
    assert [float(v) for v in body.split()] == pytest.approx(sample.expected(5), rel=1e-6)

    # A record the model cannot read: the answer names its line; the server keeps serving.
    fields = sample.records[0].split(",")
    fields[1] = "not-a-number"  # x2, a numeric feature
    bad = rows + ",".join(fields) + "\n"
    status, body, _ = server.request(
        "POST", "/invocations", bad.encode(), {"Content-Type": "text/csv"}
    )
    assert status == 400 and b"line 6" in body and b"not-a-number" in body
    assert server.request("GET", "/ping")[0] == 200


def test_the_contract_ping_invocations_accept_and_errors(
    serve: Callable[..., ServerProcess], program_model: Path
) -> None:
    server = serve(program_model, **echo_env(SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv"))
    assert server.request("GET", "/ping")[:2] == (200, b"")
    csv = {"Content-Type": "text/csv"}
    # No Accept and */*: the container's default accept.
    for headers in (csv, {**csv, "Accept": "*/*"}):
        status, body, answer = server.request("POST", "/invocations", b"1\n2\n", headers)
        assert (status, body, answer["Content-Type"]) == (200, b"1.5\n2.5\n", "text/csv")
    # JSON in, the first acceptable type out (negotiated past one the code refuses).
    status, body, answer = server.request(
        "POST", "/invocations", json.dumps({"instances": [1, 2]}).encode(),
        {"Content-Type": "application/json", "Accept": "image/png, application/json;q=0.9"},
    )  # fmt: skip
    assert (status, json.loads(body), answer["Content-Type"]) == (
        200, {"predictions": [1.5, 2.5]}, "application/json",
    )  # fmt: skip
    assert server.request("POST", "/invocations", b"1\n", {**csv, "Accept": "image/png"})[0] == 406
    status, body, _ = server.request("POST", "/invocations", b"1\nx\n", csv)
    assert status == 400 and b"request line 2" in body
    status, body, _ = server.request("POST", "/invocations", b"1", {"Content-Type": "text/plain"})
    assert status == 415
    status, body, _ = server.request("POST", "/invocations", b"\xff\xfe", csv)
    assert status == 400 and b"decoding" in body
    # An error of the model itself: 500, naming the function and the line of the code.
    status, body, _ = server.request("POST", "/invocations", b"-1\n", csv)
    assert status == 500 and b"predict_fn raised ZeroDivisionError" in body and b"echo.py:" in body
    # Above the real-time payload limit: 413, the body never reaches the code.
    big = b"1\n" * (MAX_PAYLOAD_BYTES // 2 + 1)
    assert server.request("POST", "/invocations", big, csv)[0] == 413
    assert server.request("POST", "/invocations", b"1\n" * 1000, csv)[0] == 200
    assert server.request("GET", "/invocations")[0] == 405
    assert server.request("GET", "/nothing")[0] == 404


def test_concurrent_requests_spread_over_the_configured_workers(
    serve: Callable[..., ServerProcess], program_model: Path
) -> None:
    server = serve(program_model, **echo_env(SAGEMAKER_MODEL_SERVER_WORKERS="3"))
    csv = {"Content-Type": "text/csv", "Accept": "text/csv"}

    def call(number: int) -> tuple[int, bytes]:
        status, body, _ = server.request(
            "POST", "/invocations", f"{number}\nsleep:0.02\n".encode(), csv
        )
        return status, body

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(200)))
    assert answers == [(200, f"{n + 0.5:g}\n0.5\n".encode()) for n in range(200)]
    with ThreadPoolExecutor(8) as pool:
        pids = set(
            pool.map(
                lambda _: server.request("POST", "/invocations", b"pid\nsleep:0.05\n", csv)[
                    1
                ].split()[0],
                range(48),
            )
        )
    assert len(pids) == 3


def test_workers_run_one_openmp_thread_unless_told_otherwise(
    serve: Callable[..., ServerProcess], program_model: Path
) -> None:
    csv = {"Content-Type": "text/csv", "Accept": "text/csv"}
    for env, threads in (({}, "1.5\n"), ({"OMP_NUM_THREADS": "3"}, "3.5\n")):
        server = serve(program_model, **echo_env(**env))
        assert server.request("POST", "/invocations", b"omp\n", csv)[:2] == (200, threads.encode())


def test_workers_freeze_what_they_hold_once_the_model_is_loaded(
    serve: Callable[..., ServerProcess], program_model: Path
) -> None:
    server = serve(program_model, **echo_env())
    csv = {"Content-Type": "text/csv", "Accept": "text/csv"}
    status, body, _ = server.request("POST", "/invocations", b"frozen\n", csv)
    assert status == 200
    assert float(body) > 1000.5  # the libraries and the model: out of the collector's passes


def test_sigterm_answers_every_accepted_request_then_stops(
    serve: Callable[..., ServerProcess], program_model: Path
) -> None:
    server = serve(program_model, **echo_env())
    csv = {"Content-Type": "text/csv", "Accept": "text/csv"}
    sent = 16  # more than the workers run at once: some wait for a thread when SIGTERM comes
    with ThreadPoolExecutor(sent) as pool:
        futures = [
            pool.submit(server.request, "POST", "/invocations", b"sleep:1.5\n", csv)
            for _ in range(sent)
        ]
        time.sleep(0.5)  # every request sent (and accepted by the server's socket)
        server.process.send_signal(15)
        answers = [f.result()[:2] for f in futures]
    assert answers == [(200, b"0.5\n")] * sent
    assert server.process.wait(45) == 0
    with pytest.raises(OSError):
        server.request("GET", "/ping")


def test_bad_container_settings_are_refused_with_the_variable_and_the_fix(
    tmp_path: Path, program_model: Path
) -> None:
    for env, says in (
        ({"SAGEMAKER_PROGRAM": "echo.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "two"},
         "SAGEMAKER_MODEL_SERVER_WORKERS='two' is not a positive whole number"),
        ({"SAGEMAKER_PROGRAM": "missing.py"}, "'missing.py' (SAGEMAKER_PROGRAM) is not in"),
        ({}, "SAGEMAKER_PROGRAM is not set"),
    ):  # fmt: skip
        done = subprocess.run(
            server_argv(program_model), env=bare_env(tmp_path / "home", **env), cwd=ROOT,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr


def test_a_model_that_cannot_load_stops_the_server_with_its_error(
    tmp_path: Path, program_model: Path
) -> None:
    broken = tmp_path / "model"
    (broken / "code").mkdir(parents=True)
    (broken / "code" / "echo.py").write_text(PROGRAM)  # no offset.txt: model_fn fails
    done = subprocess.run(
        server_argv(broken), env=bare_env(tmp_path / "home", **echo_env()), cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "loading the model from" in done.stderr and "offset.txt" in done.stderr


def test_accept_candidates_rank_by_quality_and_map_any_to_the_default() -> None:
    assert accept_candidates(None, "text/csv") == ["text/csv"]
    assert accept_candidates("*/*", "text/csv") == ["text/csv"]
    assert accept_candidates("application/json;q=0.2, text/csv", "x/y") == [
        "text/csv", "application/json",
    ]  # fmt: skip
    assert accept_candidates("text/csv;q=0, application/json", "x/y") == ["application/json"]


def test_serve_cli_without_an_approved_package_says_how_to_get_one(tmp_path: Path) -> None:
    env = bare_env(tmp_path / "home", PIPELINE_LOCAL_WORKSPACE=str(tmp_path / "ws"))
    argv = [sys.executable, "-m", "pipelines", "serve", "--local", "--port", "0"]
    if os.geteuid() == 0 and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        argv = ["unshare", "-n", *argv]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no Approved package" in done.stderr and "make run-local" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [*argv[:-1], "99999"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "'99999' is not a port" in done.stderr
