"""Raw-file contract: column lists and readers that turn a raw drop file into an all-string Arrow table.

The readers never interpret values (that is cleaning's job). They only check that a file *can* be read and has
every contract column, and raise :class:`ContractViolation` (naming the file and the problem) otherwise.
Every contract column comes back as ``pa.string()`` (null where a row has no value), extra columns are
dropped, and two lineage columns are added: ``source_file`` (the ``name`` given) and ``source_row``
(1-based data row: CSV data row / JSON record number).

The ``iter_*`` readers give a file as tables of about ``chunk_bytes`` of its text each (CSV and JSON Lines are
parsed a chunk at a time; a JSON array is one document, parsed whole), so a reader's memory follows the chunk; a
problem found late (a broken line, a column no record has) raises while iterating. ``read_*`` concatenate them.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import mmap
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

CUSTOMER_COLUMNS: tuple[str, ...] = ("customer_id", "age", "region", "signup_date", "loyalty_points")
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "customer_id",
    "amount",
    "timestamp",
    "payment_method",
    "status",
)

Source = str | os.PathLike[str] | IO[bytes]

CHUNK_BYTES = 64 << 20  # default text per chunk (Settings: HVBUYER_RAW_CHUNK_BYTES)
_JSON_BLOCK_SIZE = 8 << 20  # bytes per pyarrow JSON block: lines longer than this cannot be parsed by pyarrow
_SLOW_PATH_BATCH = 200_000  # records per Arrow batch on the stdlib-json path
_WHITESPACE = b" \t\r\n"
_BOM = codecs.BOM_UTF8


class ContractViolation(Exception):
    """A raw file breaks the contract. ``str(e) == f"{file}: {problem}"``."""

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"{file}: {problem}")
        self.file = file
        self.problem = problem

    def __reduce__(self) -> tuple[type[ContractViolation], tuple[str, str]]:  # picklable across processes
        return (type(self), (self.file, self.problem))


# ----------------------------------------------------------------------------------------------------
# source handling


class _Input:
    """A raw source as either a local path (read lazily) or the bytes of a file object."""

    def __init__(self, source: Source, name: str) -> None:
        self.name = name
        self.path: str | None = None
        self._data: bytes | None = None
        if isinstance(source, str | os.PathLike):
            self.path = os.fspath(source)
            try:
                self.size = os.path.getsize(self.path)
            except OSError as exc:
                raise ContractViolation(name, f"cannot be read ({exc.strerror or exc})") from exc
        else:
            data = source.read()
            self._data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            self.size = len(self._data)

    def arrow_source(self) -> Any:
        """Something pyarrow readers accept (a path or a zero-copy buffer reader)."""
        return self.path if self._data is None else pa.BufferReader(self._data)

    def data(self) -> bytes:
        """The whole content (read from disk on first use for paths)."""
        if self._data is None:
            self._data = Path(str(self.path)).read_bytes()
        return self._data

    def open(self) -> IO[bytes]:
        """A fresh binary stream over the content."""
        return io.BytesIO(self._data) if self._data is not None else open(str(self.path), "rb")  # noqa: SIM115

    def head(self, n: int = 65536) -> bytes:
        if self._data is not None:
            return self._data[:n]
        with open(str(self.path), "rb") as fh:
            return fh.read(n)

    def first_significant_byte(self) -> bytes:
        """First byte that is neither whitespace nor a leading UTF-8 BOM (b"" if there is none)."""
        if self._data is not None:
            return _first_significant(self._data)
        with open(str(self.path), "rb") as fh:
            while chunk := fh.read(1 << 16):
                if found := _first_significant(chunk):
                    return found
        return b""

    def contains(self, needle: bytes) -> bool:
        """Whether the raw bytes contain ``needle`` (mmap search for paths: no full read)."""
        if self._data is not None:
            return needle in self._data
        if self.size == 0:
            return False
        with open(str(self.path), "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return mm.find(needle) != -1


def _first_significant(data: bytes) -> bytes:
    stripped = data.removeprefix(_BOM).lstrip(_WHITESPACE)
    return stripped[:1]


def _finish(table: pa.Table, columns: tuple[str, ...], name: str, rows_before: int = 0) -> pa.Table:
    """Order/cast the contract columns to string and append the lineage columns (rows numbered after
    ``rows_before``, the rows of the file's earlier chunks)."""
    n = table.num_rows
    arrays = [table.column(c).cast(pa.string()) for c in columns]
    arrays.append(pa.repeat(pa.scalar(name, pa.string()), n))
    arrays.append(pa.array(np.arange(rows_before + 1, rows_before + n + 1, dtype=np.int64)))
    return pa.Table.from_arrays(arrays, names=[*columns, "source_file", "source_row"])


def _numbered(tables: Iterator[pa.Table], columns: tuple[str, ...], name: str) -> Iterator[pa.Table]:
    """``_finish`` each chunk, numbering rows across chunks; at least one (maybe empty) table per file."""
    rows = 0
    for table in tables:
        if rows and not table.num_rows:
            continue
        yield _finish(table, columns, name, rows)
        rows += table.num_rows
    if not rows:
        yield _finish(pa.schema([(c, pa.string()) for c in columns]).empty_table(), columns, name)


def _missing_message(missing: list[str], found: list[str] | None = None) -> str:
    msg = f"missing contract column(s): {', '.join(missing)}"
    if found is not None:
        shown = ", ".join(repr(c) for c in found[:12]) + (" ..." if len(found) > 12 else "")
        msg += f" (header has: {shown or 'nothing'})"
    return msg


def raw_to_frame(table: pa.Table, source_files: Sequence[str] | None = None) -> pd.DataFrame:
    """Convert a reader table to pandas with ``string[pyarrow]`` string columns (no object dtype).

    With ``source_files`` (every file name the combined raw frame can hold, in a fixed order), ``source_file``
    becomes a pandas categorical with exactly those categories instead of a string column: 1 byte per row
    instead of ~25 (0.5 GB on 20M rows), and frames of different files built with the same list stay
    categorical through ``pd.concat``. A name missing from ``source_files`` raises ``ValueError``.
    """
    string_dtype = pd.StringDtype("pyarrow")

    def mapper(t: pa.DataType) -> Any:
        return string_dtype if t in (pa.string(), pa.large_string()) else None

    if source_files is None or "source_file" not in table.column_names:
        return table.to_pandas(types_mapper=mapper, split_blocks=True)
    dtype = pd.CategoricalDtype(list(dict.fromkeys(source_files)))
    names = table.column("source_file")
    where = pc.index_in(names, value_set=pa.array(dtype.categories.tolist(), type=pa.string()))
    codes = np.asarray(pc.fill_null(where, -1).to_numpy(), dtype=np.int32)
    if (codes < 0).any():
        unknown = pc.filter(names, pc.is_null(where)).slice(0, 1).to_pylist()
        raise ValueError(f"source_file {unknown[0]!r} is not one of the source_files given")
    at = table.column_names.index("source_file")
    frame = table.drop_columns(["source_file"]).to_pandas(types_mapper=mapper, split_blocks=True)
    frame.insert(at, "source_file", pd.Categorical.from_codes(codes, dtype=dtype))
    return frame


# ----------------------------------------------------------------------------------------------------
# CSV (customers)


def read_customers_file(source: Source, name: str) -> pa.Table:
    """Read a customers CSV (all values as strings). Header-only files are valid and give 0 rows."""
    return read_csv_file(source, name, CUSTOMER_COLUMNS)


def iter_customers_file(source: Source, name: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pa.Table]:
    """:func:`read_customers_file` a chunk at a time."""
    return iter_csv_file(source, name, CUSTOMER_COLUMNS, chunk_bytes)


def read_csv_file(source: Source, name: str, columns: tuple[str, ...]) -> pa.Table:
    """Read a CSV with a header naming at least ``columns`` (all values as strings; other columns dropped).
    Header-only files are valid and give 0 rows."""
    return pa.concat_tables(iter_csv_file(source, name, columns))


def iter_csv_file(
    source: Source, name: str, columns: tuple[str, ...], chunk_bytes: int = CHUNK_BYTES
) -> Iterator[pa.Table]:
    """:func:`read_csv_file` a chunk of about ``chunk_bytes`` at a time (pyarrow's streaming CSV reader). The
    header is checked before the first chunk."""
    src = _Input(source, name)
    if src.size == 0:
        raise ContractViolation(name, "file is empty (0 bytes, no header)")
    _refuse_unreadable_bytes(src)
    header = _csv_header(src.head(), name)
    missing = [c for c in columns if c not in header]
    if missing:
        raise ContractViolation(name, _missing_message(missing, header))
    repeated = sorted({c for c in columns if header.count(c) > 1})
    if repeated:  # which of the two is the real one would be a guess
        raise ContractViolation(name, f"ambiguous header: column(s) {', '.join(repeated)} appear more than once")
    return _numbered(_csv_chunks(src, columns, chunk_bytes), columns, name)


def _csv_header(head: bytes, name: str) -> list[str]:
    text = head.decode("utf-8-sig", errors="replace")
    line = text.splitlines()[0] if text.strip() else ""
    if not line.strip():
        raise ContractViolation(name, "no header line (file is blank)")
    try:
        return next(csv.reader([line]))
    except (csv.Error, StopIteration) as exc:
        raise ContractViolation(name, f"unparseable CSV header: {exc}") from exc


def _csv_chunks(src: _Input, columns: tuple[str, ...], chunk_bytes: int) -> Iterator[pa.Table]:
    bad_rows: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(row)
        return "error"

    try:
        reader = pacsv.open_csv(
            src.arrow_source(),
            # single-threaded: pyarrow then knows a bad row's line number
            read_options=pacsv.ReadOptions(use_threads=False, block_size=max(1, int(chunk_bytes))),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in columns},
                include_columns=list(columns),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        raise ContractViolation(src.name, _csv_problem(exc, bad_rows)) from exc


def _csv_problem(exc: Exception, bad_rows: list[pacsv.InvalidRow]) -> str:
    if bad_rows:
        row = bad_rows[0]
        where = f"line {row.number}" if row.number is not None else "a row"
        text = row.text if len(row.text) <= 80 else row.text[:77] + "..."
        return f"unparseable CSV: {where} has {row.actual_columns} field(s), expected {row.expected_columns} ({text!r})"
    if "invalid UTF8" in str(exc):
        return f"not valid UTF-8 text (the contract's encoding; re-export as UTF-8): {exc}"
    return f"unparseable CSV: {exc}"


# Leading bytes of files that are not plain UTF-8 text: a compressed file under a plain name, or another encoding.
_NOT_PLAIN_TEXT = (
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"PK\x03\x04", "a zip-compressed archive"),
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (codecs.BOM_UTF32_LE, "UTF-32 text"),
    (codecs.BOM_UTF32_BE, "UTF-32 text"),
    (codecs.BOM_UTF16_LE, "UTF-16 text"),
    (codecs.BOM_UTF16_BE, "UTF-16 text"),
)


