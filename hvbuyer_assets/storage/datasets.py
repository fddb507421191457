"""A stored parquet value is one file or, when an engine's executors wrote it (Spark), a directory of part files.

A directory value (``<layer>/<asset>.parquet/`` or ``<layer>/<asset>/<drop>.parquet/``) holds the executors'
``part-*.parquet`` files (read in name order: a sorted write's ranges in order) and ``SCHEMA_FILE``, a rowless
parquet file with the value's Arrow schema and its metadata (pandas index and dtypes, a state's drops), written by
the driver when it commits the directory. Readers cast the parts to that schema (int64 ns -> ``timestamp[ns, UTC]``,
``string`` -> ``large_string``): the same table as the single file the embedded engine writes. Files whose name
starts with ``_`` or ``.`` (``_SUCCESS``, checksums, ``SCHEMA_FILE``) are not data, for pyarrow as for Spark.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from upath import UPath

from hvbuyer_assets.storage.location import arrow_location

SCHEMA_FILE = "_hvbuyer_schema"  # in a directory value: its schema and metadata, no rows


def _where(path: UPath, endpoint_url: str | None) -> tuple[pafs.FileSystem, str]:
    fs, where = arrow_location(path, endpoint_url)
    return fs or pafs.LocalFileSystem(), where


def is_directory(path: UPath, endpoint_url: str | None = None) -> bool:
    """Whether the stored value at ``path`` is a directory of part files."""
    fs, where = _where(path, endpoint_url)
    return fs.get_file_info(where).type == pafs.FileType.Directory


def part_files(fs: pafs.FileSystem, where: str) -> list[str]:
    """The data files of a directory value, in name order."""
    infos = fs.get_file_info(pafs.FileSelector(where))
    names = [i.path for i in infos if i.type == pafs.FileType.File and not i.base_name.startswith(("_", "."))]
    return sorted(names)


def stored_schema(path: UPath, endpoint_url: str | None = None) -> pa.Schema:
    """The Arrow schema (with its metadata) of a stored parquet value, from a footer only."""
    fs, where = _where(path, endpoint_url)
    if fs.get_file_info(where).type == pafs.FileType.Directory:
        return pq.read_schema(f"{where}/{SCHEMA_FILE}", filesystem=fs)
    return pq.read_schema(where, filesystem=fs)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Parts as the value's schema: its column order, types and metadata."""
    names = [f.name for f in schema if f.name in table.schema.names]
    wanted = pa.schema([schema.field(n) for n in names], metadata=schema.metadata)
    return table.select(names).cast(wanted).replace_schema_metadata(schema.metadata)


def read_value(path: UPath, columns: Iterable[str] | None = None, endpoint_url: str | None = None) -> pa.Table:
    """A stored parquet value (file or directory) as one Arrow table, ``columns`` only when given."""
    fs, where = _where(path, endpoint_url)
    wanted = list(columns) if columns is not None else None
    if fs.get_file_info(where).type != pafs.FileType.Directory:
        return pq.read_table(where, filesystem=fs, columns=wanted)
    schema = pq.read_schema(f"{where}/{SCHEMA_FILE}", filesystem=fs)
    parts = part_files(fs, where)
    if not parts:
        table = schema.empty_table()
        return table.select(wanted) if wanted is not None else table
    return _conform(pads.dataset(parts, format="parquet", filesystem=fs).to_table(columns=wanted), schema)


def value_rows(path: UPath, endpoint_url: str | None = None) -> int:
    """Rows of a stored parquet value, from its footers."""
    fs, where = _where(path, endpoint_url)
    if fs.get_file_info(where).type != pafs.FileType.Directory:
        return pq.ParquetFile(where, filesystem=fs).metadata.num_rows
    return sum(pq.ParquetFile(p, filesystem=fs).metadata.num_rows for p in part_files(fs, where))


def value_batches(path: UPath, rows: int, endpoint_url: str | None = None) -> Iterator[pa.Table]:
    """A stored parquet value at most ``rows`` rows at a time, each as the value's schema (with its metadata)."""
    fs, where = _where(path, endpoint_url)
    directory = fs.get_file_info(where).type == pafs.FileType.Directory
    schema = stored_schema(path, endpoint_url)
    files = part_files(fs, where) if directory else [where]
    for file in files:
        for batch in pq.ParquetFile(file, filesystem=fs).iter_batches(batch_size=rows):
            yield _conform(pa.Table.from_batches([batch]), schema)


def replace_path(source: str, target: str) -> None:
    """Move local ``source`` (a file or a directory) to ``target``, in place of what is there. A file over a file is
    one rename; a directory (or over one) takes two: what was there is renamed aside, ``source`` into place, then
    the old one deleted (a reader between the two renames finds nothing; a failed write never gets here)."""
    if not (os.path.isdir(source) or os.path.isdir(target)) or not os.path.lexists(target):
        os.replace(source, target)
        return
    head, name = os.path.split(target)
    aside = os.path.join(head, f".{name}.{uuid.uuid4().hex}.tmp")
    os.replace(target, aside)
    os.replace(source, target)
    remove_path(aside)


def remove_path(path: str) -> None:
    """Delete a local file or directory; nothing if absent."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)
