"""A parquet file written a chunk (row group) at a time into a local temporary file, then either committed to its
place in one step or discarded: what lets a step that streams its output still replace nothing when it is refused.

Committing is atomic as every write of ``storage.files``: locally a rename on the same filesystem (the temporary
file is made beside the target), on an object store one upload of the finished file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from hvbuyer_assets.storage.location import arrow_location, is_local


class StagedParquet:
    """Tables appended with :meth:`write` (each one row group), read back with :meth:`read` (by the order they were
    written; an empty one comes back empty) until
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
        self._groups: list[int | None] = []  # per table written: its row group (None: it had no rows)
        self._writer: pq.ParquetWriter | None = None
        self._closed = False
        self._reader: pq.ParquetFile | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table`` as one row group (cast to the schema: the one given, else the first table's)."""
        if self._closed:
            raise ValueError("the staged file is finished: nothing more can be written")
        if self._writer is None:
            self.schema = self.schema or table.schema
            self._writer = pq.ParquetWriter(self.path, self.schema)
        if not table.num_rows:
            self._groups.append(None)
            return
        self._writer.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=table.num_rows)
        self._groups.append(self.row_groups)
        self.rows += table.num_rows
        self.row_groups += 1

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
        group = self._groups[index]
        if group is None:
            assert self.schema is not None
            empty = self.schema.empty_table()
            return empty.select(columns) if columns is not None else empty
        return self._reader.read_row_group(group, columns=columns)

    def commit(self, target: UPath, endpoint_url: str | None = None) -> None:
        """Move the finished file to ``target`` (replacing what is there) in one step."""
        self.close()
        if is_local(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path, target.path)
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
