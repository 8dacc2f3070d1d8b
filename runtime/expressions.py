"""The pipeline definition's expression language: Get, Std:Join, Std:JsonGet and conditions.

Values resolve against the execution's parameters, execution variables, the properties of
finished steps (their Describe* responses) and property files read from the artifact store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

STEP_REFERENCE = re.compile(r"^Steps\.([A-Za-z0-9_-]+)\.?(.*)$")
PATH_TOKEN = re.compile(r"\.?([A-Za-z0-9_]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
# Fields a list element is named by, so that Outputs['train'] finds OutputName == "train".
NAME_KEYS = ("OutputName", "InputName", "ChannelName", "Name", "PropertyFileName")


class ResolutionError(ValueError):
    """An expression that cannot be resolved; the message names it and why."""


@dataclass(frozen=True)
class Scope:
    """What expressions resolve against during one execution."""

    parameters: Mapping[str, Any]
    execution: Mapping[str, Any]
    properties: Callable[[str], Mapping[str, Any]]
    property_file: Callable[[str, str], Any]


def step_dependencies(node: Any) -> set[str]:
    """Names of the steps whose properties an argument tree reads."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Get" and isinstance(value, str):
                match = STEP_REFERENCE.match(value)
                if match:
                    found.add(match.group(1))
            else:
                found |= step_dependencies(value)
    elif isinstance(node, list):
        for item in node:
            found |= step_dependencies(item)
    return found


def walk_path(value: Any, path: str, what: str) -> Any:
    """Follow `A.B['name'][0].C` through dicts and lists as the service's property paths do."""
    position = 0
    while position < len(path):
        match = PATH_TOKEN.match(path, position)
        if not match or match.end() == position:
            raise ResolutionError(f"{what}: cannot parse property path at {path[position:]!r}")
        position = match.end()
        field, index, name = match.group(1), match.group(2), match.group(3) or match.group(4)
        if field is not None:
            if not isinstance(value, dict) or field not in value:
                raise ResolutionError(f"{what}: no property {field!r}")
            value = value[field]
        elif index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                raise ResolutionError(f"{what}: no element [{index}]")
            value = value[int(index)]
        else:
            value = _named_element(value, name, what)
    return value


def _named_element(value: Any, name: str, what: str) -> Any:
    if isinstance(value, dict):
        if name in value:
            return value[name]
        raise ResolutionError(f"{what}: no entry {name!r}")
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and any(item.get(key) == name for key in NAME_KEYS):
                return item.get("Value", item) if "Value" in item and "Name" in item else item
    raise ResolutionError(f"{what}: no element named {name!r}")


def json_path(document: Any, path: str, what: str) -> Any:
    """The JsonGet path dialect: dotted keys and [n] indexes, e.g. `a.b[0].value`."""
    return walk_path(document, path, what)


def _get(reference: str, scope: Scope) -> Any:
    if reference.startswith("Parameters."):
        name = reference.removeprefix("Parameters.")
        if name not in scope.parameters:
            raise ResolutionError(f"{reference}: no such parameter")
        return scope.parameters[name]
    if reference.startswith("Execution."):
        name = reference.removeprefix("Execution.")
        if name not in scope.execution:
            raise ResolutionError(f"{reference}: no such execution variable")
        return scope.execution[name]
    match = STEP_REFERENCE.match(reference)
    if not match:
        raise ResolutionError(f"{reference}: not a parameter, execution variable or step property")
    step, path = match.groups()
    return walk_path(scope.properties(step), path, reference)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def resolve(node: Any, scope: Scope) -> Any:
    """A copy of `node` with every expression replaced by its value."""
    if isinstance(node, dict):
        if set(node) == {"Get"} and isinstance(node["Get"], str):
            return _get(node["Get"], scope)
        if set(node) == {"Std:Join"}:
            spec = node["Std:Join"]
            return spec["On"].join(_text(resolve(v, scope)) for v in spec["Values"])
        if set(node) == {"Std:JsonGet"}:
            spec = node["Std:JsonGet"]
            reference = spec["PropertyFile"]["Get"]
            match = re.match(r"^Steps\.([A-Za-z0-9_-]+)\.PropertyFiles\.(.+)$", reference)
            if not match:
                raise ResolutionError(f"{reference}: not a property file reference")
            document = scope.property_file(match.group(1), match.group(2))
            return json_path(document, spec["Path"], f"{reference} {spec['Path']}")
        return {key: resolve(value, scope) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, scope) for item in node]
    return node


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def evaluate_condition(condition: Mapping[str, Any], scope: Scope) -> bool:
    """One condition of a ConditionStep, as the service evaluates it."""
    kind = condition["Type"]
    if kind in COMPARISONS:
        left = resolve(condition["LeftValue"], scope)
        right = resolve(condition["RightValue"], scope)
        if isinstance(left, str) and isinstance(right, (int, float)):
            left = float(left)
        if isinstance(right, str) and isinstance(left, (int, float)):
            right = float(right)
        return COMPARISONS[kind](left, right)
    if kind == "In":
        value = resolve(condition["QueryValue"], scope)
        return value in [resolve(v, scope) for v in condition["Values"]]
    if kind == "Not":
        return not evaluate_condition(condition["Expression"], scope)
    if kind == "Or":
        return any(evaluate_condition(c, scope) for c in condition["Conditions"])
    raise ResolutionError(f"condition type {kind!r} is not supported")


def load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResolutionError(f"{what}: not valid JSON ({exc})") from None
