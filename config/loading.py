"""Loading a config file: merged over its parent, overridden by the environment, validated.

A config file is merged over its parent (`extends:`, default `configs/base.yaml`), so a user file
names only what it changes; base.yaml holds every knob with its published default. Values that
differ per account come from the environment (:data:`ENV_OVERRIDES`). An invalid file raises one
ConfigError that lists every bad field with its path and what is expected; so does every file
that cannot be a config (missing, a directory, not UTF-8, empty, YAML syntax, a key twice).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.fields import merge
from config.paths import BASE_CONFIG, PIPELINE_CONFIG
from config.schema import Config

# Values that differ per account come from the environment, not from a committed file.
ENV_OVERRIDES = {
    "PIPELINE_ROLE_ARN": ("aws", "role_arn"),
    "PIPELINE_BUCKET": ("aws", "bucket"),
    "PIPELINE_APPROVAL_QUEUE_URL": ("approval", "queue_url"),
    "PIPELINE_SCHEDULER_ROLE_ARN": ("schedule", "role_arn"),
    "PIPELINE_RETRAINING_STARTER_ARN": ("schedule", "starter_arn"),
}


class ConfigError(ValueError):
    """A config file that cannot be used; the message lists every problem."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first on line {seen[key] + 1}); "
                    "keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(path: Path, exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    hint = ""
    if "\t" in text and ("\\t" in problem or "tab" in problem.lower()):
        hint = " YAML indents with spaces, never tabs: replace the tabs with spaces."
    elif "mapping values are not allowed" in problem:
        hint = " Quote a value that holds ': ', or indent it under its key."
    return f"{path}: not valid YAML at {where}{problem}; fix the syntax.{hint}"


def _read_yaml(path: Path, named_by: str) -> dict[str, Any]:
    """One config file as a mapping; every way it can be unusable is a ConfigError.

    ``named_by`` says where the path came from (``--config``, or ``extends`` in a file).
    """
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file; {named_by} a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; {named_by} an existing file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8; save the "
            "file as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc, text)) from None
    if raw is None:
        raise ConfigError(
            f"{path}: the file is empty; a config names at least data.input_uri, data.target "
            "and data.problem_type (see configs/pipeline.yaml)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections (data:, jobs: ...), not a "
            f"{type(raw).__name__}"
        )
    return raw


def _resolve(path: Path, named_by: str, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: `extends` forms a cycle through {[str(p) for p in seen]}")
    raw = _read_yaml(path, named_by)
    parent = raw.pop("extends", None)
    if parent is not None and (not isinstance(parent, str) or not parent.strip()):
        raise ConfigError(
            f"{path}: extends must be the path of one config file (relative to this file), "
            f"got {parent!r}"
        )
    if parent is None and path != BASE_CONFIG.resolve():
        parent_path: Path | None = BASE_CONFIG
    elif parent is None:
        parent_path = None
    else:
        parent_path = (path.parent / parent).resolve()
    if parent_path is None:
        return raw
    reference = f"fix `extends: {parent}` in {path}: it must name" if parent else "restore"
    return merge(_resolve(parent_path, reference, (*seen, path)), raw)


def _format_errors(path: Path, error: ValidationError, from_env: dict[str, str]) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the configuration:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling against configs/base.yaml"
        elif item["type"] == "missing":
            message = "required; add it (configs/base.yaml documents every key)"
        got = item.get("input")
        shown = "" if item["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        source = next((f" [set by {v}]" for k, v in from_env.items() if where.startswith(k)), "")
        lines.append(f"  - {where}: {message}{shown}{source}")
    return "\n".join(lines)


def load_config(path: Path | str = PIPELINE_CONFIG, env: dict[str, str] | None = None) -> Config:
    """Load, merge and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    raw = _resolve(path, "pass --config with")
    environ = os.environ if env is None else env
    from_env = {}
    for variable, (section, key) in ENV_OVERRIDES.items():
        if environ.get(variable):
            if not isinstance(raw.get(section, {}), dict):
                break  # the section itself is wrong: validation reports it
            raw.setdefault(section, {})[key] = environ[variable]
            from_env[f"{section}.{key}"] = f"environment variable {variable}"
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc, from_env)) from None
