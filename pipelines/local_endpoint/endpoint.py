"""A local endpoint: a router and its production variants as processes, and the rollout on it.

`deploy --local` carries out the stage's rollout plan (the plan and alarms `deploy` sends to
SageMaker, pipelines/deploy/plan.py) on the local router: the new package starts as a second
fleet, traffic moves to it step by step (all at once, canary or linear), the stage's alarms are
evaluated on the router's metrics of the new fleet only during every bake, and an alarm in ALARM
sends all traffic back to the old fleet and stops the new one (automatic rollback). Waits and
alarm periods are multiplied by a factor (`--time-factor`) to rehearse a rollout in seconds.

Everything lives in `<workspace>/endpoints/<endpoint name>/`: the router's state (endpoint.json),
its metrics, the alarm states, the deployment history and the servers' logs.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config import Config
from config.deploy import StageSection
from pipelines.deploy.deployment import DeployFailed
from pipelines.deploy.plan import (
    ALARM,
    INSUFFICIENT_DATA,
    AlarmDefinition,
    RolloutPlan,
    alarm_definitions,
)
from pipelines.deploy.smoke import compare
from pipelines.errors import UsageError
from pipelines.local_endpoint.package import LocalPackage, smoke_sample, stage
from runtime.engine import LocalPipelineRunner
from runtime.serving.router import (
    ENDPOINT_FILE,
    Capture,
    EndpointState,
    Metric,
    Variant,
    read_metrics,
    read_state,
    write_state,
)
from runtime.serving.server import ENV_WORKERS
from tabular.files import write_atomic

HISTORY_FILE = "history.json"
ALARMS_FILE = "alarms.json"
ROUTER_FILE = "router.json"
MONITORING_FILE = "last-monitoring-run.json"
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 40.0
LISTENING = "listening on "
IN_SERVICE, UPDATING, ROLLING_BACK = "InService", "Updating", "RollingBack"
Print = Callable[[str], None]


class LocalDeployFailed(DeployFailed):
    """A local deployment that started did not finish (rolled back, a server did not start)."""


def endpoint_folder(runner: LocalPipelineRunner, stage: StageSection) -> Path:
    return runner.workspace / "endpoints" / stage.endpoint_name


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- processes


@dataclass
class Processes:
    """The servers this process started (so it reaps what it stops)."""

    started: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, argv: list[str], env: dict[str, str], log: Path, what: str) -> tuple[int, str]:
        """Start a server detached from this terminal; return its pid and URL once it listens."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started[process.pid] = process
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            text = log.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if line.startswith(LISTENING):
                    return process.pid, line[len(LISTENING) :].strip()
            if process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop(process.pid)
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-8:])
        raise LocalDeployFailed(f"{what} did not start (log {log}):\n{tail}")

    def stop(self, pid: int | None) -> None:
        """SIGTERM, then wait for the graceful stop (every accepted request answered)."""
        if not _alive(pid):
            return
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        process = self.started.pop(pid, None)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process is not None:
                if process.poll() is not None:
                    return
            elif not _alive(pid):
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def wait_healthy(url: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Until GET /ping answers 200 (the model is loaded)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(0.1)
    raise LocalDeployFailed(f"{url}/ping did not answer 200 within {timeout:g} s ({last})")


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def start_variant(
    processes: Processes,
    runner: LocalPipelineRunner,
    package: LocalPackage,
    folder: Path,
    config: str,
    workers: int,
) -> tuple[int, str]:
    staged = stage(runner, package, folder / "variants" / config)
    env = _env({**staged.environment, ENV_WORKERS: str(workers)})
    argv = [sys.executable, "-m", "runtime.serving.server", "--model-dir", str(staged.model_dir),
            "--port", "0"]  # fmt: skip
    pid, url = processes.start(argv, env, folder / "logs" / f"{config}.log", f"variant {config}")
    wait_healthy(url)
    return pid, url


def start_router(processes: Processes, folder: Path, port: int) -> tuple[int, str]:
    argv = [sys.executable, "-m", "runtime.serving.router", "--folder", str(folder),
            "--port", str(port)]  # fmt: skip
    pid, url = processes.start(argv, _env({}), folder / "logs" / "router.log", "the router")
    write_atomic(folder / ROUTER_FILE, json.dumps({"pid": pid, "url": url}))
    return pid, url


def router_info(folder: Path) -> dict[str, Any]:
    path = folder / ROUTER_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# --------------------------------------------------------------------------- alarms


METRIC_SAMPLES: dict[str, Callable[[Metric], float | None]] = {
    "Invocations": lambda m: 1.0,
    "Invocation4XXErrors": lambda m: 1.0 if 400 <= m.status < 500 else 0.0,
    "Invocation5XXErrors": lambda m: 1.0 if m.status >= 500 else 0.0,
    "InvocationModelErrors": lambda m: 1.0 if m.status >= 500 else 0.0,
    "ModelLatency": lambda m: float(m.model_latency_us),
}


def datapoints(
    alarm: AlarmDefinition, metrics: list[Metric], now: float, factor: float
) -> list[float | None]:
    """The alarm's statistic for each of its last evaluation periods (oldest first)."""
    sample = METRIC_SAMPLES.get(alarm.metric)
    period = alarm.period_seconds * factor
    points: list[float | None] = []
    for index in range(alarm.evaluation_periods, 0, -1):
        start, end = now - index * period, now - (index - 1) * period
        values = [sample(m) for m in metrics if start <= m.time < end] if sample else []
        points.append(alarm.statistic_of([v for v in values if v is not None]))
    return points


def evaluate_alarms(
    alarms: list[AlarmDefinition],
    folder: Path,
    new_configs: set[str],
    since: float,
    factor: float,
    previous: dict[str, str],
) -> dict[str, str]:
    """Each alarm's state now, on the router's metrics (the new fleet's only where the alarm
    has the EndpointConfigName dimension)."""
    now = time.time()
    everything = read_metrics(folder, since)
    states = {}
    for alarm in alarms:
        metrics = (
            [m for m in everything if m.variant in new_configs]
            if alarm.new_fleet_only
            else everything
        )
        points = datapoints(alarm, metrics, now, factor)
        states[alarm.name] = alarm.state(points, previous.get(alarm.name, INSUFFICIENT_DATA))
    return states


# --------------------------------------------------------------------------- history


def read_history(folder: Path) -> list[dict[str, Any]]:
    path = folder / HISTORY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def _record(folder: Path, entry: dict[str, Any]) -> None:
    write_atomic(folder / HISTORY_FILE, json.dumps([*read_history(folder), entry], indent=2))


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# --------------------------------------------------------------------------- deploy


@dataclass(frozen=True)
class LocalDeployment:
    cfg: Config
    stage_name: str
    stage: StageSection
    package: LocalPackage
    factor: float
    port: int

    @property
    def plan(self) -> RolloutPlan:
        return RolloutPlan.for_stage(self.stage).scaled(self.factor)


def _workers(stage: StageSection) -> int:
    return max(1, min(stage.fleet_size or 1, os.cpu_count() or 1))


def _capture(runner: LocalPipelineRunner, cfg: Config, stage: StageSection) -> Capture | None:
    capture = stage.data_capture
    if not capture.enabled:
        return None
    destination = capture.destination or (
        f"s3://{cfg.aws.bucket}/{cfg.aws.prefix}/endpoints/{stage.endpoint_name}/data-capture"
    )
    return Capture(
        str(runner.store.path(destination)), capture.sampling_percent, tuple(capture.capture)
    )


def plan_lines(deployment: LocalDeployment, live: EndpointState | None) -> list[str]:
    plan = deployment.plan
    stage = deployment.stage
    lines = [
        f"local endpoint {stage.endpoint_name} (stage {deployment.stage_name}): deploy "
        f"{deployment.package.label}"
        + (f", replacing {', '.join(f'v{v.version}' for v in live.variants)}" if live else ""),
    ]
    if live is None:
        lines.append("  rollout: a new endpoint takes all traffic at once")
    else:
        lines.append(f"  rollout: {plan.mode} (waits x{deployment.factor:g})")
        for at, step in plan.timeline():
            lines.append(
                f"    t+{at:>5}s  {step.traffic_percent:g}% of traffic on the new fleet, "
                f"alarms watched {step.bake_seconds}s"
            )
        lines.append(f"    then    final bake {plan.final_bake_seconds}s, then the old fleet stops")
    for alarm in alarm_definitions(stage):
        scope = "new fleet" if alarm.new_fleet_only else "endpoint"
        lines.append(
            f"  alarm {alarm.name}: {alarm.metric} {alarm.statistic} over "
            f"{alarm.period_seconds * deployment.factor:g}s periods, {alarm.datapoints_to_alarm} "
            f"of {alarm.evaluation_periods} {alarm.comparison} {alarm.threshold:g} ({scope})"
        )
    return lines


def live_state(folder: Path) -> EndpointState | None:
    """The endpoint's state if its router runs, else None (a stopped endpoint is gone)."""
    if not (folder / ENDPOINT_FILE).is_file() or not _alive(router_info(folder).get("pid")):
        return None
    return read_state(folder)


def deploy(runner: LocalPipelineRunner, deployment: LocalDeployment, say: Print) -> EndpointState:
    """Deploy the package on the local endpoint (create it, or roll out over the live fleet)."""
    stage = deployment.stage
    folder = endpoint_folder(runner, stage)
    folder.mkdir(parents=True, exist_ok=True)
    live = live_state(folder)
    for line in plan_lines(deployment, live):
        say(line)
    processes = Processes()
    config = f"{stage.endpoint_name}-v{deployment.package.version}-{uuid.uuid4().hex[:6]}"
    started = time.time()
    entry = {"when": started, "who": _who(), "version": deployment.package.version,
             "package": deployment.package.arn, "config": config}  # fmt: skip
    pid, url = start_variant(processes, runner, deployment.package, folder, config,
                             _workers(stage))  # fmt: skip
    say(f"  variant {stage.variant_name} ({config}) serving on {url}")
    new = Variant(stage.variant_name, url, 0.0, deployment.package.version, pid, config)
    if live is None:
        state = EndpointState(stage.endpoint_name, (Variant(**{**new.__dict__, "weight": 1.0}),),
                              _capture(runner, deployment.cfg, stage))  # fmt: skip
        write_state(folder, state)
        _, router = start_router(processes, folder, deployment.port)
        wait_healthy(router)
        _record(folder, {**entry, "action": "create", "outcome": "Deployed"})
        say(f"  endpoint {stage.endpoint_name} InService on {router}")
        _smoke(runner, deployment, router, say)
        return state
    return _roll_out(runner, deployment, folder, live, new, processes, entry, say)


def _roll_out(
    runner: LocalPipelineRunner,
    deployment: LocalDeployment,
    folder: Path,
    live: EndpointState,
    new: Variant,
    processes: Processes,
    entry: dict[str, Any],
    say: Print,
) -> EndpointState:
    old = [v for v in live.variants if v.weight > 0]
    old_total = sum(v.weight for v in old)
    alarms = alarm_definitions(deployment.stage)
    states: dict[str, str] = {a.name: INSUFFICIENT_DATA for a in alarms}
    state = EndpointState(live.name, (*old, new), live.capture, UPDATING, dict(live.extra))
    since = time.time()

    def shift(share: float, status: str) -> EndpointState:
        weights = {v.config: old_total * (1 - share) * v.weight / old_total for v in old}
        variants = tuple(
            Variant(
                **{
                    **v.__dict__,
                    "weight": share if v.config == new.config else weights.get(v.config, 0.0),
                }
            )  # fmt: skip
            for v in (*old, new)
        )
        updated = EndpointState(live.name, variants, live.capture, status, dict(live.extra))
        write_state(folder, updated)
        return updated

    def bake(seconds: float) -> str | None:
        deadline = time.monotonic() + seconds
        poll = (
            max(0.05, min(a.period_seconds for a in alarms) * deployment.factor / 4)
            if alarms
            else 0.1
        )
        while True:
            states.update(evaluate_alarms(alarms, folder, {new.config}, since, deployment.factor,
                                          states))  # fmt: skip
            write_atomic(folder / ALARMS_FILE, json.dumps({"config": new.config, "states": states}))
            tripped = [name for name, value in states.items() if value == ALARM]
            if tripped:
                return tripped[0]
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())) or poll)

    plan = deployment.plan
    tripped = None
    for step in plan.steps:
        state = shift(step.traffic_percent / 100, UPDATING)
        say(f"  step {step.number}: {step.traffic_percent:g}% of traffic on {new.config}")
        tripped = bake(step.bake_seconds)
        if tripped:
            break
    if tripped is None:
        say(f"  final bake {plan.final_bake_seconds}s")
        tripped = bake(plan.final_bake_seconds)
    if tripped:
        state = shift(0.0, ROLLING_BACK)
        say(f"  alarm {tripped} in ALARM: all traffic back on {', '.join(v.config for v in old)}")
        state = EndpointState(live.name, tuple(old), live.capture, IN_SERVICE, dict(live.extra))
        write_state(folder, state)
        processes.stop(new.pid)
        _record(folder, {**entry, "action": "update", "outcome": "RolledBack", "alarm": tripped})
        raise LocalDeployFailed(
            f"local endpoint {live.name}: alarm {tripped} went to ALARM while "
            f"{deployment.package.label} baked; rolled back, {', '.join(v.config for v in old)} "
            "serves all traffic again"
        )
    state = EndpointState(live.name, (Variant(**{**new.__dict__, "weight": 1.0}),), live.capture,
                          IN_SERVICE, dict(live.extra))  # fmt: skip
    write_state(folder, state)
    for variant in old:
        processes.stop(variant.pid)
    _record(folder, {**entry, "action": "update", "outcome": "Deployed"})
    router = router_info(folder).get("url", "")
    say(f"  {new.config} serves 100% of traffic; the old fleet stopped")
    _smoke(runner, deployment, router, say)
    return state


