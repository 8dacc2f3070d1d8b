"""Reading a CSV file or a request body, and writing the canonical files jobs exchange.

One parser for every job (pandas' CSV reader, pyarrow engine when installed, C engine
otherwise; both give the same result with these options), one set of rules:

* UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8"); other encodings are refused
  with the byte offset. Line endings LF, CRLF or CR.
* RFC 4180 quoting: ``"`` around a field, ``""`` for a quote inside it. A field may not hold a
  line break: batch transform cuts its input at line breaks, so such a record could not be
  scored. Blank lines are skipped.
* Every value is read as text; :mod:`tabular.values` decides what it means. Column names lose
  surrounding whitespace, must be unique and non-empty, with two exceptions that are dropped:
  trailing unnamed columns that are empty in every row (a trailing delimiter on every line)
  and an unnamed first column of distinct integers (an index saved by pandas' ``to_csv``).
* Every record has as many fields as the header; a record that does not is refused with its
  line number.

Rows are indexed by ``(file, line)`` (:func:`tabular.errors.row_index`) so every message can
name the line.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .dialect import WHITESPACE, Dialect, other_delimiters
from .errors import DataError, describe_row, row_index
from .names import CSV_SUFFIX
from .values import FLOAT32_MAX

QUOTE = '"'
LINE_BREAK = r"[\r\n]"
_LINE_BREAK = re.compile(LINE_BREAK)
BYTE_ORDER_MARKS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
REQUEST = "request"
"""The ``file`` of a request body's rows."""

logger = logging.getLogger(__name__)

# Python's csv module refuses a field longer than csv.field_size_limit() (128 KiB by default)
# with csv.Error, where pyarrow and pandas read it: a long free-text value is data, so the
# record checks here read it too (a column of such values is then refused or dropped by the
# config's own rules, with a message that says so).
csv.field_size_limit(2**31 - 1)


def csv_engine() -> str:
    """Return "pyarrow" (multi-threaded) when pyarrow is importable, else "c"."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return "c"
    return "pyarrow"


def list_csv_files(input_path: Path) -> list[Path]:
    """Return the CSV files to read: ``input_path`` itself or every ``*.csv`` below it."""
    if input_path.is_file():
        return [input_path]
    if not input_path.is_dir():
        raise DataError(
            f"{input_path}: input path does not exist. Point the processing input at "
            "the S3 prefix or file holding the CSV data."
        )
    files = sorted(
        (p for p in input_path.rglob("*") if p.is_file()),
        key=lambda p: p.relative_to(input_path).as_posix(),
    )
    csv_files = [p for p in files if p.suffix.lower() == CSV_SUFFIX]
    if not csv_files:
        found = ", ".join(p.relative_to(input_path).as_posix() for p in files[:10])
        raise DataError(
            f"{input_path}: no {CSV_SUFFIX} file found (files: [{found}]). Put the data "
            f"in files ending in {CSV_SUFFIX} under the input prefix."
        )
    return csv_files


def check_utf8(path: Path, chunk_size: int = 1 << 20) -> int:
    """Raise DataError (byte offset, line) unless ``path`` is UTF-8; return its LF count."""
    with path.open("rb") as handle:
        start = handle.read(4)
    for bom, name in BYTE_ORDER_MARKS.items():
        if start.startswith(bom):
            raise DataError(
                f'{path.name}: the file is {name} encoded (Excel\'s "Unicode Text" export); '
                'export it as "CSV UTF-8" instead.'
            )
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    newlines = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                buffer = pending + chunk
                bad = offset - len(pending) + exc.start
                line = newlines + buffer[: exc.start].count(b"\n") + 1
                raise DataError(
                    f"{path.name}: byte 0x{buffer[exc.start]:02x} at byte offset {bad} "
                    f"(line {line}) is not valid UTF-8. Re-export the file with UTF-8 "
                    'encoding (Excel: "CSV UTF-8").'
                ) from None
            if not chunk:
                return newlines
            offset += len(chunk)
            newlines += chunk.count(b"\n")


def first_record(path: Path, dialect: Dialect) -> list[str] | None:
    """The first non-blank record of ``path`` (fields as written), or None if there is none."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for record in csv.reader(handle, delimiter=dialect.delimiter):
            if record:
                return record
    return None


