"""`python -m pipelines <verb>`: build, check and publish the pipeline.

Exit codes: 0 done, 1 a run or publish failed, 2 bad input (config, arguments).

Each verb imports what it needs when it runs: the SDK only for the verbs that build the
definition (pipelines/sdk.py), the local runtime only for the local verbs (run-local, registry,
approve/reject without --aws), so the AWS verbs never load the runtime.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import LOCAL_CONFIG, PIPELINE_CONFIG, Config, ConfigError, load_config
from config.paths import BUILD_DIR, DEFINITION_FILE, GOLDEN_FILE, ROOT
from pipelines.errors import UsageError
from tabular.contract import ExecutionStatus
from tabular.files import write_atomic

if TYPE_CHECKING:
    from pipelines.document import BuiltPipeline

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _build(cfg: Config, *, offline: bool = True, reuse: bool = False) -> BuiltPipeline:
    """Build the definition; the only path that imports the SDK (see pipelines/sdk.py).

    ``reuse``: take the saved build of this config while nothing it was built from changed,
    and save a new one (pipelines/saved.py); the SDK is then not imported at all.
    """
    if reuse:
        from pipelines import saved

        found = saved.load(cfg)
        if found is not None:
            return found
    from pipelines.sdk import prepare_sdk

    prepare_sdk(cfg, offline=offline)
    logging.disable(logging.INFO)  # the SDK logs its config search at import
    from pipelines.definition import build

    logging.disable(logging.NOTSET)
    # The SDK's import leaves about 330,000 objects the garbage collector tracks, all of them
    # alive for the rest of the process (modules, classes, pydantic schemas); every full
    # collection during the build walks them again (0.17-0.4 s each, one or two per build).
    # Frozen, they are left out of every later collection (CPython's gc.freeze).
    gc.freeze()
    built = build(cfg)
    if reuse:
        saved.save(cfg, built)
    return built


def cmd_definition(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    built = _build(cfg, reuse=True)
    write_atomic(Path(args.out), built.definition)
    print(f"wrote {args.out} ({len(built.definition)} bytes, {len(built.code)} code objects)")
    return 0


def cmd_golden(args: argparse.Namespace) -> int:
    # The golden snapshot is of the committed pipeline config alone, never of env overrides.
    cfg = load_config(PIPELINE_CONFIG, env={})
    built = _build(cfg)
    write_atomic(GOLDEN_FILE, built.definition)
    print(f"wrote {GOLDEN_FILE.relative_to(ROOT)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    gate = cfg.gate
    print(
        f"{args.config}: valid; pipeline {cfg.pipeline.name}, {cfg.data.problem_type} on "
        f"{cfg.data.input_uri}, gate {gate.metric} {gate.comparison} {gate.threshold}"
    )
    for name, stage in cfg.deploy.stages.items():
        print(
            f"  deploy stage {name}: {stage.endpoint_type} endpoint {stage.endpoint_name}, "
            f"rollout {stage.rollout.mode}"
        )
    return 0


def cmd_upsert(args: argparse.Namespace) -> int:
    from pipelines import aws
    from pipelines.publish import check_publishable, upsert

    cfg = load_config(args.config)
    check_publishable(cfg)
    session = aws.session(cfg)  # no credentials: say so before building
    built = _build(cfg, offline=False)
    write_atomic(DEFINITION_FILE, built.definition)
    result = upsert(cfg, built, session)
    for uri in result.uploaded:
        print(f"uploaded {uri}")
    if result.group_created:
        print(f"created model package group {cfg.registry.model_package_group}")
    if result.action == "unchanged":
        print(f"pipeline {cfg.pipeline.name}: no change")
        return 0
    print(result.diff, end="")
    for line in result.changes:
        print(line)
    print(f"pipeline {cfg.pipeline.name}: {result.action}")
    return 0


def _in_workspace(handler: Callable[..., int], *args: Any) -> int:
    """Run a local verb; a full, read-only or damaged workspace is its error (exit 1 when a run
    had started and failed, else 2)."""
    from runtime.files import WorkspaceError

    try:
        return handler(*args)
    except WorkspaceError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_FAILED if exc.execution_id else EXIT_BAD_INPUT


def cmd_run_local(args: argparse.Namespace) -> int:
    return _in_workspace(_run_local, args)


def _run_local(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    from runtime.jobs import prime_warm_starts

    prime_warm_starts()  # the first job's interpreter loads while the definition is built
    built = _build(cfg, reuse=True)
    from pipelines.local import run_local, summary_table

    try:
        run = run_local(
            cfg,
            built,
            retry=args.retry,
            wait_for_approval=args.wait_for_approval,
            approval_timeout=args.approval_timeout,
        )
    except KeyboardInterrupt:
        print(
            "interrupted: the run is recorded as Stopped; resume it with --retry", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    print(summary_table(run))
    return 0 if run.execution.status == ExecutionStatus.SUCCEEDED else EXIT_FAILED


def _answer_on_aws(args: argparse.Namespace, approved: bool) -> int:
    from pipelines.approval import Decision, answer_on_aws

    cfg = load_config(args.config or PIPELINE_CONFIG)
    decision = Decision(approved=approved, reviewer=args.reviewer, reason=args.reason)
    result = answer_on_aws(cfg, args.execution, decision, dry_run=args.dry_run)
    print("\n".join(result.evidence))
    if result.answered:
        print(
            f"{decision.verb} the Approval step of {result.execution_arn}; model package "
            f"{decision.package_status}; {result.messages_deleted} message(s) deleted"
        )
    else:
        print("dry run: nothing answered, the message stays on the queue")
    if result.left_on_queue:
        print(
            f"left on the queue: {result.left_on_queue} message(s) of other executions or "
            f"unparseable ({result.unparseable})"
        )
    return 0


def _answer(args: argparse.Namespace, approved: bool) -> int:
    if args.aws:
        return _answer_on_aws(args, approved)
    return _in_workspace(_answer_locally, args, approved)


def _answer_locally(args: argparse.Namespace, approved: bool) -> int:
    from pipelines.local import answer_approval, runner_for
    from runtime.state import CallbackStatus

    cfg = load_config(args.config or LOCAL_CONFIG)
    state = runner_for(cfg).state
    pending = state.callbacks(execution_id=args.execution, status=CallbackStatus.PENDING)
    if not pending:
        print(f"ERROR: execution {args.execution} has no pending approval", file=sys.stderr)
        return EXIT_BAD_INPUT
    from pipelines.report import ReportNotFound, local_execution_report

    runner = runner_for(cfg)
    try:
        print("\n".join(local_execution_report(runner, args.execution).lines()))
    except ReportNotFound as missing:
        print(f"no report: {missing}")
    for callback in pending:
        answer_approval(state, callback.token, approved, args.reviewer, args.reason)
        print(f"{'approved' if approved else 'rejected'} {callback.step} of {args.execution}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _answer(args, approved=True)


def cmd_reject(args: argparse.Namespace) -> int:
    return _answer(args, approved=False)


def cmd_schedule(args: argparse.Namespace) -> int:
    from pipelines.schedule import put_schedule

    cfg = load_config(args.config)
    result = put_schedule(cfg)
    print(
        f"schedule {result.name}: {result.action}, {result.state}, {cfg.schedule.expression} "
        f"({cfg.schedule.timezone}) starts pipeline {cfg.pipeline.name}"
    )
    if cfg.schedule.starter_arn:
        print(
            f"  through {cfg.schedule.starter_arn}: nothing starts while an execution of "
            f"{cfg.pipeline.name} runs"
        )
    else:
        print(
            "  directly: a scheduled run starts even while another execution runs; set "
            "schedule.starter_arn (infra/drift-retraining.yaml's RetrainingStarterArn) to wait"
        )
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    from pipelines.schedule import remove_schedule, schedule_name

    cfg = load_config(args.config)
    removed = remove_schedule(cfg)
    print(f"schedule {schedule_name(cfg)}: {'removed' if removed else 'none to remove'}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from pipelines.schedule import delete_pipeline, schedule_name

    cfg = load_config(args.config)
    result = delete_pipeline(cfg)
    print(f"schedule {schedule_name(cfg)}: {'removed' if result.schedule_removed else 'none'}")
    print(f"pipeline {cfg.pipeline.name}: {'deleted' if result.pipeline_deleted else 'not found'}")
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    return _in_workspace(_registry, args)


def _registry(args: argparse.Namespace) -> int:
    from pipelines.local import runner_for
    from pipelines.report import package_report_uris

    cfg = load_config(args.config)
    runner = runner_for(cfg)
    packages = runner.state.packages(args.group or cfg.registry.model_package_group)
    if not packages:
        print("no model packages")
    for package in packages:
        metrics = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
        print(
            f"{package['ModelPackageGroupName']} v{package['ModelPackageVersion']:<3} "
            f"{package['ModelApprovalStatus']:<22} {package['ExecutionId']}  "
            f"{package.get('ApprovalDescription') or ''}  {metrics.get('S3Uri', '')}"
        )
        page, _ = package_report_uris(package)
        print(f"    report {runner.store.path(page) if page else '(none recorded)'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipelines import report

    if args.aws:
        from pipelines import aws

        cfg = load_config(args.config or PIPELINE_CONFIG)
        session = aws.session(cfg)
        found = report.find_on_aws(aws.client(session, "sagemaker"), args.reference)
        folder = args.download or (BUILD_DIR / "reports" if args.open else None)
        if folder is not None:
            name = args.reference.rsplit("/", 1)[-1]
            found = report.download(aws.client(session, "s3"), found, Path(folder) / name)
    else:
        from pipelines.local import runner_for

        cfg = load_config(args.config or LOCAL_CONFIG)
        found = report.find_local(runner_for(cfg), args.reference)
    print("\n".join(found.lines()))
    if args.open and not report.open_in_browser(found):
        print("no browser to open it in here: open the path above")
    return 0


def parser(deploy_verbs: bool = True) -> argparse.ArgumentParser:
    """Every verb; without ``deploy_verbs``, only this module's own (the build and local-run
    verbs), so that they do not import the deploy models and the local endpoint to parse."""
    root = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    verbs = root.add_subparsers(dest="verb", required=True)

    def verb(
        name: str, handler: Callable[[Any], int], help_text: str, default_config: Path
    ) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", default=str(default_config), help="config file (YAML)")
        sub.set_defaults(handler=handler)
        return sub

    sub = verb(
        "definition", cmd_definition, "write the pipeline definition, offline", PIPELINE_CONFIG
    )
    sub.add_argument("--out", default=str(DEFINITION_FILE), help="where to write it")
    verb("golden", cmd_golden, "regenerate the committed golden definition", PIPELINE_CONFIG)
    verb(
        "validate",
        cmd_validate,
        "check a config file and show what it resolves to",
        PIPELINE_CONFIG,
    )
    verb("upsert", cmd_upsert, "create or update the pipeline on SageMaker", PIPELINE_CONFIG)
    sub = verb("run-local", cmd_run_local, "run the pipeline on this machine", LOCAL_CONFIG)
    sub.add_argument("--retry", metavar="EXECUTION", help="resume a failed or stopped execution")
    sub.add_argument(
        "--wait-for-approval",
        action="store_true",
        help="wait for `approve`/`reject` from another terminal instead of approval.local_policy",
    )
    sub.add_argument("--approval-timeout", type=float, help="seconds to wait for an answer")
    for name, handler, text in (
        ("approve", cmd_approve, "approve the pending model of an execution (local, or --aws)"),
        ("reject", cmd_reject, "reject the pending model of an execution (local, or --aws)"),
    ):
        sub = verb(name, handler, text, LOCAL_CONFIG)
        # The default config depends on --aws: configs/local.yaml, or configs/pipeline.yaml.
        sub.set_defaults(config=None)
        sub.add_argument(
            "execution", help="the execution id run-local printed (with --aws: its ARN or id)"
        )
        sub.add_argument("--reason", default="reviewed locally", help="why (kept with the package)")
        sub.add_argument("--reviewer", default=os.environ.get("USER", "reviewer"))
        sub.add_argument(
            "--aws",
            action="store_true",
            help="answer a SageMaker execution from the approval SQS queue (approval.queue_url)",
        )
        sub.add_argument(
            "--dry-run",
            action="store_true",
            help="with --aws: show the package, metrics and data quality; answer nothing",
        )
    verb(
        "schedule",
        cmd_schedule,
        "create or update the retraining schedule (EventBridge Scheduler) from `schedule:`",
        PIPELINE_CONFIG,
    )
    verb("unschedule", cmd_unschedule, "remove the retraining schedule", PIPELINE_CONFIG)
    verb(
        "delete",
        cmd_delete,
        "remove the retraining schedule, then the pipeline (nothing left orphaned)",
        PIPELINE_CONFIG,
    )
    sub = verb("registry", cmd_registry, "list the local Model Registry", LOCAL_CONFIG)
    sub.add_argument("--group", help="model package group (default: the configured one)")
    sub = verb(
        "report",
        cmd_report,
        "print (or open) the evaluation report of an execution or a model package",
        LOCAL_CONFIG,
    )
    sub.set_defaults(config=None)  # configs/local.yaml, or configs/pipeline.yaml with --aws
    sub.add_argument(
        "reference", help="a local execution id or model package ARN (with --aws: an ARN)"
    )
    sub.add_argument("--aws", action="store_true", help="a SageMaker execution or model package")
    sub.add_argument("--open", action="store_true", help="open the page in a browser")
    sub.add_argument("--download", type=Path, help="with --aws: copy the page and image here")
    # deploy, rollback, undeploy, status, smoke (pipelines/deploy/cli.py); --local on deploy,
    # status and undeploy, and serve (pipelines/local_endpoint/cli.py)
    if deploy_verbs:
        from pipelines.deploy.cli import add_verbs as add_deploy_verbs
        from pipelines.local_endpoint.cli import add_verbs as add_local_endpoint_verbs
        from pipelines.local_endpoint.cli import with_local

        add_deploy_verbs(with_local(verb))
        add_local_endpoint_verbs(verb)
    return root


OWN_VERBS = frozenset(
    {
        "definition", "golden", "validate", "upsert", "run-local", "approve", "reject",
        "schedule", "unschedule", "delete", "registry", "report",
    }
)  # fmt: skip
"""The verbs :func:`parser` defines itself; any other word (a deploy verb, ``--help``, a typo)
gets the whole parser, so help and usage errors list every verb."""


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from pipelines.aws import AwsUnavailable, explain

    words = sys.argv[1:] if argv is None else argv
    own = bool(words) and words[0] in OWN_VERBS and not {"-h", "--help"} & set(words)
    args = parser(deploy_verbs=not own).parse_args(argv)
    try:
        code: int = args.handler(args)
    except (ConfigError, UsageError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AwsUnavailable as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ClientError, BotoCoreError) as exc:  # credentials, network, permissions, throttling
        print(f"ERROR: {explain(exc)}", file=sys.stderr)
        return EXIT_FAILED
    return code
