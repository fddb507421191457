"""A drop's stored raw table as its cleaning reads it: a row group (a chunk of the raw step) at a time, and whole
id columns for the lookups in earlier drops."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hvbuyer_assets.core.contract import raw_to_frame
from hvbuyer_assets.core.sources import distinct_ids
from hvbuyer_assets.storage import arrow_location, location
from hvbuyer_assets.storage.catalog import StoredAsset


class Store(Protocol):
    """Where the data dir is (the pipeline's IO manager)."""

    base_uri: str
    s3_endpoint_url: str | None


class StoredRaw:
    """The stored raw table of ``asset`` for drop ``partition`` (written by its raw step)."""

    def __init__(self, store: Store, asset: StoredAsset, partition: str) -> None:
        path = location(asset.drop_path(store.base_uri, partition), store.s3_endpoint_url)
        if not path.exists():
            raise FileNotFoundError(
                f"{asset.name} of drop {partition} is not stored ({path}): materialize {asset.name} for that drop first"
            )
        fs, where = arrow_location(path, store.s3_endpoint_url)
        self._file = pq.ParquetFile(fs.open_input_file(where) if fs else where)
        names = self._file.read(columns=["source_file"]).column("source_file")
        self.files = [str(v) for v in pc.unique(names.cast(pa.string())).drop_null().to_pylist()]

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The row groups as raw frames (``source_file`` a categorical over the drop's files); at least one."""
        groups = self._file.num_row_groups
        for index in range(max(groups, 1)):
            table = self._file.read_row_group(index) if groups else self._file.schema_arrow.empty_table()
            table = table.set_column(
                table.schema.get_field_index("source_file"),
                "source_file",
                table.column("source_file").cast(pa.string()),
            )
            yield raw_to_frame(table, source_files=self.files)

    def ids(self, column: str) -> pa.Array:
        """The distinct non-missing ids of a raw column over the whole drop, as cleaning reads them."""
        return distinct_ids(self._file.read(columns=[column]).column(column).cast(pa.string()))
