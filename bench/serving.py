"""Load run against the local model server: throughput, latency, errors, memory; batch per-row cost.

`python -m bench.serving [--workspace W] [--requests 5000] [--concurrency 8]` serves the latest
approved package of the workspace's local registry (a `run-local` fills an empty workspace first,
or one whose package holds other serving code than this checkout's scripts/) with
`python -m runtime.serving.server`, sends `--requests` requests of 1 row and as many of 100
rows from `--concurrency` keep-alive clients, and reports requests/s, p50/p99 latency, errors
(must be 0) and the server's RSS (arbiter and workers) before and after. The same rows scored
through batch transform's path (runtime.transform, the same handler) give the per-row cost to
compare with. The floor: the same load against the same gunicorn settings answering a fixed
body without a model, and the load generator's own CPU time per request. Figures go to
build/bench/serving.json.
"""

from __future__ import annotations

import argparse
import filecmp
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench" / "serving.json"
P99_TARGET_MS = 20.0


def _rss_bytes(pid: int) -> int:
    """RSS of a process and its children (gunicorn's arbiter and workers)."""
    total = 0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    for each in [pid, *map(int, children.split())]:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _floor_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A model server without a model: reads the body, answers one prediction."""
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/csv"), ("Content-Length", "4")])
    return [b"0.5\n"]


def _serve_floor() -> int:
    from runtime.serving.server import gunicorn_options, run_server

    options = gunicorn_options("127.0.0.1:0", int(os.environ.get("WORKERS", "2")), 60)
    return run_server(
        lambda: _floor_app, options, lambda url: print(f"listening on {url}", flush=True)
    )


def _start(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    return server, server.stdout.readline().split()[-1]


def _stale(code_dir: Path) -> list[str]:
    """The package's serving code files that differ from this checkout's scripts/."""
    scripts = ROOT / "scripts"
    return [
        path.relative_to(code_dir).as_posix()
        for path in sorted(code_dir.rglob("*.py"))
        if not (scripts / path.relative_to(code_dir)).is_file()
        or not filecmp.cmp(path, scripts / path.relative_to(code_dir), shallow=False)
    ]


def _load(url: str, bodies: list[bytes], requests: int, concurrency: int) -> dict[str, Any]:
    parts = urlsplit(url)
    per_client = requests // concurrency

    def client(index: int) -> tuple[list[float], int]:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        latencies, errors = [], 0
        for number in range(per_client):
            body = bodies[(index * per_client + number) % len(bodies)]
            started = time.perf_counter()
            connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
            response = connection.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            errors += response.status != 200
        connection.close()
        return latencies, errors

    started = time.perf_counter()
    cpu = time.process_time()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client, range(concurrency)))
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - cpu
    latencies = sorted(latency for found, _ in results for latency in found)
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[max(0, int(0.99 * len(latencies)) - 1)], 2),
        "errors": sum(errors for _, errors in results),
        "client_cpu_us_per_request": round(1e6 * client_cpu / len(latencies), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--workspace", type=Path, default=ROOT / "build" / "bench" / "serving-ws")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        return _serve_floor()
    load_start = _uptime()
    print(load_start, flush=True)
    os.environ["PIPELINE_LOCAL_WORKSPACE"] = str(args.workspace)
    from config import LOCAL_CONFIG, load_config
    from pipelines.local import runner_for
    from pipelines.local_endpoint.package import LocalPackageError, approved_package, stage
    from runtime.serving.batch import (
        AssembleWith,
        BatchStrategy,
        JoinSource,
        SplitType,
        TransformRequest,
        load_handler,
        run_batch_transform,
    )  # fmt: skip
    from runtime.serving.server import ENV_WORKERS

    cfg = load_config(LOCAL_CONFIG)
    runner = runner_for(cfg, args.workspace)
    try:
        package = approved_package(cfg, None, runner)
    except LocalPackageError:
        print(f"no approved package in {args.workspace}: running run-local first", flush=True)
        subprocess.run([sys.executable, "-m", "pipelines", "run-local"], cwd=ROOT, check=True)
        package = approved_package(cfg, None, runner)
    staged = stage(runner, package, args.workspace / "serve" / f"v{package.version}")
    code_dir = Path(staged.environment["SAGEMAKER_SUBMIT_DIRECTORY"])
    stale = _stale(code_dir)
    if stale:
        print(f"{package.label} serves other code than scripts/ ({', '.join(stale[:3])}): "
              "running run-local for a package of this checkout", flush=True)  # fmt: skip
        subprocess.run([sys.executable, "-m", "pipelines", "run-local"], cwd=ROOT, check=True)
        package = approved_package(cfg, None, runner)
        staged = stage(runner, package, args.workspace / "serve" / f"v{package.version}")
        code_dir = Path(staged.environment["SAGEMAKER_SUBMIT_DIRECTORY"])
    rows = [
        line.rsplit(",", 1)[0]
        for line in next(Path(args.workspace, "data").glob("*.csv")).read_text().splitlines()[1:]
    ][:10000]  # the built-in data without its target (the last column)
    env = {**os.environ, **staged.environment, ENV_WORKERS: "2", "PYTHONPATH": str(ROOT)}
    one = [(row + "\n").encode() for row in rows]
    hundred = ["".join(r + "\n" for r in rows[i : i + 100]).encode()
               for i in range(0, len(rows) - 99, 100)]  # fmt: skip
    server, url = _start(
        [sys.executable, "-m", "runtime.serving.server", "--model-dir", str(staged.model_dir),
         "--port", "0"], env,
    )  # fmt: skip
    try:
        _load(url, [rows[0].encode() + b"\n"], 16, 2)  # warm both workers
        rss_start = _rss_bytes(server.pid)
        single = _load(url, one, args.requests, args.concurrency)
        batch = _load(url, hundred, args.requests, args.concurrency)
        rss_end = _rss_bytes(server.pid)
    finally:
        server.terminate()
        server.wait(60)
    floor_server, url = _start(
        [sys.executable, "-m", "bench.serving", "--serve-floor"], {**env, "WORKERS": "2"}
    )
    try:
        _load(url, one[:1], 16, 2)
        floor = _load(url, one, args.requests, args.concurrency)
    finally:
        floor_server.terminate()
        floor_server.wait(60)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "input", "rows.csv")
        source.parent.mkdir()
        source.write_text("".join(r + "\n" for r in rows))
        handler = load_handler(
            code_dir,
            staged.environment["SAGEMAKER_PROGRAM"],
            staged.model_dir,
        )
        request = TransformRequest(
            [source], source.parent, Path(folder, "out"), handler, "text/csv", "text/csv",
            SplitType.LINE, BatchStrategy.MULTI_RECORD, 1024 * 1024, AssembleWith.LINE,
            JoinSource.NONE,
        )  # fmt: skip
        run_batch_transform(request)  # warm, as the endpoint's workers are
        started = time.perf_counter()
        run_batch_transform(request)
        transform_seconds = time.perf_counter() - started
    per_row = {
        "endpoint_1_row_us": round(1e6 * single["seconds"] / single["requests"], 1),
        "endpoint_100_rows_us": round(1e6 * batch["seconds"] / (100 * batch["requests"]), 1),
        "batch_transform_us": round(1e6 * transform_seconds / len(rows), 2),
    }
    results = {
        "package": package.label,
        "concurrency": args.concurrency,
        "one_row": single,
        "hundred_rows": batch,
        "floor_no_model_1_row": floor,
        "server_rss_mib": {"start": round(rss_start / 2**20, 1), "end": round(rss_end / 2**20, 1)},
        "per_row_cost": per_row,
        "target_p99_1_row_ms": P99_TARGET_MS,
        "target_met": single["p99_ms"] < P99_TARGET_MS and single["errors"] == batch["errors"] == 0,
        "uptime_start": load_start,
        "uptime_end": _uptime(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
