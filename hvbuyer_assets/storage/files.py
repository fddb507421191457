"""Stored values by suffix: ``.parquet`` (DataFrames), ``.json`` (dicts/lists), ``.joblib`` (anything else).

Writes are atomic: locally a temporary file renamed into place, so a reader never sees a half-written file;
object stores replace a key atomically when the upload completes. Parquet goes through native Arrow paths only
(see :func:`hvbuyer_assets.storage.location.arrow_location`). A stored parquet value may also be a directory of
part files written by an engine's executors (``storage.datasets``): every reader here reads both the same way.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import joblib
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from hvbuyer_assets.storage.datasets import read_value, replace_path, stored_schema, value_batches, value_rows
from hvbuyer_assets.storage.location import arrow_location, is_local


def _string_types(arrow_type: pa.DataType) -> pd.StringDtype | None:
    # Strings come back as string[pyarrow]: a 20M-row id column as Python objects would cost ~1 GB more.
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """A stored table as pandas, text as ``string[pyarrow]``."""
    return table.to_pandas(types_mapper=_string_types)


def read_stored(path: UPath, endpoint_url: str | None = None) -> Any:
    """Read a value written by this module (format from the suffix)."""
    if path.suffix == ".parquet":
        return arrow_to_pandas(read_value(path, endpoint_url=endpoint_url))
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with path.open("rb") as handle:
        return joblib.load(handle)


def parquet_rows(path: UPath, endpoint_url: str | None = None) -> int:
    """Rows of a stored parquet value, from its footers (nothing else is read)."""
    return value_rows(path, endpoint_url)


def parquet_batches(path: UPath, rows: int, endpoint_url: str | None = None) -> Iterator[pd.DataFrame]:
    """A stored DataFrame ``rows`` at a time, each chunk as :func:`read_stored` gives the whole (its index and
    dtypes): memory follows one chunk, not the file."""
    for batch in value_batches(path, rows, endpoint_url):  # with the pandas metadata that restores the index
        yield arrow_to_pandas(batch)


def write_parquet(path: UPath, frame: pd.DataFrame, endpoint_url: str | None, preserve_index: bool) -> None:
    """Write a DataFrame as parquet atomically, through a native Arrow location."""
    table = pa.Table.from_pandas(frame, preserve_index=preserve_index)
    fs, _ = arrow_location(path, endpoint_url)
    atomic_write(path, lambda target: pq.write_table(table, target, filesystem=fs))


def write_table(path: UPath, table: pa.Table, endpoint_url: str | None, metadata: dict[str, str]) -> None:
    """Write an Arrow table as parquet atomically, with ``metadata`` in its schema (read back by
    :func:`read_table_metadata` from the footer alone)."""
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    fs, _ = arrow_location(path, endpoint_url)
    atomic_write(path, lambda target: pq.write_table(table, target, filesystem=fs))


def read_table_metadata(path: UPath, key: str, endpoint_url: str | None = None) -> str | None:
    """The schema metadata ``key`` of a parquet file written by :func:`write_table` (its footer only); None when
    the file or the key is absent."""
    try:
        schema = stored_schema(path, endpoint_url)
    except FileNotFoundError:
        return None
    value = (schema.metadata or {}).get(key.encode())
    return None if value is None else value.decode()


def write_json(path: UPath, value: dict[str, Any] | list[Any]) -> None:
    """Write a JSON document atomically (indented; non-JSON values such as timestamps as strings)."""
    payload = json.dumps(value, indent=2, default=str).encode()
    atomic_write(path, lambda target: _write_bytes(path, target, payload))


def write_joblib(path: UPath, value: Any) -> None:
    """Write any picklable value (a fitted model) with joblib, atomically."""
    sink = io.BytesIO()
    joblib.dump(value, sink)
    atomic_write(path, lambda target: _write_bytes(path, target, sink.getvalue()))


def write_bytes(path: UPath, payload: bytes) -> None:
    """Write bytes atomically."""
    atomic_write(path, lambda target: _write_bytes(path, target, payload))


def _write_bytes(path: UPath, target: str, payload: bytes) -> None:
    if is_local(path):
        with open(target, "wb") as sink:
            sink.write(payload)
    else:
        path.write_bytes(payload)


# The name of a local write in progress (hidden, unique per write): what a process killed mid-write leaves behind.
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{32}\.tmp")


def temporary_path(path: UPath) -> UPath:
    """Where :func:`atomic_write` writes ``path`` before renaming it into place (matches ``TEMPORARY_NAME``)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def atomic_write(path: UPath, write: Callable[[str], object]) -> None:
    """Call ``write(target)``: locally ``target`` is a temporary file renamed into place afterwards, so readers
    never see a half-written file; on an object store ``target`` is the key itself."""
    if not is_local(path):
        write(path.path)
        return
    tmp = temporary_path(path)
    try:
        write(tmp.path)
        replace_path(tmp.path, path.path)  # over a directory value too (storage.datasets)
    finally:
        tmp.unlink(missing_ok=True)