def _refuse_unreadable_bytes(src: _Input) -> None:
    """Refuse, by its first bytes, a file that is compressed or in another encoding than UTF-8 (never guessed)."""
    head = src.head(8)
    for magic, what in _NOT_PLAIN_TEXT:
        if head.startswith(magic):
            fix = "re-export it as UTF-8" if what.endswith("text") else "decompress it"
            raise ContractViolation(src.name, f"is {what}, not plain UTF-8 text: {fix} before dropping it")


# ----------------------------------------------------------------------------------------------------
# transactions: JSON Lines or JSON array


def read_transactions_file(source: Source, name: str) -> pa.Table:
    """Read a transactions JSON Lines file or JSON array (all values as strings; numbers keep their text)."""
    return pa.concat_tables(iter_transactions_file(source, name))


def iter_transactions_file(source: Source, name: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pa.Table]:
    """:func:`read_transactions_file` a chunk of about ``chunk_bytes`` at a time (JSON Lines; a JSON array is
    parsed whole and given in chunks of records). The checks that need every record raise after the last chunk."""
    src = _Input(source, name)
    if src.size == 0:
        raise ContractViolation(name, "file is empty (0 bytes)")
    _refuse_unreadable_bytes(src)
    first = src.first_significant_byte()
    if not first:
        raise ContractViolation(name, "file contains only whitespace (no JSON records)")
    if first == b"[":
        tables = _read_json_array(src)
    elif first == b"{":
        tables = _read_json_lines(src, chunk_bytes)
    else:
        raise ContractViolation(name, f"not JSON Lines or a JSON array (starts with {first!r})")
    return _numbered(_checked_records(tables, src), TRANSACTION_COLUMNS, name)


