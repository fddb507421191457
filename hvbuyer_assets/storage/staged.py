"""A parquet file written a chunk (row group) at a time into a local temporary file, then either committed to its
place in one step or discarded: what lets a step that streams its output still replace nothing when it is refused.

Committing is atomic as every write of ``storage.files``: locally a rename on the same filesystem (the temporary
file is made beside the target), on an object store one upload of the finished file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from hvbuyer_assets.storage.datasets import SCHEMA_FILE, remove_path, replace_path
from hvbuyer_assets.storage.files import atomic_write, temporary_path
from hvbuyer_assets.storage.location import arrow_location, is_local, location


class StagedParquet:
    """Tables appended with :meth:`write` (each one row group, or one per part between its ``cuts``), read back
    with :meth:`read` (by the order they were written; an empty one comes back empty) until
    :meth:`commit` moves the file to its target or :meth:`discard` deletes it. ``path``: the temporary file (beside
    the target for an atomic rename: ``storage.files.temporary_path``); None: one in the system's temporary
    folder."""

    def __init__(self, path: str | None = None, schema: pa.Schema | None = None) -> None:
        if path is None:
            handle, path = tempfile.mkstemp(prefix=".staged-", suffix=".parquet.tmp")
            os.close(handle)
        else:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        self.schema = schema
        self.rows = 0
        self.row_groups = 0
        self._groups: list[list[int]] = []  # per table written: its row groups (none: it had no rows)
        self._writer: pq.ParquetWriter | None = None
        self._closed = False
        self._reader: pq.ParquetFile | None = None

    def write(self, table: pa.Table, cuts: Sequence[int] = ()) -> None:
        """Append ``table`` as one row group, or one per part between the row offsets ``cuts`` (ascending, inside
        the table), cast to the schema: the one given, else the first table's."""
        if self._closed:
            raise ValueError("the staged file is finished: nothing more can be written")
        if self._writer is None:
            self.schema = self.schema or table.schema
            self._writer = pq.ParquetWriter(self.path, self.schema)
        table = table.select(self.schema.names).cast(self.schema)
        bounds = [0, *cuts, table.num_rows]
        groups = []
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            if stop > start:
                self._writer.write_table(table.slice(start, stop - start), row_group_size=stop - start)
                groups.append(self.row_groups)
                self.row_groups += 1
        self._groups.append(groups)
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish the file (an empty one holds ``schema`` and no rows); nothing if finished already."""
        if self._closed:
            return
        if self._writer is None:
            if self.schema is None:
                raise ValueError("nothing was written and no schema was given")
            self._writer = pq.ParquetWriter(self.path, self.schema)
        self._writer.close()
        self._closed = True

    def read(self, index: int, columns: list[str] | None = None) -> pa.Table:
        """The ``index``-th table written (the file is finished on first use: read after the last write)."""
        if self._reader is None:
            self.close()
            self._reader = pq.ParquetFile(self.path)
        groups = self._groups[index]
        if not groups:
            assert self.schema is not None
            empty = self.schema.empty_table()
            return empty.select(columns) if columns is not None else empty
        return self._reader.read_row_groups(groups, columns=columns)

    def commit(self, target: UPath, endpoint_url: str | None = None) -> None:
        """Move the finished file to ``target``, replacing what is there (a file in one step, or a directory value
        the Spark engine wrote: ``replace_path``)."""
        self.close()
        if is_local(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_path(self.path, target.path)
            return
        fs, where = arrow_location(target, endpoint_url)
        assert fs is not None
        with open(self.path, "rb") as source, fs.open_output_stream(where) as sink:
            while block := source.read(8 << 20):
                sink.write(block)
        self.discard()

    def discard(self) -> None:
        """Delete the temporary file (nothing if it was committed)."""
        if self._writer is not None and not self._closed:
            self._writer.close()
            self._closed = True
        self._reader = None
        Path(self.path).unlink(missing_ok=True)


class StagedTable:
    """A stored parquet value (``target``: a whole asset's file or one drop's) staged before it replaces what is
    there, in one of two ways:

    - :meth:`put`: an Arrow table in this process, written as one file at :meth:`commit` (atomic:
      ``storage.files.write_table``);
    - :meth:`directory` then :meth:`written`: a temporary directory beside ``target``, filled by an engine's
      executors with part files; :meth:`commit` adds the value's schema (``storage.datasets.SCHEMA_FILE``) and
      renames the directory into place, so the parts never pass through this process.

    Until :meth:`commit`, nothing stored is replaced; :meth:`discard` deletes what was staged (after a commit,
    nothing). Executors write local paths only: on an object store the directory is refused (docs/engines.md).
    """

    def __init__(self, target: str, endpoint_url: str | None = None) -> None:
        self.target = location(target, endpoint_url)
        self.endpoint_url = endpoint_url
        self.rows: int | None = None
        self.schema: pa.Schema | None = None
        self._table: pa.Table | None = None
        self._directory: str | None = None

    def put(self, table: pa.Table) -> None:
        """Stage ``table`` itself (written at commit)."""
        self._table, self.rows, self.schema = table, table.num_rows, table.schema

    def directory(self) -> str:
        """A new local directory beside ``target`` (not created: the writer creates it) for the executors' part
        files; ValueError on an object store."""
        if not is_local(self.target):
            raise ValueError(
                f"{self.target}: executors write a stored value as local part files, renamed into place; an object "
                "store needs a committer of its own (docs/engines.md, what a real cluster needs)"
            )
        if self._directory is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._directory = temporary_path(self.target).path
        return self._directory

    def written(self, rows: int, schema: pa.Schema) -> None:
        """The executors wrote ``rows`` rows into :meth:`directory`; ``schema``: the value's (readers cast the
        parts to it)."""
        if self._directory is None or not os.path.isdir(self._directory):
            raise ValueError(f"{self.target}: nothing was written into the staged directory")
        self.rows, self.schema = rows, schema

    def commit(self, metadata: dict[str, str] | None = None) -> None:
        """Store the staged value at ``target`` in place of what is there, ``metadata`` added to its schema."""
        if self.schema is None:
            raise ValueError(f"{self.target}: nothing staged to commit")
        metadata = {**(self.schema.metadata or {}), **{k.encode(): v.encode() for k, v in (metadata or {}).items()}}
        self.schema = self.schema.with_metadata(metadata)
        if self._table is not None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            table = self._table.replace_schema_metadata(metadata)
            fs, _ = arrow_location(self.target, self.endpoint_url)
            atomic_write(self.target, lambda where: pq.write_table(table, where, filesystem=fs))
            self._table = None
            return
        assert self._directory is not None
        pq.write_metadata(self.schema, os.path.join(self._directory, SCHEMA_FILE))
        replace_path(self._directory, self.target.path)
        self._directory = None

    def discard(self) -> None:
        """Forget the staged value; a staged directory is deleted."""
        self._table = None
        if self._directory is not None:
            remove_path(self._directory)
            self._directory = None