def check_delimiter(source: str, record: Sequence[str], dialect: Dialect) -> None:
    """Refuse a one-field first record that another delimiter would split (a wrong dialect)."""
    if len(record) != 1:
        return
    for other in other_delimiters(dialect.delimiter):
        fields = record[0].split(other)
        if len(fields) > 1:
            decimal = (
                " Numbers with decimal commas need data.decimal: ','."
                if other == ";" and dialect.decimal == "."
                else ""
            )
            raise DataError(
                f"{source}: line 1 is one field {record[0][:80]!r} with data.delimiter "
                f"{dialect.delimiter!r}, but it splits into {len(fields)} fields at {other!r}. "
                f"Set data.delimiter: {other!r} in the config.{decimal}"
            )


def check_column_names(source: str, names: Sequence[str]) -> None:
    """Raise DataError for duplicate or empty column names."""
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DataError(
            f"{source}: duplicate column names {duplicates} (surrounding spaces are not part "
            "of a name). Rename the columns so that every name is unique."
        )
    blank = [i + 1 for i, n in enumerate(names) if not n]
    if blank:
        raise DataError(
            f"{source}: column(s) {blank} have an empty name. Name every column (an "
            "unnamed first column is usually a saved index: export with index=False)."
        )


def _find_ragged_row(path: Path, dialect: Dialect, expected: int) -> tuple[int, int] | None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=dialect.delimiter)
        for record in reader:
            if record and len(record) != expected:
                return reader.line_num, len(record)
    return None


def _raise_if_ragged(path: Path, dialect: Dialect, expected: int) -> None:
    ragged = _find_ragged_row(path, dialect, expected)
    if ragged is not None:
        line, fields = ragged
        raise DataError(
            f"{path.name}: line {line} has {fields} fields but the header has {expected}. "
            "Fix that row (quote values holding the delimiter) or remove it."
        )


def _record_lines(path: Path, dialect: Dialect) -> list[int]:
    """The line on which each non-blank record of ``path`` starts (the slow, exact way)."""
    lines = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=dialect.delimiter)
        previous = 0
        for record in reader:
            if record:
                lines.append(previous + 1)
            previous = reader.line_num
    return lines


def header_names(record: Sequence[str]) -> list[str]:
    """The column names a header record gives, as :func:`read_csv_file` keeps them.

    Surrounding whitespace removed, trailing unnamed columns and an unnamed first column
    (a saved index) left out.
    """
    names, trailing = _names_from_header(record)
    names = names[: len(names) - trailing]
    return names[1:] if names and not names[0] else names


def _names_from_header(record: Sequence[str]) -> tuple[list[str], int]:
    """Column names of a header record, and how many trailing unnamed columns it has."""
    names = [field.strip(WHITESPACE) for field in record]
    trailing = 0
    while trailing < len(names) - 1 and not names[len(names) - 1 - trailing]:
        trailing += 1
    return names, trailing


def _drop_trailing(frame: pd.DataFrame, source: str, trailing: int) -> pd.DataFrame:
    """Drop trailing unnamed columns that are empty in every row (a trailing delimiter)."""
    if not trailing:
        return frame
    extra = frame.iloc[:, -trailing:]
    filled = extra.notna() & (extra.apply(lambda c: c.str.strip(WHITESPACE)) != "")
    if bool(filled.to_numpy().any()):
        column, row = np.argwhere(filled.to_numpy().T)[0]
        raise DataError(
            f"{source}: column {frame.shape[1] - trailing + column + 1} has no name but "
            f"{describe_row(frame.index[row])} holds {extra.iat[row, column]!r}. Name the "
            "column in the header row."
        )
    return frame.iloc[:, : frame.shape[1] - trailing]