def _checked_records(tables: Iterator[pa.Table], src: _Input) -> Iterator[pa.Table]:
    """The chunks as they are, then the checks over every record: some contract field at the top level, and every
    contract key in some record."""
    rows, present = 0, dict.fromkeys(TRANSACTION_COLUMNS, False)
    for table in tables:
        rows += table.num_rows
        for c in TRANSACTION_COLUMNS:
            present[c] = present[c] or table.column(c).null_count < table.num_rows
        yield table
    if rows > 0 and not any(present.values()):
        # e.g. one object wrapping the records ({"transactions": [...]}): unwrapping it would guess the structure
        raise ContractViolation(
            src.name,
            "not rows of transactions: no record has any contract field at its top level (a wrapping object?)",
        )
    if rows > 0:
        # a column that is null in every row may be absent from the file: look for its key in the raw bytes
        missing = [c for c, seen in present.items() if not seen and not src.contains(json.dumps(c).encode())]
        if missing:
            raise ContractViolation(src.name, _missing_message(missing) + " (no record has the key)")


_SCHEMA = pa.schema([(c, pa.string()) for c in TRANSACTION_COLUMNS])


def _pyarrow_json(source: Any) -> pa.Table:
    return pajson.read_json(
        source,
        read_options=pajson.ReadOptions(block_size=_JSON_BLOCK_SIZE),
        parse_options=pajson.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore"),
    )


