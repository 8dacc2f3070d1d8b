"""The serving handler: the user's inference module run as SageMaker's serving containers run it.

The SageMaker XGBoost and scikit-learn serving containers (built on
sagemaker-inference-toolkit) load the user's inference module in "script mode": they call
``model_fn(model_dir)`` once, then answer each request with ``transform_fn(model, body,
content_type, accept)`` or, when the module does not define it, with ``input_fn(body,
content_type)`` -> ``predict_fn(data, model)`` -> ``output_fn(prediction, accept)``.
:func:`load_handler` does the same in this process and returns a :class:`Handler`, one call
per request. Batch transform (:mod:`runtime.serving.batch`) feeds it the records of a job's
input; a local endpoint feeds it HTTP requests.

Like the rest of ``runtime``, this module knows the SageMaker serving contract only: it imports
nothing from the pipeline packages, the SageMaker SDK or boto3.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import itertools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from tabular.contract import ANY, DEFAULT_ACCEPT, DEFAULT_ACCEPT_ENV, UTF8_TYPES

USER_FUNCTIONS = ("model_fn", "transform_fn", "input_fn", "predict_fn", "output_fn")
PIPELINE_FUNCTIONS = ("input_fn", "predict_fn", "output_fn")

_module_ids = itertools.count()
"""Numbers the user modules this process imports, so each gets a unique module name."""

HandlerFn = Callable[[bytes, str, str], bytes]
"""What the job calls per request: ``(payload, content_type, accept) -> response body``."""


class ServingError(Exception):
    """The model cannot serve, or a batch transform failed; the message names the file, line
    and cause (a batch job's FailureReason)."""


class UserCodeError(Exception):
    """A request failed in the user's module (or could not be handed to it, e.g. bad UTF-8)."""

    def __init__(self, function: str, error: BaseException, location: str | None) -> None:
        where = f" (at {location})" if location else ""
        super().__init__(f"{function} raised {type(error).__name__}: {error}{where}")
        self.function = function
        self.error = error
        self.location = location


# --------------------------------------------------------------------------- handler


def media_type(value: str) -> str:
    return value.split(";")[0].strip().lower()


def _user_location(error: BaseException, code_dir: Path) -> str | None:
    """``file:line`` of the innermost traceback frame inside ``code_dir``, if any."""
    root = code_dir.resolve()
    location = None
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(root):
            location = f"{path.relative_to(root)}:{frame.lineno}"
    return location


@functools.cache
def _parameters(fn: Callable[..., Any]) -> int | None:
    """How many parameters ``fn`` takes (None: no signature), read once per function."""
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # builtins without a signature: call as documented
        return None


def _call_user(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a user function like the toolkit: it may take one extra ``context`` argument."""
    return fn(*args, None) if _parameters(fn) == len(args) + 1 else fn(*args)


def _as_bytes(result: Any, function: str) -> bytes:
    if isinstance(result, tuple) and len(result) == 2:  # (body, content_type), as the toolkit
        result = result[0]
    if isinstance(result, str):
        return result.encode("utf-8")
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result)
    raise TypeError(
        f"{function} returned {type(result).__name__}; return str or bytes "
        "(or a (body, content_type) tuple)"
    )


class Handler:
    """The user's inference module with its model loaded: one call per request."""

    def __init__(self, module: ModuleType, model: Any, program: str, code_dir: Path) -> None:
        self.module = module
        self.model = model
        self.program = program
        self.code_dir = code_dir

    def __call__(self, payload: bytes, content_type: str, accept: str) -> bytes:
        """Answer one request; user errors are raised as :class:`UserCodeError`."""
        if not accept or accept == ANY:
            accept = os.environ.get(DEFAULT_ACCEPT_ENV, DEFAULT_ACCEPT)
        body: str | bytes = payload
        if media_type(content_type) in UTF8_TYPES:
            try:
                body = payload.decode("utf-8")
            except UnicodeDecodeError as error:  # the container decodes these types first
                raise UserCodeError(f"decoding the {content_type} body", error, None) from error
        transform_fn = getattr(self.module, "transform_fn", None)
        if transform_fn is not None:
            last = "transform_fn"
            result = self._run(last, transform_fn, self.model, body, content_type, accept)
        else:
            data = self._run("input_fn", self.module.input_fn, body, content_type)
            prediction = self._run("predict_fn", self.module.predict_fn, data, self.model)
            last = "output_fn"
            result = self._run(last, self.module.output_fn, prediction, accept)
        try:
            return _as_bytes(result, last)
        except TypeError as error:
            raise UserCodeError(last, error, None) from error

    def _run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return _call_user(fn, *args)
        except Exception as error:
            raise UserCodeError(name, error, _user_location(error, self.code_dir)) from error


def _import_user_module(code_dir: Path, program: str) -> ModuleType:
    path = code_dir / program
    if not path.is_file():
        raise ServingError(
            f"{path}: inference program not found; the model's code directory must hold "
            f"{program!r} (SAGEMAKER_PROGRAM)."
        )
    name = f"_sm_user_{Path(program).stem}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ServingError(f"{path}: cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        location = _user_location(error, code_dir)
        where = f" (at {location})" if location else ""
        raise ServingError(
            f"{path}: importing the inference program failed: "
            f"{type(error).__name__}: {error}{where}"
        ) from error
    return module


def _check_functions(module: ModuleType, path: Path) -> None:
    defined = {n for n in USER_FUNCTIONS if callable(getattr(module, n, None))}
    if "model_fn" not in defined:
        raise ServingError(f"{path}: defines no model_fn(model_dir); add one that loads the model.")
    if "transform_fn" in defined:
        clash = sorted(defined & set(PIPELINE_FUNCTIONS))
        if clash:
            raise ServingError(
                f"{path}: defines transform_fn and {', '.join(clash)}; define either "
                "transform_fn(model, body, content_type, accept) or input_fn/predict_fn/output_fn."
            )
        return
    missing = [n for n in PIPELINE_FUNCTIONS if n not in defined]
    if missing:
        raise ServingError(
            f"{path}: missing {', '.join(missing)}; define input_fn(body, content_type), "
            "predict_fn(data, model) and output_fn(prediction, accept), "
            "or transform_fn(model, body, content_type, accept)."
        )


def load_handler(code_dir: Path, program: str, model_dir: Path) -> Handler:
    """Import ``program`` from ``code_dir`` and load its model with ``model_fn(model_dir)``.

    ``code_dir`` is on ``sys.path`` while the module is imported and its model loaded, so
    sibling modules import. Raises :class:`ServingError` if the program is missing, fails
    to import, lacks a required function or its ``model_fn`` fails.
    """
    code_dir = Path(code_dir)
    entry = str(code_dir)
    sys.path.insert(0, entry)
    try:
        module = _import_user_module(code_dir, program)
        _check_functions(module, code_dir / program)
        try:
            model = _call_user(module.model_fn, str(model_dir))
        except Exception as error:
            failure = UserCodeError("model_fn", error, _user_location(error, code_dir))
            raise ServingError(
                f"{code_dir / program}: loading the model from {model_dir} failed: {failure}"
            ) from error
    finally:
        sys.path.remove(entry)
    return Handler(module, model, program, code_dir)