def _drop_saved_index(frame: pd.DataFrame, source: str, names: list[str]) -> pd.DataFrame:
    """Drop an unnamed first column of distinct integers: an index saved by pandas."""
    if names[0] or len(names) < 2:
        return frame
    first = frame.iloc[:, 0].str.strip(WHITESPACE)
    numbers = pd.to_numeric(first, errors="coerce")
    if numbers.notna().all() and (numbers == np.round(numbers)).all() and numbers.is_unique:
        logger.warning(
            "%s: dropped the unnamed first column (an index saved with the data, values %s..)",
            source,
            ", ".join(first.iloc[:3]),
        )
        return frame.iloc[:, 1:]
    return frame


def _check_line_breaks(frame: pd.DataFrame, names: Sequence[object]) -> None:
    for position, name in enumerate(names):
        column = frame.iloc[:, position]
        if not isinstance(column.dtype, pd.StringDtype | np.dtypes.ObjectDType):
            continue  # parsed as numbers
        breaks = np.asarray(column.str.contains(LINE_BREAK, regex=True, na=False), bool)
        if breaks.any():
            row = int(np.flatnonzero(breaks)[0])
            raise _line_break(frame.index[row], name, column.iloc[row])


def _line_break(row: object, name: object, value: str) -> DataError:
    return DataError(
        f"{describe_row(row)}: column {name!r} holds a line break inside "
        f"a quoted value ({value[:40]!r}). Batch scoring splits records "
        "at line breaks, so remove line breaks from values in the source."
    )


def _read(
    source: Path | io.StringIO, dialect: Dialect, width: int, header: bool, engine: str
) -> pd.DataFrame:
    """Every field as text, empty fields NaN; columns named by position (names come later)."""
    return pd.read_csv(
        source,
        sep=dialect.delimiter,
        quotechar=QUOTE,
        dtype="string[pyarrow]" if engine == "pyarrow" else str,
        engine=engine,
        header=0 if header else None,
        names=[f"c{i}" for i in range(width)],
        keep_default_na=False,
        na_values=[""],
        **({"encoding": "utf-8-sig"} if isinstance(source, Path) else {}),
    )


@dataclass(frozen=True)
class _Layout:
    """What the first record of a file says about its columns."""

    names: list[str]
    """One name per field ("" for an unnamed one)."""
    trailing: int
    """Trailing unnamed fields, dropped when empty in every row."""
    header: bool


def _layout(path: Path, dialect: Dialect, columns: Sequence[str] | None) -> _Layout:
    """Check the file as a whole (size, encoding, first record) and name its fields."""
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: file is empty. Remove it or export the data again.")
    check_utf8(path)
    first = first_record(path, dialect)
    if first is None:
        raise DataError(
            f"{path.name}: file has no records (only blank lines). Remove it or export "
            "the data again."
        )
    check_delimiter(path.name, first, dialect)
    trailing = 0
    if columns is None:
        names, trailing = _names_from_header(first)
        named = names[: len(names) - trailing]
        # An unnamed first column may be a saved index, dropped once its values are known.
        check_column_names(path.name, named if named[0] else named[1:])
    else:
        names = list(columns)
        stripped = [field.strip(WHITESPACE) for field in first]
        if stripped[: len(names)] == names:
            raise DataError(
                f"{path.name}: line 1 repeats the data.columns names, so the file has a "
                "header row. Remove data.columns from the config for files with a header."
            )
        trailing = len(first) - len(names)
        if trailing < 0 or any(f.strip(WHITESPACE) for f in first[len(names) :]):
            raise DataError(
                f"{path.name}: data.columns names {len(names)} columns but line 1 has "
                f"{len(first)} fields. Give one name per field in data.columns."
            )
        names += [""] * trailing
    return _Layout(names, trailing, columns is None)