# A contract key followed by a bare JSON number/boolean; RE2 (no look-ahead), so the delimiter is group 3.
_KEYS = "|".join(re.escape(json.dumps(c)) for c in TRANSACTION_COLUMNS)
_SCALAR_VALUE = rf"((?:{_KEYS})\s*:\s*)(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|true|false)(\s*[,}}])"


def _read_json_lines(src: _Input, chunk_bytes: int) -> Iterator[pa.Table]:
    """Chunk by chunk: pyarrow (fast path); if that fails, numbers/booleans of contract keys quoted and re-parsed
    by pyarrow (and so for the rest of the file: mixed types seldom come alone), and only a chunk that still fails
    goes through stdlib json, which either reads it (nested values, a BOM, ...) or names the broken line."""
    lines_before, quote = 0, False
    for chunk in _line_chunks(src, chunk_bytes):
        try:
            if not quote:
                try:
                    yield _pyarrow_json(pa.BufferReader(chunk))
                    continue
                except pa.ArrowInvalid:
                    quote = True
            yield _quoted_json(chunk)
        except pa.ArrowInvalid:
            yield _json_lines_stdlib(chunk, lines_before, src.name)
        finally:
            lines_before += chunk.obj.count(b"\n", 0, len(chunk))


def _line_chunks(src: _Input, chunk_bytes: int) -> Iterator[memoryview]:
    """The content in pieces of about ``chunk_bytes`` bytes, each ending at a line end (except the last): views of
    a buffer the file is read into (one copy of each byte, not three)."""
    size = max(1, min(int(chunk_bytes), src.size))  # no buffer larger than the file
    with src.open() as fh:
        rest = b""
        while True:
            block = bytearray(len(rest) + size)
            block[: len(rest)] = rest
            read = fh.readinto(memoryview(block)[len(rest) :])
            if not read:
                break
            end = len(rest) + read
            cut = block.rfind(b"\n", 0, end) + 1
            if cut == 0:
                rest = bytes(block[:end])
                continue
            rest = bytes(block[cut:end])
            yield memoryview(block)[:cut]
        if rest:
            yield memoryview(rest)


