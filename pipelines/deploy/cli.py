"""The deploy verbs of `python -m pipelines`: deploy, rollback, undeploy, status, smoke.

Each prints what it finds or will do first; `deploy` and `rollback` print the plan (the endpoint
config as a diff against the live one, the rollout steps with their times, the alarms, the
scaling) and change nothing with --dry-run. Exit codes: 0 done, 1 a deploy that started failed
(SageMaker rolled it back, the endpoint failed, the smoke test did not match), 2 bad input
(config, stage, a package that is not Approved, an endpoint deploy did not create).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import PIPELINE_CONFIG, Config, load_config
from pipelines.deploy.deployment import DeployFailed, DeployRefused, Live, prepare
from pipelines.deploy.history import DEPLOY, ROLLBACK, read, rollback_target
from pipelines.deploy.names import PACKAGE_TAG
from pipelines.deploy.package import PackageRefused
from pipelines.deploy.release import Release, approval_message
from pipelines.deploy.requests import Target
from pipelines.deploy.show import plan_lines, status_lines
from pipelines.deploy.smoke import SmokeSampleError

EXIT_FAILED = 1
Verb = Callable[[str, Callable[[Any], int], str, Path], argparse.ArgumentParser]


def _print(line: str) -> None:
    print(line, flush=True)


def _target(cfg: Config, stage: str) -> Target:
    try:
        cfg.deploy.stage(stage)
    except KeyError as error:
        raise DeployRefused(f"{error.args[0]}; pass one with --stage") from None
    return Target(cfg, stage)


def _deploy(args: argparse.Namespace, action: str) -> int:
    from pipelines.deploy import apply

    cfg = load_config(args.config)
    target = _target(cfg, args.stage)
    version = args.version
    release = getattr(args, "release", None)
    if release is not None:  # read before AWS is asked: a bad record is a usage error
        version = _released_version(cfg, Path(release), version)
    clients = apply.Clients.for_config(cfg)
    live = apply.read_live(clients, target)
    if action == ROLLBACK and version is None:
        version = _previous_version(target, live)
    return _apply(args, cfg, clients, target, live, version, action)


def _apply(
    args: argparse.Namespace,
    cfg: Config,
    clients: Any,
    target: Target,
    live: Live,
    version: int | None,
    action: str,
) -> int:
    from pipelines.deploy import apply

    package = apply.resolve_package(clients, cfg, version)
    deployment = prepare(cfg, target.stage_name, package, live, action)
    if target.stage.smoke.enabled:
        try:
            apply.load_smoke_sample(clients, package)
        except SmokeSampleError as error:
            raise DeployRefused(f"model package {package.label}: {error}") from None
    if getattr(args, "shadow", False):
        return _shadow(args, clients, deployment)
    for line in plan_lines(deployment):
        _print(line)
    if args.dry_run:
        _print("dry run: nothing was changed")
        return 0
    apply.execute(clients, deployment, apply.caller(clients), _print, apply.Clock())
    done = "rolled back to" if action == ROLLBACK else "deployed"
    _print(
        f"{done} {package.label} on {target.endpoint}: live on {deployment.config_name}"
        + (" and smoke-tested" if target.stage.smoke.enabled else "")
    )
    record = getattr(args, "record", None)
    if record is not None:
        Release(
            group=package.group,
            version=package.version,
            package_arn=package.arn,
            stage=target.stage_name,
            endpoint=target.endpoint,
            config_name=deployment.config_name,
        ).write(Path(record))
        _print(f"release record {record}: {package.label} on stage {target.stage_name}")
    return 0


def _released_version(cfg: Config, path: Path, version: int | None) -> int:
    """The version a release record names (it must be of this config's group)."""
    recorded = Release.read(path)
    group = cfg.registry.model_package_group
    if recorded.group != group:
        raise DeployRefused(
            f"release record {path} is of model package group {recorded.group}, the config's "
            f"is {group}: pass the record of this group's release"
        )
    if version is not None and version != recorded.version:
        raise DeployRefused(
            f"--version {version} contradicts release record {path} (v{recorded.version}); "
            "pass one of them"
        )
    return recorded.version


def _shadow(args: argparse.Namespace, clients: Any, deployment: Any) -> int:
    from pipelines.deploy import apply

    target = deployment.target
    if not target.stage.shadow.enabled:
        raise DeployRefused(
            f"deploy.stages.{target.stage_name}.shadow.enabled is false; enable it (and set "
            "its duration and sampling) to run a shadow test"
        )
    shadow = target.stage.shadow
    _print(
        f"shadow test of {deployment.package.label} on {target.endpoint}: "
        f"{shadow.sampling_percent}% of live requests copied to it for {shadow.duration_days} "
        f"day(s), on {shadow.instance_count} x {shadow.instance_type}; the live package answers"
    )
    if args.dry_run:
        _print("dry run: nothing was changed")
        return 0
    apply.start_shadow(clients, deployment, _print, apply.Clock())
    return 0


def _previous_version(target: Target, live: Live) -> int:
    if not live.exists:
        raise DeployRefused(f"endpoint {target.endpoint} is not deployed: nothing to roll back")
    previous = rollback_target(read(live.tags), live.version)
    if previous is None:
        raise DeployRefused(
            f"endpoint {target.endpoint} has no earlier deployment in its history (live: "
            f"v{live.version}); pass --to-version N"
        )
    return previous.version


def cmd_deploy(args: argparse.Namespace) -> int:
    return _deploy(args, DEPLOY)


def cmd_rollback(args: argparse.Namespace) -> int:
    return _deploy(args, ROLLBACK)


def _stage(args: argparse.Namespace) -> tuple[Target, Any]:
    """The stage's target and deploy's AWS clients (credentials checked)."""
    from pipelines.deploy import apply

    cfg = load_config(args.config)
    target = _target(cfg, args.stage)
    return target, apply.Clients.for_config(cfg)


def cmd_undeploy(args: argparse.Namespace) -> int:
    from pipelines.deploy import apply

    target, clients = _stage(args)
    removed = apply.undeploy(clients, target, _print, apply.Clock())
    _print(f"stage {args.stage}: {len(removed) or 'nothing'} removed")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from pipelines.deploy import apply

    target, clients = _stage(args)
    live = apply.read_live(clients, target)
    alarms = {}
    if live.owned:
        with apply.context(f"reading the alarms of endpoint {target.endpoint}"):
            owned = [a for a in apply.owned_alarms(clients, target)
                     if live.config_name and a.startswith(live.config_name)]  # fmt: skip
            alarms = apply.alarm_states(clients, owned)
    extra = []
    if live.schedule is not None:
        schedule = live.schedule
        last = schedule.get("LastMonitoringExecutionSummary") or {}
        extra.append(
            f"monitoring {schedule.get('MonitoringScheduleName')}: "
            f"{schedule.get('MonitoringScheduleStatus')}, last run "
            f"{last.get('MonitoringExecutionStatus', 'none yet')}"
        )
    for line in status_lines(args.stage, live, alarms, extra):
        _print(line)
    return 0


def _live_package(clients: Any, target: Target) -> Any:
    """The package deploy put live on the stage's endpoint."""
    from pipelines.deploy import apply
    from pipelines.deploy.package import Package

    live = apply.read_live(clients, target)
    arn = live.tags.get(PACKAGE_TAG)
    if not live.exists or not arn:
        raise DeployRefused(
            f"endpoint {target.endpoint} has no package deployed by this tool; deploy first"
        )
    with apply.context(f"reading model package {arn}"):
        described = clients.sagemaker.describe_model_package(ModelPackageName=arn)
    return Package.from_description(described)


def _record(args: argparse.Namespace, target: Target) -> Release | None:
    """The release record to add a result to, read before anything runs (None: no --record)."""
    if args.record is None:
        return None
    path = Path(args.record)
    recorded = Release.read(path)
    if recorded.endpoint != target.endpoint:
        raise DeployRefused(
            f"release record {path} is of endpoint {recorded.endpoint}, not {target.endpoint} "
            f"(stage {target.stage_name}); pass the record of this stage's release"
        )
    return recorded


def _add_result(
    args: argparse.Namespace, recorded: Release | None, name: str, result: dict[str, Any]
) -> None:
    if recorded is not None:
        recorded.with_result(name, result).write(Path(args.record))
        _print(f"release record {args.record}: {name} result added")


def cmd_smoke(args: argparse.Namespace) -> int:
    from pipelines.deploy import apply

    target, clients = _stage(args)
    recorded = _record(args, target)
    package = _live_package(clients, target)
    result = apply.smoke_test(clients, target, package, _print, apply.Clock())
    _print(result.summary())
    _add_result(args, recorded, "smoke", {"passed": result.passed, "rows": result.rows,
                                        "summary": result.summary()})  # fmt: skip
    return 0 if result.passed else EXIT_FAILED


def cmd_load(args: argparse.Namespace) -> int:
    from pipelines.deploy import apply

    target, clients = _stage(args)
    recorded = _record(args, target)
    package = _live_package(clients, target)
    result = apply.load_run(clients, target, package, _print, apply.Clock())
    settings = target.stage.load_test
    _print(result.summary(settings))
    _add_result(args, recorded, "load", result.as_dict(settings))
    return EXIT_FAILED if result.problems(settings) else 0


def cmd_approval_message(args: argparse.Namespace) -> int:
    from pipelines.deploy import apply
    from pipelines.deploy.package import Package

    cfg = load_config(args.config)
    _target(cfg, args.next_stage)
    recorded = Release.read(Path(args.record))
    clients = apply.Clients.for_config(cfg)
    with apply.context(f"reading model package {recorded.package_arn}"):
        described = clients.sagemaker.describe_model_package(ModelPackageName=recorded.package_arn)
    report = apply.evaluation_report(clients, Package.from_description(described))
    subject, message = approval_message(recorded, described, report, args.next_stage)
    _print(subject)
    _print(message)
    if args.topic:
        message_id = apply.publish(clients, args.topic, subject, message)
        _print(f"sent to {args.topic} (message {message_id})")
    return 0


def cmd_rollback_rejected(args: argparse.Namespace) -> int:
    """Every stage that serves the rejected package goes back to the latest Approved one."""
    from pipelines.deploy import apply

    cfg = load_config(args.config)
    clients = apply.Clients.for_config(cfg)
    rejected = args.package_arn
    status = 0
    for name in sorted(cfg.deploy.stages):
        target = Target(cfg, name)
        live = apply.read_live(clients, target)
        serving = live.tags.get(PACKAGE_TAG) if live.exists else None
        if serving != rejected:
            _print(f"stage {name}: {target.endpoint} does not serve {rejected}: unchanged")
            continue
        try:
            latest = apply.resolve_package(clients, cfg, None)
        except PackageRefused as error:
            raise DeployRefused(
                f"stage {name}: {target.endpoint} serves rejected {rejected} and there is "
                f"nothing to roll back to ({error}); approve a package, or take the stage down "
                f"with `make undeploy STAGE={name}`"
            ) from None
        _print(f"stage {name}: {target.endpoint} serves rejected {rejected}: rolling back to "
               f"the latest Approved package, {latest.label}")  # fmt: skip
        try:
            _apply(args, cfg, clients, target, live, latest.version, ROLLBACK)
        except DeployFailed as error:
            print(f"ERROR: stage {name}: {error}", file=sys.stderr)
            status = EXIT_FAILED
    return status


def cmd_deploy_golden(args: argparse.Namespace) -> int:
    from config import paths
    from pipelines.deploy.golden import REFERENCE_CONFIG, documents

    folder = paths.DEPLOY_GOLDEN_DIR

    written = documents(load_config(REFERENCE_CONFIG, env={}))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        if stale.name not in written:
            stale.unlink()
    for name, content in written.items():
        (folder / name).write_text(content, encoding="utf-8")
        _print(f"wrote {folder / name}")
    return 0


def exits(handler: Callable[[Any], int]) -> Callable[[Any], int]:
    """A verb whose failed deploy (or unusable smoke sample) exits 1 with its message."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (DeployFailed, SmokeSampleError) as error:
            print(f"ERROR: {error}", file=sys.stderr)
            return EXIT_FAILED

    return run


def add_verbs(verb: Verb) -> None:
    """Register the deploy verbs with the CLI's `verb(name, handler, help, default_config)`."""

    def staged(name: str, handler: Callable[[Any], int], text: str) -> argparse.ArgumentParser:
        sub = verb(name, exits(handler), text, PIPELINE_CONFIG)
        sub.add_argument("--stage", required=True, help="a stage of deploy.stages")
        return sub

    sub = staged(
        "deploy",
        cmd_deploy,
        "deploy an approved model package to the stage's endpoint (plan, apply, verify, "
        "smoke-test)",
    )
    sub.add_argument("--version", type=int, help="package version (default: latest Approved)")
    sub.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sub.add_argument(
        "--release",
        metavar="FILE",
        help="deploy the version a release record names (what an earlier stage tested)",
    )
    sub.add_argument("--record", metavar="FILE", help="write the release record here")
    sub.add_argument(
        "--shadow",
        action="store_true",
        help="instead of deploying, mirror live traffic to the package (shadow test)",
    )
    sub = staged(
        "rollback",
        cmd_rollback,
        "deploy the previously deployed package again (all at once), or --to-version N",
    )
    sub.add_argument("--to-version", dest="version", type=int, help="the version to go back to")
    sub.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    staged("undeploy", cmd_undeploy, "remove everything deploy created for the stage")
    staged("status", cmd_status, "show the stage's endpoint, alarms, scaling and history")
    sub = staged("smoke", cmd_smoke, "invoke the live endpoint with its package's test rows again")
    sub.add_argument("--record", metavar="FILE", help="add the result to this release record")
    sub = staged(
        "load",
        cmd_load,
        "a bounded load run against the live endpoint (deploy.stages.<stage>.load_test)",
    )
    sub.add_argument("--record", metavar="FILE", help="add the result to this release record")
    sub = verb(
        "approval-message",
        exits(cmd_approval_message),
        "the manual gate's message: package, metrics, staging results (--topic sends it)",
        PIPELINE_CONFIG,
    )
    sub.add_argument("--record", metavar="FILE", required=True, help="the release record")
    sub.add_argument("--next-stage", required=True, help="the stage the approval deploys to")
    sub.add_argument("--topic", help="SNS topic ARN to send it to (default: print only)")
    sub = verb(
        "rollback-rejected",
        exits(cmd_rollback_rejected),
        "roll every stage that serves this (rejected) package back to the latest Approved one",
        PIPELINE_CONFIG,
    )
    sub.add_argument("--package-arn", required=True, help="the rejected model package's ARN")
    sub.add_argument("--dry-run", action="store_true", help="print the plans, change nothing")
    verb(
        "deploy-golden",
        cmd_deploy_golden,
        "regenerate tests/golden/deploy/ from configs/deploy-reference.yaml, offline",
        PIPELINE_CONFIG,
    )
