"""Local stand-in for a SageMaker batch transform job served by a framework container.

The serving containers answer each request through the user's inference module (the
:mod:`runtime.serving.handler`, loaded once per job). Batch transform feeds that server the
objects of the job's input, as configured by ``TransformInput`` (SplitType),
``BatchStrategy``/``MaxPayloadInMB``, ``TransformOutput`` (Accept, AssembleWith) and
``DataProcessing`` (JoinSource, InputFilter, OutputFilter).

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
``python -m runtime.serving.batch --request request.json`` (see :func:`main`).

Like the rest of ``runtime``, this module knows the SageMaker job contract only: it imports
nothing from the pipeline packages, the SageMaker SDK or boto3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from runtime.files import atomic_path
from runtime.serving.handler import HandlerFn, ServingError, UserCodeError, load_handler, media_type
from tabular.contract import (
    CSV,
    FAILURE_REASON_FILE_ENV,
    AssembleWith,
    BatchStrategy,
    JoinSource,
    SplitType,
)

OUTPUT_SUFFIX = ".out"
PASS_THROUGH_FILTER = "$"
SPLIT_TYPES = (SplitType.LINE, SplitType.NONE)
"""The split types this runtime reads (SageMaker also splits RecordIO and TFRecord)."""


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
        if self.split_type not in SPLIT_TYPES:
            raise NotImplementedError(
                f"split_type={self.split_type.value!r}: the local transform runtime splits "
                f"{' and '.join(repr(t.value) for t in SPLIT_TYPES)} only; run on SageMaker."
            )
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
            if media_type(self.content_type) != CSV:
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
            raise ServingError(
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
        raise ServingError(
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
            raise ServingError(
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
            raise ServingError(
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
    """Run the job over every input file; raise :class:`ServingError` on the first failure.

    Outputs of files finished before a failure stay in place (as objects already uploaded
    by a failing SageMaker job do); the failing file leaves no output behind.
    """
    for path in request.input_files:
        if not Path(path).is_file():
            raise ServingError(f"{path}: input file not found.")
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
        raise ServingError(f"{path}: cannot read the transform request: {error}") from error
    if not isinstance(spec, dict):
        raise ServingError(f"{path}: the transform request must be a JSON object.")
    missing = sorted(REQUEST_KEYS - spec.keys())
    unknown = sorted(spec.keys() - REQUEST_KEYS - OPTIONAL_REQUEST_KEYS)
    if missing or unknown:
        raise ServingError(
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
        raise ServingError(f"{path}: invalid transform request: {error}") from error


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runtime.serving.batch --request request.json``: run one job.

    Prints a one-line summary and returns 0; on failure prints ``ERROR: <message>`` to
    stderr, writes the message to ``$SM_FAILURE_REASON_FILE`` when set and returns 2.
    """
    parser = argparse.ArgumentParser(prog="python -m runtime.serving.batch", description=__doc__)
    parser.add_argument("--request", type=Path, required=True, help="request.json of the job")
    args = parser.parse_args(argv)
    try:
        result = run_batch_transform(request_from_json(args.request))
    except ServingError as error:
        message = str(error)
        print(f"ERROR: {message}", file=sys.stderr)
        reason_file = os.environ.get(FAILURE_REASON_FILE_ENV)
        if reason_file:
            Path(reason_file).write_text(message, encoding="utf-8")
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