def _quoted_json(chunk: bytes | memoryview) -> pa.Table:
    """Parse JSON Lines after turning bare numbers/booleans of contract keys into strings (original text kept).

    The rewrite runs in Arrow (RE2) on the lines viewed as a binary array: no per-line Python.
    """
    nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
    ends = nl + 1 if nl.size and nl[-1] == len(chunk) - 1 else np.append(nl + 1, len(chunk))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    lines = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(chunk)]
    )
    quoted = pc.replace_substring_regex(lines, _SCALAR_VALUE, r'\1"\2"\3')
    used = int(np.frombuffer(quoted.buffers()[1], dtype=np.int64)[quoted.offset + len(quoted)])
    return _pyarrow_json(pa.BufferReader(quoted.buffers()[2].slice(0, used)))


def _json_lines_stdlib(chunk: bytes | memoryview, lines_before: int, name: str) -> pa.Table:
    batches: list[pa.RecordBatch] = []
    records: list[dict[str, Any]] = []
    for lineno, raw_line in enumerate(io.BytesIO(chunk), start=lines_before + 1):
        line = raw_line.removeprefix(_BOM) if lineno == 1 else raw_line
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ContractViolation(name, f"line {lineno}: {_json_problem(exc, line)}") from exc
        except RecursionError:  # the stdlib decoder recurses once per level
            raise ContractViolation(name, f"line {lineno}: {_TOO_DEEP}") from None
        if not isinstance(obj, dict):
            raise ContractViolation(name, f"line {lineno}: not a JSON object ({type(obj).__name__})")
        records.append(obj)
        if len(records) >= _SLOW_PATH_BATCH:
            batches.append(_records_to_batch(records, name))
            records = []
    batches.append(_records_to_batch(records, name))
    return pa.Table.from_batches(batches, schema=_SCHEMA)


# A record is flat (the contract's fields are scalars); stdlib json gives up past the interpreter's recursion limit.
_TOO_DEEP = (
    f"JSON nested more than ~{sys.getrecursionlimit():,} levels deep: not rows of transactions "
    "(a record's fields are plain values)"
)


def _json_problem(exc: Exception, line: bytes) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8"
    truncated = " (truncated record?)" if not line.rstrip().endswith(b"}") else ""
    return f"invalid JSON: {exc}{truncated}"


def _read_json_array(src: _Input) -> Iterator[pa.Table]:
    try:
        doc = json.loads(src.data())
    except json.JSONDecodeError as exc:
        truncated = " (file truncated?)" if exc.pos >= len(src.data().rstrip()) else ""
        raise ContractViolation(src.name, f"invalid JSON at line {exc.lineno}: {exc.msg}{truncated}") from exc
    except UnicodeDecodeError as exc:
        raise ContractViolation(src.name, f"invalid UTF-8 at byte {exc.start}") from exc
    except RecursionError:
        raise ContractViolation(src.name, _TOO_DEEP) from None
    if not isinstance(doc, list):
        raise ContractViolation(src.name, "JSON document is not an array of records")
    for i, obj in enumerate(doc, start=1):
        if not isinstance(obj, dict):
            raise ContractViolation(src.name, f"array element {i} is not a JSON object ({type(obj).__name__})")
    for i in range(0, len(doc), _SLOW_PATH_BATCH):
        yield pa.Table.from_batches([_records_to_batch(doc[i : i + _SLOW_PATH_BATCH], src.name)], schema=_SCHEMA)


def _records_to_batch(records: list[dict[str, Any]], name: str) -> pa.RecordBatch:
    try:  # a nested value is kept as its JSON text: re-encoding it recurses too
        columns = [pa.array(_as_strings(rec.get(c) for rec in records), type=pa.string()) for c in TRANSACTION_COLUMNS]
    except RecursionError:
        raise ContractViolation(name, _TOO_DEEP) from None
    return pa.RecordBatch.from_arrays(columns, schema=_SCHEMA)


def _as_strings(values: Iterator[Any]) -> list[str | None]:
    """JSON values as their text: strings unchanged, numbers/booleans/objects as JSON, null as None."""
    return [v if isinstance(v, str) or v is None else json.dumps(v) for v in values]
