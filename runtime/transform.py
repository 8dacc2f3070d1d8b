"""Local stand-in for a SageMaker batch transform job served by a framework container.

The SageMaker XGBoost and scikit-learn serving containers (built on
sagemaker-inference-toolkit) load the user's inference module in "script mode": they call
``model_fn(model_dir)`` once, then answer each request with ``transform_fn(model, body,
content_type, accept)`` or, when the module does not define it, with ``input_fn(body,
content_type)`` -> ``predict_fn(data, model)`` -> ``output_fn(prediction, accept)``.
Batch transform feeds that server the objects of the job's input, as configured by
``TransformInput`` (SplitType), ``BatchStrategy``/``MaxPayloadInMB``, ``TransformOutput``
(Accept, AssembleWith) and ``DataProcessing`` (JoinSource, InputFilter, OutputFilter).

This module does the same in the host process, one input file after another:

- ``split_type`` Line: every line is a record (line endings stripped, blank lines skipped);
  None: the whole file is one request (it must fit into ``max_payload_bytes``).
- ``batch_strategy`` MultiRecord: each request packs as many whole records as fit into
  ``max_payload_bytes`` (records are sent newline-terminated; a record counts its newline);
  SingleRecord: one record per request. A record larger than the limit fails the job.
- ``assemble_with`` Line: each response is split at newlines into output records, written one
  per line; None: responses are written as they are, back to back.
- ``join_source`` Input (CSV only): each output line is ``<input line>,<output line>``, so a
  response must hold exactly one record per input record.
- ``<relative input path>.out`` per input file under ``output_dir``, written to a temporary
  name and renamed into place, so a failed job never leaves a half-written ``.out`` file.

Input is read line by line and output written as it is produced: memory stays bounded by
one request, whatever the input size. Run a job in a subprocess with
``python -m runtime.transform --request request.json`` (see :func:`main`).

Like the rest of ``runtime``, this module knows the SageMaker job contract only: it imports
nothing from the pipeline packages, the SageMaker SDK or boto3.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import itertools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from runtime.files import atomic_path

__all__ = [
    "AssembleWith",
    "BatchStrategy",
    "FileResult",
    "Handler",
    "JoinSource",
    "SplitType",
    "TransformError",
    "TransformRequest",
    "TransformResult",
    "load_handler",
    "main",
    "run_batch_transform",
]

FAILURE_REASON_ENV = "SM_FAILURE_REASON_FILE"
"""Env var naming the file that receives the failure message (SageMaker's FailureReason)."""
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
"""Env var the inference toolkit reads for the Accept used when a request sends none or */*."""
DEFAULT_ACCEPT = "application/json"
ACCEPT_ANY = "*/*"
CSV = "text/csv"
UTF8_TYPES = ("application/json", CSV)
"""Content types whose request body the toolkit hands to the user's code as ``str``."""
OUTPUT_SUFFIX = ".out"
PASS_THROUGH_FILTER = "$"

USER_FUNCTIONS = ("model_fn", "transform_fn", "input_fn", "predict_fn", "output_fn")
PIPELINE_FUNCTIONS = ("input_fn", "predict_fn", "output_fn")

_module_ids = itertools.count()
"""Numbers the user modules this process imports, so each gets a unique module name."""

HandlerFn = Callable[[bytes, str, str], bytes]
"""What the job calls per request: ``(payload, content_type, accept) -> response body``."""


class SplitType(StrEnum):
    """``TransformInput.SplitType``: how an input object is cut into records."""

    LINE = "Line"
    NONE = "None"


class BatchStrategy(StrEnum):
    """``BatchStrategy``: how many records go into one request."""

    MULTI_RECORD = "MultiRecord"
    SINGLE_RECORD = "SingleRecord"


class AssembleWith(StrEnum):
    """``TransformOutput.AssembleWith``: how responses are put together in the output."""

    LINE = "Line"
    NONE = "None"


class JoinSource(StrEnum):
    """``DataProcessing.JoinSource``: whether output records follow their input record."""

    INPUT = "Input"
    NONE = "None"


class TransformError(Exception):
    """The job failed; the message is its FailureReason (names the file, line and cause)."""


class UserCodeError(Exception):
    """A request failed in the user's module (or could not be handed to it, e.g. bad UTF-8)."""

    def __init__(self, function: str, error: BaseException, location: str | None) -> None:
        where = f" (at {location})" if location else ""
        super().__init__(f"{function} raised {type(error).__name__}: {error}{where}")
        self.function = function
        self.error = error
        self.location = location


# --------------------------------------------------------------------------- handler


def _media_type(value: str) -> str:
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


def _call_user(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a user function like the toolkit: it may take one extra ``context`` argument."""
    try:
        takes = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # builtins without a signature: call as documented
        takes = len(args)
    return fn(*args, None) if takes == len(args) + 1 else fn(*args)


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
        if not accept or accept == ACCEPT_ANY:
            accept = os.environ.get(DEFAULT_ACCEPT_ENV, DEFAULT_ACCEPT)
        body: str | bytes = payload
        if _media_type(content_type) in UTF8_TYPES:
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
        raise TransformError(
            f"{path}: inference program not found; the model's code directory must hold "
            f"{program!r} (SAGEMAKER_PROGRAM)."
        )
    name = f"_sm_user_{Path(program).stem}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TransformError(f"{path}: cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        location = _user_location(error, code_dir)
        where = f" (at {location})" if location else ""
        raise TransformError(
            f"{path}: importing the inference program failed: "
            f"{type(error).__name__}: {error}{where}"
        ) from error
    return module


def _check_functions(module: ModuleType, path: Path) -> None:
    defined = {n for n in USER_FUNCTIONS if callable(getattr(module, n, None))}
    if "model_fn" not in defined:
        raise TransformError(
            f"{path}: defines no model_fn(model_dir); add one that loads the model."
        )
    if "transform_fn" in defined:
        clash = sorted(defined & set(PIPELINE_FUNCTIONS))
        if clash:
            raise TransformError(
                f"{path}: defines transform_fn and {', '.join(clash)}; define either "
                "transform_fn(model, body, content_type, accept) or input_fn/predict_fn/output_fn."
            )
        return
    missing = [n for n in PIPELINE_FUNCTIONS if n not in defined]
    if missing:
        raise TransformError(
            f"{path}: missing {', '.join(missing)}; define input_fn(body, content_type), "
            "predict_fn(data, model) and output_fn(prediction, accept), "
            "or transform_fn(model, body, content_type, accept)."
        )


def load_handler(code_dir: Path, program: str, model_dir: Path) -> Handler:
    """Import ``program`` from ``code_dir`` and load its model with ``model_fn(model_dir)``.

    ``code_dir`` is on ``sys.path`` while the module is imported and its model loaded, so
    sibling modules import. Raises :class:`TransformError` if the program is missing, fails
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
            raise TransformError(
                f"{code_dir / program}: loading the model from {model_dir} failed: {failure}"
            ) from error
    finally:
        sys.path.remove(entry)
    return Handler(module, model, program, code_dir)


# --------------------------------------------------------------------------- job


def _enum_field(enum: type[StrEnum], name: str, value: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise ValueError(f"{name}={value!r} is not valid; use one of {allowed}.") from None


@dataclass(frozen=True)
class TransformRequest:
    """One transform job: its input files (already local) and the CreateTransformJob knobs.

    ``input_files`` are the S3 objects of the input, each under ``input_root`` (their path
    relative to it names the output). ``handler`` answers one request (see :data:`HandlerFn`);
    usually the result of :func:`load_handler`. The remaining fields mirror
    CreateTransformJob: ContentType, Accept, SplitType, BatchStrategy, MaxPayloadInMB (here in
    bytes), AssembleWith, JoinSource, InputFilter and OutputFilter (only ``"$"`` or None).
    """

    input_files: list[Path]
    input_root: Path
    output_dir: Path
    handler: HandlerFn
    content_type: str
    accept: str
    split_type: SplitType
    batch_strategy: BatchStrategy
    max_payload_bytes: int
    assemble_with: AssembleWith
    join_source: JoinSource
    input_filter: str | None = None
    output_filter: str | None = None

    def __post_init__(self) -> None:
        for name, enum in (
            ("split_type", SplitType),
            ("batch_strategy", BatchStrategy),
            ("assemble_with", AssembleWith),
            ("join_source", JoinSource),
        ):
            object.__setattr__(self, name, _enum_field(enum, name, getattr(self, name)))
        for name in ("input_filter", "output_filter"):
            value = getattr(self, name)
            if value not in (None, PASS_THROUGH_FILTER):
                raise NotImplementedError(
                    f"{name}={value!r}: the local transform runtime supports only "
                    f"{PASS_THROUGH_FILTER!r} or None; drop the filter or run on SageMaker."
                )
        if not isinstance(self.max_payload_bytes, int) or self.max_payload_bytes <= 0:
            raise ValueError(
                f"max_payload_bytes={self.max_payload_bytes!r}: must be a positive number of "
                "bytes (MaxPayloadInMB * 1024 * 1024)."
            )
        if not callable(self.handler):
            raise ValueError(f"handler={self.handler!r}: must be callable(payload, ct, accept).")
        if self.join_source is JoinSource.INPUT:
            if _media_type(self.content_type) != CSV:
                raise NotImplementedError(
                    f"join_source='Input' with content_type={self.content_type!r}: the local "
                    f"runtime joins {CSV} only."
                )
            if self.split_type is not SplitType.LINE or self.assemble_with is not AssembleWith.LINE:
                raise NotImplementedError(
                    "join_source='Input' needs split_type='Line' and assemble_with='Line' in the "
                    "local runtime (one output line per input line)."
                )
        root = Path(self.input_root).resolve()
        for path in self.input_files:
            if not Path(path).resolve().is_relative_to(root):
                raise ValueError(
                    f"input file {path} is not under input_root {self.input_root}; every input "
                    "file must sit under the root so its output keeps its relative path."
                )

    def output_path(self, input_file: Path) -> Path:
        """``<output_dir>/<input path relative to input_root>.out``."""
        relative = Path(input_file).resolve().relative_to(Path(self.input_root).resolve())
        return Path(self.output_dir) / relative.parent / (relative.name + OUTPUT_SUFFIX)


@dataclass(frozen=True)
class FileResult:
    """What one input file produced. With assemble_with None, records_out counts responses."""

    input_file: Path
    output_file: Path
    records_in: int
    records_out: int
    batches: int


@dataclass(frozen=True)
class TransformResult:
    """Per-file results of a finished job, in input order."""

    files: tuple[FileResult, ...] = field(default_factory=tuple)

    @property
    def records_in(self) -> int:
        return sum(f.records_in for f in self.files)

    @property
    def records_out(self) -> int:
        return sum(f.records_out for f in self.files)

    @property
    def batches(self) -> int:
        return sum(f.batches for f in self.files)

    @property
    def output_paths(self) -> list[Path]:
        return [f.output_file for f in self.files]

    def summary(self) -> str:
        """One line for logs."""
        return (
            f"transform: {len(self.files)} file(s), {self.records_in} record(s) in, "
            f"{self.records_out} record(s) out, {self.batches} request(s)"
        )


@dataclass(frozen=True)
class _Batch:
    first_line: int
    records: list[bytes]  # line endings stripped

    def payload(self) -> bytes:
        """The request body: the records, each newline-terminated."""
        return b"\n".join(self.records) + b"\n"


def _records(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``(line number, record)`` per non-blank line, line endings stripped (streaming)."""
    for number, raw in enumerate(stream, start=1):
        record = raw.rstrip(b"\r\n")
        if record and not record.isspace():
            yield number, record


def _batches(stream: BinaryIO, path: Path, strategy: BatchStrategy, limit: int) -> Iterator[_Batch]:
    """Pack records into requests of at most ``limit`` bytes (one record for SingleRecord)."""
    records: list[bytes] = []
    first_line = size = 0
    for number, record in _records(stream):
        record_size = len(record) + 1
        if record_size > limit:
            raise TransformError(
                f"{path}: line {number} is {record_size} bytes, larger than the payload limit "
                f"of {limit} bytes (MaxPayloadInMB); raise the limit or shorten the record."
            )
        full = strategy is BatchStrategy.SINGLE_RECORD or size + record_size > limit
        if records and full:
            yield _Batch(first_line, records)
            records, size = [], 0
        if not records:
            first_line = number
        records.append(record)
        size += record_size
    if records:
        yield _Batch(first_line, records)


def _response_records(response: bytes) -> list[bytes]:
    """Split a response at newlines; one trailing newline ends the last record."""
    if response.endswith(b"\n"):
        response = response[:-1]
    return [r.rstrip(b"\r") for r in response.split(b"\n")] if response else []


def _invoke(request: TransformRequest, payload: bytes, path: Path, first_line: int) -> bytes:
    try:
        return request.handler(payload, request.content_type, request.accept)
    except UserCodeError as error:
        raise TransformError(
            f"{path}: the request starting at line {first_line} failed in the inference "
            f"code: {error}"
        ) from error.error


def _write_response(
    request: TransformRequest, out: BinaryIO, response: bytes, batch: _Batch, path: Path
) -> int:
    """Write one response; return the number of output records it held."""
    if request.assemble_with is AssembleWith.NONE:
        out.write(response)
        return 1
    outputs = _response_records(response)
    if request.join_source is JoinSource.INPUT:
        if len(outputs) != len(batch.records):
            raise TransformError(
                f"{path}: the request starting at line {batch.first_line} sent "
                f"{len(batch.records)} record(s) but the response held {len(outputs)}; with "
                "join_source='Input' the inference code must return exactly one line per "
                "input line."
            )
        for record, output in zip(batch.records, outputs, strict=True):
            out.write(record)  # separate writes: no per-record copies
            out.write(b",")
            out.write(output)
            out.write(b"\n")
    else:
        for output in outputs:
            out.write(output)
            out.write(b"\n")
    return len(outputs)


def _transform_stream(
    request: TransformRequest, source: BinaryIO, out: BinaryIO, path: Path
) -> tuple[int, int, int]:
    records_in = records_out = batches = 0
    if request.split_type is SplitType.NONE:
        size = os.fstat(source.fileno()).st_size
        if size > request.max_payload_bytes:
            raise TransformError(
                f"{path}: is {size} bytes, larger than the payload limit of "
                f"{request.max_payload_bytes} bytes (MaxPayloadInMB) for split_type='None'; "
                "use split_type='Line' or raise the limit."
            )
        batch = _Batch(1, [])
        response = _invoke(request, source.read(), path, 1)
        return 1, _write_response(request, out, response, batch, path), 1
    for batch in _batches(source, path, request.batch_strategy, request.max_payload_bytes):
        response = _invoke(request, batch.payload(), path, batch.first_line)
        records_out += _write_response(request, out, response, batch, path)
        records_in += len(batch.records)
        batches += 1
    return records_in, records_out, batches


def _transform_file(request: TransformRequest, path: Path) -> FileResult:
    target = request.output_path(path)
    with atomic_path(target) as partial, partial.open("wb") as out, path.open("rb") as source:
        counts = _transform_stream(request, source, out, path)
    return FileResult(path, target, *counts)


def run_batch_transform(request: TransformRequest) -> TransformResult:
    """Run the job over every input file; raise :class:`TransformError` on the first failure.

    Outputs of files finished before a failure stay in place (as objects already uploaded
    by a failing SageMaker job do); the failing file leaves no output behind.
    """
    for path in request.input_files:
        if not Path(path).is_file():
            raise TransformError(f"{path}: input file not found.")
    return TransformResult(tuple(_transform_file(request, Path(p)) for p in request.input_files))


# --------------------------------------------------------------------------- CLI

REQUEST_KEYS = frozenset(
    {
        "model_dir", "code_dir", "program", "input_files", "input_root", "output_dir",
        "content_type", "accept", "split_type", "batch_strategy", "max_payload_bytes",
        "assemble_with", "join_source",
    }
)  # fmt: skip
OPTIONAL_REQUEST_KEYS = frozenset({"input_filter", "output_filter"})


def _read_request_json(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TransformError(f"{path}: cannot read the transform request: {error}") from error
    if not isinstance(spec, dict):
        raise TransformError(f"{path}: the transform request must be a JSON object.")
    missing = sorted(REQUEST_KEYS - spec.keys())
    unknown = sorted(spec.keys() - REQUEST_KEYS - OPTIONAL_REQUEST_KEYS)
    if missing or unknown:
        raise TransformError(
            f"{path}: missing key(s) {missing}, unknown key(s) {unknown}; expected "
            f"{sorted(REQUEST_KEYS)} (optional: {sorted(OPTIONAL_REQUEST_KEYS)})."
        )
    return spec


def request_from_json(path: Path) -> TransformRequest:
    """Build a request (loading the user's module and model) from a request.json file."""
    spec = _read_request_json(path)
    handler = load_handler(Path(spec["code_dir"]), spec["program"], Path(spec["model_dir"]))
    try:
        return TransformRequest(
            input_files=[Path(p) for p in spec["input_files"]],
            input_root=Path(spec["input_root"]),
            output_dir=Path(spec["output_dir"]),
            handler=handler,
            content_type=spec["content_type"],
            accept=spec["accept"],
            split_type=spec["split_type"],
            batch_strategy=spec["batch_strategy"],
            max_payload_bytes=spec["max_payload_bytes"],
            assemble_with=spec["assemble_with"],
            join_source=spec["join_source"],
            input_filter=spec.get("input_filter"),
            output_filter=spec.get("output_filter"),
        )
    except (TypeError, ValueError, NotImplementedError) as error:
        raise TransformError(f"{path}: invalid transform request: {error}") from error


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runtime.transform --request request.json``: run one job.

    Prints a one-line summary and returns 0; on failure prints ``ERROR: <message>`` to
    stderr, writes the message to ``$SM_FAILURE_REASON_FILE`` when set and returns 2.
    """
    parser = argparse.ArgumentParser(prog="python -m runtime.transform", description=__doc__)
    parser.add_argument("--request", type=Path, required=True, help="request.json of the job")
    args = parser.parse_args(argv)
    try:
        result = run_batch_transform(request_from_json(args.request))
    except TransformError as error:
        message = str(error)
        print(f"ERROR: {message}", file=sys.stderr)
        reason_file = os.environ.get(FAILURE_REASON_ENV)
        if reason_file:
            Path(reason_file).write_text(message, encoding="utf-8")
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
