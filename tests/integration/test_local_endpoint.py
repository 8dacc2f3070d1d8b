"""`deploy --local`: a rehearsed rollout on real processes, with traffic flowing all along.

The packages are real (a trained model, the pipeline's serving code, its smoke sample) in a local
registry; the CLI runs as a user runs it (a subprocess, no AWS variables, an empty HOME); the
stage is configs/pipeline.yaml's prod (canary of 50 %, 600 s waits and bakes, the 5XX and p99
latency alarms), or a linear stage of four 25 % steps with the same alarms, with every wait scaled
by 0.01.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
from conftest import JOB_TARGET
from serving_support import ROOT, bare_env, code_folder, register

from config import PIPELINE_CONFIG
from pipelines.deploy.smoke import SmokeSample
from runtime.monitor.job import run_baseline_job
from tabular.names import BASELINE, BASELINE_FILE

FLAKY = textwrap.dedent(
    """
    \"\"\"A candidate that cannot score records whose second field is odd.\"\"\"
    import inference
    from inference import input_fn, model_fn, output_fn  # noqa: F401


    def predict_fn(data, model):
        if data.iloc[:, 1].astype(str).str.strip().str[-1:].isin(list("13579")).any():
            raise RuntimeError("the candidate cannot score this record")
        return inference.predict_fn(data, model)
    """
)


# The prod stage as configured, its p99 latency threshold raised from 0.5 s to 30 s: this machine
# is shared, and a loaded machine's latency is not what these tests are about (the 5XX alarm is).
# The linear stage moves a fleet of four instances 25 % at a time, behind the same alarms.
ALARMS = """\
      alarms:
        - {name: errors-5xx, metric: Invocation5XXErrors, statistic: Sum, period_seconds: 60,
           evaluation_periods: 1, threshold: 0, comparison: GreaterThanThreshold}
        - {name: latency-p99, metric: ModelLatency, statistic: p99, period_seconds: 60,
           evaluation_periods: 3, datapoints_to_alarm: 2, threshold: 30000000,
           comparison: GreaterThanThreshold}
"""
STAGE_CONFIG = f"""\
extends: {{pipeline}}
deploy:
  stages:
    prod:
{ALARMS}
    linear:
      endpoint_name: tabular-xgboost-linear
      instance_count: 4
      rollout: {{mode: linear, size: 25, wait_seconds: 600, bake_seconds: 600}}
{ALARMS}"""
LINEAR_STEPS = (25, 50, 75, 100)


def cli(
    workspace: Path, home: Path, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = bare_env(home, PIPELINE_LOCAL_WORKSPACE=str(workspace))
    config = str(workspace.parent / "stage.yaml")
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args, "--config", config], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


class Traffic(threading.Thread):
    """Requests one after another until stopped; every answer counted with its variant."""

    def __init__(self, url: str, rows: list[str]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.parts = urlsplit(url)
        self.rows = rows
        self.sent = 0
        self.answers: Counter[tuple[str, int]] = Counter()
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            row = self.rows[self.sent % len(self.rows)]
            self.sent += 1
            connection = http.client.HTTPConnection(
                self.parts.hostname, self.parts.port, timeout=60
            )
            try:
                connection.request("POST", "/invocations", (row + "\n").encode(),
                                   {"Content-Type": "text/csv"})  # fmt: skip
                response = connection.getresponse()
                response.read()
                variant = response.getheader("X-Amzn-Invoked-Production-Variant") or "none"
                self.answers[(variant, response.status)] += 1
            except OSError as error:
                self.failures.append(repr(error))
            finally:
                connection.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(120)


def first_deploy(workspace: Path, home: Path, stage: str, rows: list[str]) -> Traffic:
    """Deploy v1 to ``stage``'s local endpoint; return traffic flowing to its router."""
    done = cli(workspace, home, "deploy", "--local", "--stage", stage, "--version", "1")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "smoke test passed" in done.stdout
    endpoint = f"endpoints/tabular-xgboost-{stage}/router.json"
    traffic = Traffic(json.loads((workspace / endpoint).read_text())["url"], rows)
    traffic.start()
    return traffic