def read_csv_file(
    path: Path, dialect: Dialect, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read one CSV file as text (missing fields NaN); the index is ``(file, line)``.

    ``columns`` names the columns of a file without a header row. With pyarrow this is
    :func:`read_chunks` put together; without it, pandas' C engine reads the file at once.
    """
    if csv_engine() == "pyarrow":
        return pd.concat(list(read_chunks(path, dialect, columns)))
    layout = _layout(path, dialect, columns)
    names, trailing = layout.names, layout.trailing
    try:
        frame = _read(path, dialect, len(names), layout.header, "c")
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path.name}: file is empty. Remove it or export the data again."
        ) from None
    except (pd.errors.ParserError, ValueError) as exc:
        _raise_if_ragged(path, dialect, len(names))
        raise DataError(
            f"{path.name}: could not be parsed as CSV ({exc}). Check delimiters and "
            f"quoting; the file must be {dialect.delimiter!r}-separated with double-quoted text."
        ) from None
    _raise_if_ragged(path, dialect, len(names))  # the C engine silently pads short rows
    if frame.empty:
        raise DataError(
            f"{path.name}: file has a header row but no data rows. Export the data "
            "again with its rows."
        )
    frame.index = row_index(path.name, _record_lines(path, dialect)[int(layout.header) :])
    _check_line_breaks(frame, names)
    frame = _drop_trailing(frame, path.name, trailing)
    frame.columns = names[: len(names) - trailing]
    if columns is None:
        frame = _drop_saved_index(frame, path.name, list(frame.columns))
        check_column_names(path.name, list(frame.columns))
    return frame


DEFAULT_BLOCK_SIZE = 2 << 20
"""Bytes of CSV text per chunk of :func:`read_chunks` (about 37k rows of 12 columns). A
Preprocess chunk is held in a few typed copies at once while it is written, so a smaller chunk
lowers the peak (8, 4 and 2 MiB compared in README "Sizing a run"; those figures included the
bench's own high-water mark) for a little more CPU per row."""
READ_BLOCK_SIZE = 64 << 10
"""Bytes pyarrow's streaming reader parses at a time; a chunk is put together from several.

The reader reads ahead in the background, a few dozen blocks whatever the consumer takes: at
2 MiB blocks its memory pool peaked at 68 MiB over a 51 MiB file (the whole file read ahead)
and the process's RSS rose 119 MiB; at 64 KiB blocks, 9 MiB and 28 MiB, for 0.05 s more of
reading (1M rows, 12 columns). A record longer than a block is read again with larger blocks
(up to the chunk size, as before)."""


def read_chunks(
    path: Path,
    dialect: Dialect,
    columns: Sequence[str] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    numbers: Sequence[str] = (),
    maybe_numbers: Sequence[str] = (),
) -> Iterator[pd.DataFrame]:
    """Read one CSV file as text in chunks of about ``block_size`` bytes, by the same rules
    as :func:`read_csv_file`: each chunk's index is ``(file, line)``, its columns the file's.

    pyarrow's streaming reader (``pyarrow.csv.open_csv``, every column typed as text) parses
    :data:`READ_BLOCK_SIZE` bytes at a time, so memory does not grow with the file. Checks
    that need the whole file run first: its encoding, its first record, and whether an
    unnamed first column is a saved index (read alone).

    ``numbers`` names columns known to hold only numbers as written (checked on an earlier
    read): with a plain dialect (``.`` decimals, no thousands separator) pyarrow parses them
    as float64 as it reads (the parser :func:`tabular.values.parse_numbers` uses), the
    dialect's missing values as nulls (so not in a file with trailing unnamed columns when
    there are missing values besides the empty field: see below).

    ``maybe_numbers`` names columns that may hold only numbers (a first read, before the types
    are known): parsed the same way while every field of theirs is a number XGBoost can hold
    or one of the missing values as written. A column found to hold anything else (pyarrow
    refuses the field, or reads a number the rules do not take as written:
    :func:`_not_as_written`) is read as text from the rows it was found in on,
    as every such column is once the first chunk has been yielded (the file is then read
    again from its start up to those rows, once). A chunk's column is float64 only when all
    of its fields are such numbers.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    layout, drop_index, single = _whole_file(path, dialect, columns)
    names, trailing = layout.names, layout.trailing
    kept = names[: len(names) - trailing]
    lines = None if single else _record_line_numbers(path, dialect, layout.header)
    fields = [f"c{i}" for i in range(len(names))]
    # A typed read makes the missing values nulls in every column, a trailing unnamed one too,
    # which is dropped only when empty as written ("NA" there is refused): such files are read
    # as text.
    typed = dialect.is_plain and not (trailing and len(dialect.missing_values) > 1)
    parsed = {f"c{kept.index(n)}" for n in numbers} if typed else set()
    trying = {f"c{kept.index(n)}" for n in maybe_numbers} - parsed if typed else set()
    missing_numbers = _missing_numbers(dialect) if trying else []
    read_block = min(block_size, READ_BLOCK_SIZE)
    open_reader = lambda: pa_csv.open_csv(  # noqa: E731 - parse errors are raised below
        path,
        read_options=pa_csv.ReadOptions(
            column_names=fields, skip_rows=int(layout.header), block_size=read_block
        ),
        parse_options=pa_csv.ParseOptions(delimiter=dialect.delimiter, quote_char=QUOTE),
        convert_options=pa_csv.ConvertOptions(
            column_types={
                f: pa.float64() if f in parsed or f in trying else pa.string() for f in fields
            },
            null_values=list(dialect.missing_values) if parsed or trying else [""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    text = pd.StringDtype("pyarrow")

    def chunk(batches: list[Any], start: int) -> pd.DataFrame:
        table = pa.Table.from_batches(batches).combine_chunks()
        frame = table.to_pandas(types_mapper={pa.string(): text}.get)
        positions = np.arange(start, start + len(frame))
        at = lines[positions] if lines is not None else positions + int(layout.header) + 1
        frame.index = row_index(path.name, at)
        if lines is not None:  # else no value holds a line break (_one_record_per_line)
            _check_line_breaks(frame, names)
        frame = _drop_trailing(frame, path.name, trailing)
        frame.columns = kept
        return frame.iloc[:, 1:] if drop_index else frame

    start = 0  # rows yielded
    skip = 0  # rows to pass over after reading again with larger blocks
    group: list[Any] = []
    reader = None
    while True:
        try:
            reader = reader or open_reader()
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            if "straddl" in str(exc) and read_block < block_size:  # a record over a block
                read_block = min(4 * read_block, block_size)
                reader, group, skip = None, [], start
                continue
            if trying and "CSV conversion error" in str(exc):  # read again, as text
                failed = _conversion_column(exc, fields)  # that column (every one if unnamed)
                first = start == 0 and failed in trying
                trying.difference_update({failed} if first else set(trying))
                reader, group, skip = None, [], start
                continue
            _raise_if_ragged(path, dialect, len(names))
            raise DataError(
                f"{path.name}: could not be parsed as CSV ({exc}). Check delimiters and "
                "quoting; the file must be "
                f"{dialect.delimiter!r}-separated with double-quoted text."
            ) from None
        if skip:
            passed = min(skip, batch.num_rows)
            batch, skip = batch.slice(passed), skip - passed
        if batch.num_rows == 0:
            continue
        unread = [f for f in trying if _not_as_written(batch.column(f), missing_numbers)]
        if unread:  # e.g. "inf", "1e39", " -999" with -999 missing (tabular.values)
            trying.difference_update(unread if start == 0 else set(trying))
            reader, group, skip = None, [], start
            continue
        group.append(batch)
        if len(group) * read_block >= block_size:
            frame = chunk(group, start)
            start, group = start + len(frame), []
            yield frame
    if group:
        frame = chunk(group, start)
        start += len(frame)
        yield frame
    if start == 0:
        raise DataError(
            f"{path.name}: file has a header row but no data rows. Export the data "
            "again with its rows."
        )


CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error")
"""pyarrow's conversion error; its serial reader (one CPU, as OMP_NUM_THREADS=1 makes it)
names the row too."""


def _conversion_column(error: Exception, fields: Sequence[str]) -> str | None:
    """The field a pyarrow conversion error names, if it names one."""
    found = CONVERSION_ERROR.search(str(error))
    return fields[int(found.group(1))] if found and int(found.group(1)) < len(fields) else None


def _missing_numbers(dialect: Dialect) -> list[float]:
    """The dialect's missing values that pyarrow reads as numbers (``-999``, ``0``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = []
    for value in dialect.missing_values:
        with contextlib.suppress(pa.ArrowInvalid):  # not a number
            numbers.append(pc.cast(pa.array([value]), pa.float64())[0].as_py())
    return [n for n in numbers if n is not None]


def _not_as_written(column: Any, missing_numbers: Sequence[float]) -> bool:
    """Whether pyarrow read a number in ``column`` that the rules (:mod:`tabular.values`)
    do not read as that number: infinite or NaN (``inf``, ``1e999``), beyond float32 (a
    number XGBoost cannot hold, refused with the field as written), or equal to a missing
    value that is a number (pyarrow trims the spaces and tabs around a number, not those
    around a missing value: `` -999`` is -999 to it, missing to the rules; ``-999.0``, a
    number to both, is then read as text too)."""
    import pyarrow.compute as pc

    bad = pc.invert(pc.less_equal(pc.abs(column), FLOAT32_MAX))  # NaN too: it compares false
    for number in missing_numbers:
        bad = pc.or_(bad, pc.equal(column, number))
    return pc.any(bad).as_py() is True


def column_names(path: Path, dialect: Dialect, columns: Sequence[str] | None = None) -> list[str]:
    """The columns :func:`read_chunks` gives ``path`` (its checks of the whole file made)."""
    layout, drop_index, _ = _whole_file(path, dialect, columns)
    kept = layout.names[: len(layout.names) - layout.trailing]
    return kept[1:] if drop_index else kept


_WHOLE_FILE: dict[tuple[Any, ...], tuple[_Layout, bool, bool]] = {}


def _whole_file(
    path: Path, dialect: Dialect, columns: Sequence[str] | None
) -> tuple[_Layout, bool, bool]:
    """The checks :func:`read_chunks` makes of a file as a whole: its layout, whether its
    unnamed first column is a saved index, whether it has one record per line.

    Made once per file while it is unchanged (same inode, size and modification time), so a
    second read of the same input (Preprocess reads it twice) does not scan it again (about
    0.3 s of 8 at 1M rows).
    """
    stat = path.stat()
    key = (
        str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, dialect,
        None if columns is None else tuple(columns),
    )  # fmt: skip
    if key not in _WHOLE_FILE:
        layout = _layout(path, dialect, columns)
        kept = layout.names[: len(layout.names) - layout.trailing]
        drop_index = columns is None and not kept[0] and _is_saved_index(path, dialect, layout)
        if columns is None and not kept[0] and not drop_index:
            check_column_names(path.name, kept)  # the unnamed first column is refused
        _WHOLE_FILE[key] = (layout, drop_index, _one_record_per_line(path))
    return _WHOLE_FILE[key]


def _is_saved_index(path: Path, dialect: Dialect, layout: _Layout) -> bool:
    """Whether the unnamed first column holds distinct integers (an index saved by pandas)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    fields = [f"c{i}" for i in range(len(layout.names))]
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=fields, skip_rows=1),
            parse_options=pa_csv.ParseOptions(delimiter=dialect.delimiter, quote_char=QUOTE),
            convert_options=pa_csv.ConvertOptions(
                include_columns=[fields[0]], column_types={fields[0]: pa.string()}
            ),
        )
    except pa.ArrowInvalid:
        _raise_if_ragged(path, dialect, len(layout.names))
        raise
    first = pd.Series(table.column(0).to_pandas(), dtype=object)
    frame = pd.DataFrame({"": first, "next": first})
    return _drop_saved_index(frame, path.name, ["", "next"]).shape[1] == 1


def _record_line_numbers(path: Path, dialect: Dialect, header: bool) -> np.ndarray:
    """The line each data record starts on, for a file without one record per line
    (:func:`_one_record_per_line`: else record ``i`` is on line ``i + header + 1``).

    Such files (blank lines, CR endings, a record over several lines) are counted record by
    record, with the csv module.
    """
    return np.asarray(_record_lines(path, dialect)[int(header) :], dtype="int64")


def _one_record_per_line(path: Path, chunk_size: int = 1 << 20) -> bool:
    """No blank line before the end, no lone CR, no quoted line break (a byte scan).

    Such a file has record ``i`` on line ``i + 1`` (after a header) and no value holding a
    line break, so neither needs to be checked record by record.
    """
    with path.open("rb") as handle:
        if handle.read(4).removeprefix(codecs.BOM_UTF8)[:1] in (b"\n", b"\r"):
            return False
        handle.seek(0)
        partial = b""
        while chunk := handle.read(chunk_size):
            data = partial + chunk
            cut = data.rfind(b"\n") + 1
            lines, partial = data[:cut], data[cut:]
            if not _single_lines(lines if handle.peek(1) else data.rstrip(b"\r\n")):
                return False
        return _single_lines(partial.rstrip(b"\r\n"))


def _single_lines(data: bytes) -> bool:
    """Whole lines with one record each: no blank line, no lone CR, even quotes per line."""
    if b"\n\n" in data or b"\n\r\n" in data or data.count(b"\r") != data.count(b"\r\n"):
        return False
    return b'"' not in data or not any(line.count(b'"') % 2 for line in data.split(b"\n"))


def check_field_counts(
    text: str, expected: int | None = None
) -> tuple[int, list[int], list[list[str]]]:
    """The field count of a body's records, the line of each and its fields (as written);
    refuse a record without that count.

    ``expected`` defaults to the field count of the first record. Blank lines are skipped;
    the body must hold at least one record.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    lines: list[int] = []
    records: list[list[str]] = []
    previous = 0
    for record in reader:
        if record:
            if expected is None:
                expected = len(record)
            if len(record) != expected:
                raise DataError(
                    f"{REQUEST} line {reader.line_num}: {len(record)} field(s), expected "
                    f"{expected} (the model's feature columns, no target, no header)."
                )
            lines.append(previous + 1)
            records.append(record)
        previous = reader.line_num
    if not lines or expected is None:
        raise DataError("request body has no CSV records; send one record per line.")
    return expected, lines, records


FEW_RECORDS = 1000
"""Up to this many records, a request is read and encoded a record at a time: pandas' and
scikit-learn's cost per call outweighs their speed per value below it."""


def parse_records(text: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Parse a header-less body of canonical CSV records into text columns named ``columns``.

    Without ``columns`` the fields are named ``0..n-1`` after the first record. The rows are
    indexed by ``("request", line)``; a field is its text, or NaN when empty. A few records
    are taken as the csv module split them (the fields pandas' reader gives, quoted ones
    included, held as ``str`` objects: tests/unit/scripts pins it); more are read by pandas.
    """
    fields, lines, records = check_field_counts(text, None if columns is None else len(columns))
    names = list(columns) if columns is not None else list(range(fields))
    frame = None
    if len(records) > FEW_RECORDS:
        frame = _read(io.StringIO(text), Dialect(), fields, header=False, engine="c")
    if frame is None or len(frame) != len(records):  # pandas skips a line of spaces alone
        if QUOTE in text:  # only a quoted value can hold a line break
            for line, record in zip(lines, records, strict=True):
                for name, field in zip(names, record, strict=True):
                    if _LINE_BREAK.search(field):
                        raise _line_break((REQUEST, line), name, field)
        values = np.empty((len(records), fields), dtype=object)
        values[:] = [[field or np.nan for field in record] for record in records]
        frame = pd.DataFrame(  # one object block, as from the rows' lists (about 5x cheaper)
            values,
            index=row_index(REQUEST, lines),
            columns=pd.Index(names, dtype=object),
            dtype=object,
            copy=False,
        )
    else:
        frame.index = row_index(REQUEST, lines)
        frame.columns = names
        if QUOTE in text:
            _check_line_breaks(frame, names)
    return frame


def write_csv(frame: pd.DataFrame, path: Path, header: bool) -> None:
    """Write ``frame`` in the canonical dialect: ``,``, ``.`` decimals, empty = missing, LF.

    Floats are written in their shortest round-trip form, so a reader gets the same number.
    Fields are quoted where needed (header names always, with pyarrow's writer). A record
    whose only field is missing is written as ``""``, not as a blank line.
    """
    if len(frame.columns) > 1:
        try:
            import pyarrow as pa
            import pyarrow.csv as pa_csv
        except ImportError:
            pass
        else:  # about ten times faster than pandas' writer
            table = pa.Table.from_pandas(frame, preserve_index=False)
            options = pa_csv.WriteOptions(include_header=header, quoting_style="needed")
            pa_csv.write_csv(table, path, options)
            return
    frame.to_csv(path, index=False, header=header, na_rep="", lineterminator="\n", encoding="utf-8")
