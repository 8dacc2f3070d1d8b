"""`serve --local`, and `--local` on deploy, status and undeploy.

`serve --local [--version N] [--port P]` serves an approved package of the local registry in the
foreground (gunicorn workers, the container's SAGEMAKER_* variables honoured) until Ctrl-C or
SIGTERM. `deploy --local --stage S` deploys to the stage's local endpoint with its rollout plan
and alarms; `status --local` and `undeploy --local` show and remove it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import LOCAL_CONFIG, PIPELINE_CONFIG, Config, load_config
from config.deploy import StageSection
from pipelines.deploy.cli import exits
from pipelines.errors import UsageError
from pipelines.local import runner_for
from pipelines.local_endpoint.endpoint import (
    LocalDeployment,
    deploy,
    status_lines,
    undeploy,
)
from pipelines.local_endpoint.package import approved_package, stage
from runtime.serving.handler import ServingError
from runtime.serving.server import (
    ServerSettings,
    gunicorn_options,
    load_app,
    run_server,
)

EXIT_FAILED = 1
Verb = Callable[[str, Callable[[Any], int], str, Path], argparse.ArgumentParser]
LOCAL_VERBS = ("deploy", "status", "undeploy")


def _print(line: str) -> None:
    print(line, flush=True)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a port; give 1-65535, or 0 for a free one"
        )
    return port


def _factor(value: str) -> float:
    try:
        factor = float(value)
    except ValueError:
        factor = 0.0
    if not 0 < factor <= 1:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a factor in (0, 1]; e.g. 0.01 turns a 300 s bake into 3 s"
        )
    return factor


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    runner = runner_for(cfg)
    package = approved_package(cfg, args.version, runner)
    staged = stage(runner, package, runner.workspace / "serve" / f"v{package.version}")
    environment = {**staged.environment, **_container_overrides()}
    try:
        settings = ServerSettings.from_environ(environment, staged.model_dir)
    except ServingError as error:
        raise UsageError(str(error)) from None
    os.environ.update(environment)  # the workers' handler reads the container's variables
    _print(
        f"serving {package.label} ({settings.program}, {settings.workers} worker(s)); Ctrl-C stops"
    )
    options = gunicorn_options(
        f"{args.host}:{args.port}", settings.workers, settings.timeout_seconds, "info"
    )
    status = run_server(
        lambda: load_app(settings),
        options,
        lambda url: _print(f"listening on {url} (GET /ping, POST /invocations)"),
    )
    if status:
        print(
            f"ERROR: the model server stopped (status {status}): a worker could not load "
            f"{package.label}; its error is above",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def _container_overrides() -> dict[str, str]:
    """SAGEMAKER_* variables set in this shell win over the package's (as `docker run -e`)."""
    return {k: v for k, v in os.environ.items() if k.startswith("SAGEMAKER_MODEL_SERVER_")} | {
        k: v for k, v in os.environ.items() if k == "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
    }


def _stage(cfg: Config, name: str) -> StageSection:
    try:
        return cfg.deploy.stage(name)
    except KeyError as error:
        raise UsageError(f"{error.args[0]}; pass one with --stage") from None


def cmd_deploy_local(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    runner = runner_for(cfg)
    stage_section = _stage(cfg, args.stage)
    package = approved_package(cfg, args.version, runner)
    deployment = LocalDeployment(
        cfg, args.stage, stage_section, package, args.time_factor, args.port
    )
    if args.dry_run:
        from pipelines.local_endpoint.endpoint import endpoint_folder, live_state, plan_lines

        for line in plan_lines(deployment, live_state(endpoint_folder(runner, stage_section))):
            _print(line)
        _print("dry run: nothing was changed")
        return 0
    deploy(runner, deployment, _print)
    _print(f"deployed {package.label} on local endpoint {stage_section.endpoint_name}")
    return 0


def cmd_status_local(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    for line in status_lines(runner_for(cfg), args.stage, _stage(cfg, args.stage)):
        _print(line)
    return 0


def cmd_undeploy_local(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    undeploy(runner_for(cfg), _stage(cfg, args.stage), _print)
    return 0


def cmd_monitor_local(args: argparse.Namespace) -> int:
    from pipelines.local_endpoint.endpoint import endpoint_folder, live_state
    from pipelines.local_endpoint.monitoring import MonitoringRefused, run_monitoring

    cfg = load_config(args.config)
    runner = runner_for(cfg)
    stage_section = _stage(cfg, args.stage)
    state = live_state(endpoint_folder(runner, stage_section))
    if state is None:
        raise MonitoringRefused(
            f"local endpoint {stage_section.endpoint_name} is not running; deploy it first "
            f"(`python -m pipelines deploy --local --stage {args.stage}`)"
        )
    live = max(state.variants, key=lambda v: v.weight)
    package = approved_package(cfg, live.version, runner)
    run = run_monitoring(runner, args.stage, stage_section, package, state.capture,
                         cfg.data.target)  # fmt: skip
    _print(run.summary())
    return EXIT_FAILED if run.violations else 0


LOCAL_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "deploy": cmd_deploy_local,
    "status": cmd_status_local,
    "undeploy": cmd_undeploy_local,
}


def with_local(verb: Verb) -> Verb:
    """`verb` that gives deploy, status and undeploy a `--local` flag and its handler."""

    def register(
        name: str, handler: Callable[[Any], int], text: str, default_config: Path
    ) -> argparse.ArgumentParser:
        if name not in LOCAL_VERBS:
            return verb(name, handler, text, default_config)
        local = exits(LOCAL_HANDLERS[name])

        def dispatch(args: argparse.Namespace) -> int:
            return local(args) if args.local else handler(args)

        sub = verb(name, dispatch, text, default_config)
        sub.add_argument(
            "--local",
            action="store_true",
            help="the stage's local endpoint on this machine (the local registry's packages)",
        )
        if name == "deploy":
            sub.add_argument(
                "--time-factor",
                type=_factor,
                default=1.0,
                help="--local: multiply rollout waits and alarm periods (e.g. 0.01 to rehearse)",
            )
            sub.add_argument(
                "--port", type=_port, default=0, help="--local: the endpoint's port (0: free)"
            )
        return sub

    return register


def add_verbs(verb: Verb) -> None:
    sub = verb(
        "serve",
        cmd_serve,
        "serve an approved package of the local registry over HTTP (/ping, /invocations)",
        LOCAL_CONFIG,
    )
    sub.add_argument(
        "--local",
        action="store_true",
        default=True,
        help="serve on this machine (the only mode: SageMaker endpoints come from `deploy`)",
    )
    sub.add_argument("--version", type=int, help="package version (default: latest Approved)")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sub.add_argument("--port", type=_port, default=8080, help="port (0: a free one)")
    sub = verb(
        "monitor",
        exits(cmd_monitor_local),
        "run the stage's data-quality monitoring once on what its local endpoint captured "
        "(exit 1 on violations)",
        PIPELINE_CONFIG,
    )
    sub.add_argument("--stage", required=True, help="a stage of deploy.stages")
    sub.add_argument("--local", action="store_true", default=True, help="the local endpoint")