def only_successes(url: str, rows: list[str]) -> None:
    """Two seconds of traffic, every request answered with 200."""
    after = Traffic(url, rows)
    after.start()
    threading.Event().wait(2)
    after.stop()
    assert after.failures == [] and after.sent > 0
    assert {s for (_, s) in after.answers} == {200}


@pytest.fixture(scope="module")
def workspace(
    job_model_archive: Callable[[str], Path],
    job_scripts_dir: Path,
    job_served: Any,
    job_prepared: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    root = tmp_path_factory.mktemp("local-endpoint")
    (root / "stage.yaml").write_text(STAGE_CONFIG.replace("{pipeline}", str(PIPELINE_CONFIG)))
    archive = job_model_archive("binary")
    # The DataQuality step's baseline of the train split, its target named as the config names it.
    train = pd.read_csv(job_prepared("binary") / BASELINE / BASELINE_FILE)
    train.rename(columns={JOB_TARGET["binary"]: "label"}).to_csv(root / "train.csv", index=False)
    run_baseline_job(root / "train.csv", True, root / "baseline")
    healthy = code_folder(job_scripts_dir, root / "code-healthy")
    flaky = code_folder(job_scripts_dir, root / "code-flaky", {"flaky.py": FLAKY})
    register(root / "ws", archive, healthy, job_served.sample)  # v1
    register(root / "ws", archive, healthy, job_served.sample, baseline=root / "baseline")  # v2
    register(root / "ws", archive, flaky, job_served.sample, program="flaky.py")  # v3
    register(root / "ws", archive, healthy, job_served.sample, status="Rejected")  # v4
    return root / "ws"


def test_a_rollout_goes_to_100_percent_and_a_failing_canary_rolls_back(
    workspace: Path, tmp_path: Path, job_served: Any
) -> None:
    home = tmp_path / "home"
    rows = list(SmokeSample.parse(job_served.sample, "sample").records)
    deploy = ("deploy", "--local", "--stage", "prod", "--time-factor", "0.01")
    try:
        traffic = first_deploy(workspace, home, "prod", rows)

        done = cli(workspace, home, *deploy, "--version", "2")
        assert done.returncode == 0, done.stderr + done.stdout
        assert "step 1: 50% of traffic" in done.stdout and "step 2: 100% of traffic" in done.stdout
        status = cli(workspace, home, "status", "--local", "--stage", "prod").stdout
        assert "v2, 100% of traffic, running" in status and "v1," not in status

        done = cli(workspace, home, *deploy, "--version", "3")
        traffic.stop()
        assert done.returncode == 1, done.stdout
        assert "alarm errors-5xx went to ALARM" in done.stderr and "rolled back" in done.stderr
        assert "Traceback" not in done.stderr
        status = cli(workspace, home, "status", "--local", "--stage", "prod").stdout
        assert "v2, 100% of traffic, running" in status and "v3," not in status
        assert "alarm errors-5xx: ALARM" in status
        assert "update v3 by" in status and "RolledBack (alarm errors-5xx)" in status

        # Every request sent during the rollouts was answered by a variant.
        assert traffic.failures == []
        assert sum(traffic.answers.values()) == traffic.sent > 0
        by_status = Counter(status for (_, status) in traffic.answers.elements())
        assert by_status[500] > 0  # the canary took traffic and failed on part of it
        assert set(by_status) <= {200, 500}
        assert {variant for (variant, _) in traffic.answers} == {"AllTraffic"}

        # The old variant serves everything again: no more errors.
        only_successes(traffic.url, rows)

        # Data capture, in SageMaker's format, under the stage's destination in the store.
        captured = sorted((workspace / "s3").rglob("*.jsonl"))
        assert captured, "prod captures data"
        record = json.loads(captured[0].read_text().splitlines()[0])
        assert record["captureData"]["endpointInput"]["encoding"] == "CSV"
        assert record["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
        assert {"eventId", "inferenceTime"} <= record["eventMetadata"].keys()
        assert "/tabular-xgboost-prod/AllTraffic/" in captured[0].as_posix()

        # The monitoring schedule's check: captured inputs against v2's baseline.
        done = cli(workspace, home, "monitor", "--local", "--stage", "prod")
        assert done.returncode in (0, 1), done.stderr
        assert "captured record(s)" in done.stdout
        report = json.loads(Path(done.stdout.strip().rsplit("(", 1)[1].rstrip(")")).read_text())
        assert (done.returncode == 1) == bool(report["violations"])
        assert (
            "monitoring, last run"
            in cli(workspace, home, "status", "--local", "--stage", "prod").stdout
        )
    finally:
        done = cli(workspace, home, "undeploy", "--local", "--stage", "prod")
    assert done.returncode == 0 and "removed" in done.stdout
    assert not (workspace / "endpoints/tabular-xgboost-prod").exists()


def test_a_linear_rollout_takes_every_step_and_a_failing_candidate_rolls_back_mid_way(
    workspace: Path, tmp_path: Path, job_served: Any
) -> None:
    home = tmp_path / "home"
    rows = list(SmokeSample.parse(job_served.sample, "sample").records)
    deploy = ("deploy", "--local", "--stage", "linear", "--time-factor", "0.01")
    try:
        traffic = first_deploy(workspace, home, "linear", rows)

        done = cli(workspace, home, *deploy, "--version", "2")
        assert done.returncode == 0, done.stderr + done.stdout
        steps = [f"step {n}: {p}% of traffic" for n, p in enumerate(LINEAR_STEPS, 1)]
        said = [done.stdout.find(step) for step in steps]
        assert -1 not in said and said == sorted(said), done.stdout  # every step, in order
        assert "\n  final bake" in done.stdout and "serves 100% of traffic" in done.stdout
        status = cli(workspace, home, "status", "--local", "--stage", "linear").stdout
        assert "v2, 100% of traffic, running" in status and "v1," not in status
        healthy = Counter(traffic.answers)

        done = cli(workspace, home, *deploy, "--version", "3")
        traffic.stop()
        assert done.returncode == 1, done.stdout
        assert "step 1: 25% of traffic" in done.stdout
        assert f"step {len(LINEAR_STEPS)}: 100% of traffic" not in done.stdout  # tripped mid-way
        assert "\n  final bake" not in done.stdout  # (the plan printed first names it too)
        assert "alarm errors-5xx went to ALARM" in done.stderr and "rolled back" in done.stderr
        assert "Traceback" not in done.stderr
        status = cli(workspace, home, "status", "--local", "--stage", "linear").stdout
        assert "v2, 100% of traffic, running" in status and "v3," not in status
        assert "RolledBack (alarm errors-5xx)" in status

        # Every request sent during both rollouts was answered by a variant: the healthy one
        # without an error, the failing one with a 500 on part of its share.
        assert traffic.failures == []
        assert sum(traffic.answers.values()) == traffic.sent > 0
        assert sum(healthy.values()) > 0 and {s for (_, s) in healthy} == {200}
        failing = traffic.answers - healthy
        assert failing[("AllTraffic", 500)] > 0
        assert set(traffic.answers) <= {("AllTraffic", 200), ("AllTraffic", 500)}
        only_successes(traffic.url, rows)
    finally:
        done = cli(workspace, home, "undeploy", "--local", "--stage", "linear")
    assert done.returncode == 0 and "removed" in done.stdout


def test_bad_local_deploys_are_usage_errors(workspace: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args, says in (
        (("--version", "4"), "v4 is Rejected, not Approved"),
        (("--version", "9"), "--version 9: the local registry has no such version"),
    ):
        done = cli(workspace, home, "deploy", "--local", "--stage", "prod", *args)
        assert done.returncode == 2, done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr
    done = cli(workspace, home, "deploy", "--local", "--stage", "nope")
    assert done.returncode == 2 and "nope" in done.stderr and "--stage" in done.stderr
    done = cli(workspace, home, "deploy", "--local", "--stage", "prod", "--time-factor", "5")
    assert done.returncode == 2 and "is not a factor in (0, 1]" in done.stderr
    done = cli(workspace, home, "status", "--local", "--stage", "prod")
    assert done.returncode == 0 and "is not deployed" in done.stdout
