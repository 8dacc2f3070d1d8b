"""`python -m pipelines <verb>`: build, check and publish the pipeline.

Exit codes: 0 done, 1 a run or publish failed, 2 bad input (config, arguments).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from steps.config import LOCAL_CONFIG, PIPELINE_CONFIG, Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build"
DEFINITION_FILE = BUILD_DIR / "pipeline.json"
GOLDEN_FILE = ROOT / "tests" / "golden" / "pipeline.json"
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary name beside the target, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _build(cfg: Config):  # type: ignore[no-untyped-def]
    from pipelines.sdk import prepare_sdk

    prepare_sdk(cfg)
    from pipelines.definition import build

    return build(cfg)


def cmd_definition(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    built = _build(cfg)
    write_atomically(Path(args.out), built.definition)
    print(f"wrote {args.out} ({len(built.definition)} bytes, {len(built.code)} code objects)")
    return 0


def cmd_golden(args: argparse.Namespace) -> int:
    # The golden snapshot is of the committed pipeline config alone, never of env overrides.
    cfg = load_config(PIPELINE_CONFIG, env={})
    built = _build(cfg)
    write_atomically(GOLDEN_FILE, built.definition)
    print(f"wrote {GOLDEN_FILE.relative_to(ROOT)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    gate = cfg.gate
    print(
        f"{args.config}: valid; pipeline {cfg.pipeline.name}, {cfg.data.problem_type} on "
        f"{cfg.data.input_uri}, gate {gate.metric} {gate.comparison} {gate.threshold}"
    )
    return 0


def cmd_upsert(args: argparse.Namespace) -> int:
    from pipelines.publish import PublishError, upsert

    cfg = load_config(args.config)
    built = _build(cfg)
    write_atomically(DEFINITION_FILE, built.definition)
    try:
        result = upsert(cfg, built)
    except PublishError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
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


def cmd_run_local(args: argparse.Namespace) -> int:
    load_config(args.config)
    print(
        "run-local: not yet available; the local runtime is being built. "
        "Use `make definition` to check the graph offline.",
        file=sys.stderr,
    )
    return EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    verbs = root.add_subparsers(dest="verb", required=True)

    def verb(name: str, handler, help_text: str, default_config: Path) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", default=str(default_config), help="config file (YAML)")
        sub.set_defaults(handler=handler)
        return sub

    sub = verb("definition", cmd_definition, "write the pipeline definition, offline", PIPELINE_CONFIG)
    sub.add_argument("--out", default=str(DEFINITION_FILE), help="where to write it")
    verb("golden", cmd_golden, "regenerate the committed golden definition", PIPELINE_CONFIG)
    verb("validate", cmd_validate, "check a config file and show what it resolves to", PIPELINE_CONFIG)
    verb("upsert", cmd_upsert, "create or update the pipeline on SageMaker", PIPELINE_CONFIG)
    verb("run-local", cmd_run_local, "run the pipeline on this machine", LOCAL_CONFIG)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code