def _smoke(runner: LocalPipelineRunner, deployment: LocalDeployment, url: str, say: Print) -> None:
    settings = deployment.stage.smoke
    if not settings.enabled:
        return
    sample = smoke_sample(runner, deployment.package)
    if sample is None:
        say("  smoke test skipped: the package names no smoke sample")
        return
    request = urllib.request.Request(
        f"{url}/invocations", data=sample.body(settings.rows), method="POST",
        headers={"Content-Type": sample.content_type, "Accept": sample.content_type},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as answer:
            body = answer.read()
    except urllib.error.HTTPError as error:
        raise LocalDeployFailed(
            f"smoke test: the endpoint answered {error.code}: {error.read()[:300]!r}"
        ) from None
    result = compare(sample, body, settings)
    say(f"  {result.summary()}")
    if not result.passed:
        raise LocalDeployFailed(
            f"local endpoint {deployment.stage.endpoint_name}: {result.summary()}"
        )


# --------------------------------------------------------------------------- status, undeploy


def status_lines(runner: LocalPipelineRunner, stage_name: str, stage: StageSection) -> list[str]:
    folder = endpoint_folder(runner, stage)
    if not (folder / ENDPOINT_FILE).is_file():
        return [f"stage {stage_name}: local endpoint {stage.endpoint_name} is not deployed"]
    state = read_state(folder)
    router = router_info(folder)
    running = _alive(router.get("pid"))
    lines = [
        f"stage {stage_name}: local endpoint {state.name} "
        + (f"{state.status} on {router.get('url')}" if running else "stopped (router not running)")
    ]
    total = sum(v.weight for v in state.variants) or 1.0
    for variant in state.variants:
        alive = "running" if _alive(variant.pid) else "stopped"
        lines.append(
            f"  variant {variant.name} {variant.config}: v{variant.version}, "
            f"{100 * variant.weight / total:g}% of traffic, {alive} on {variant.url}"
        )
    if (folder / ALARMS_FILE).is_file():
        alarms = json.loads((folder / ALARMS_FILE).read_text(encoding="utf-8"))
        for name, value in sorted(alarms["states"].items()):
            lines.append(f"  alarm {name}: {value} (last rollout, {alarms['config']})")
    last_check = folder / MONITORING_FILE
    if last_check.is_file():
        run = json.loads(last_check.read_text(encoding="utf-8"))
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["when"]))
        lines.append(f"  monitoring, last run {when}: {run['summary']}")
    for entry in read_history(folder):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["when"]))
        alarm = f" (alarm {entry['alarm']})" if entry.get("alarm") else ""
        lines.append(
            f"  {when} {entry['action']} v{entry['version']} by {entry['who']}: "
            f"{entry['outcome']}{alarm}"
        )
    return lines


def undeploy(runner: LocalPipelineRunner, stage: StageSection, say: Print) -> int:
    """Stop the router and every variant; remove the endpoint's folder (captured data stays)."""
    folder = endpoint_folder(runner, stage)
    if not (folder / ENDPOINT_FILE).is_file():
        say(f"local endpoint {stage.endpoint_name}: not deployed, nothing to remove")
        return 0
    state = read_state(folder)
    processes = Processes()
    processes.stop(router_info(folder).get("pid"))
    for variant in state.variants:
        processes.stop(variant.pid)
        say(f"stopped variant {variant.config}")
    import shutil

    shutil.rmtree(folder)
    say(f"local endpoint {stage.endpoint_name}: removed")
    return len(state.variants) + 1


class LocalEndpointError(UsageError):
    """A local endpoint verb with bad input."""
