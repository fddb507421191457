"""The embedded engine: the stored clean tables read as Arrow tables on native Arrow paths (a local folder or s3://
through ``storage.arrow_location``), only the columns the declaration needs, and the declaration run in-process
on polars (``core.engine``)."""

from __future__ import annotations

from collections.abc import Sequence

import narwhals as nw
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core import engine, feature_defs
from hvbuyer_assets.core.sampling import TrainingSample
from hvbuyer_assets.engines.interface import (
    CUSTOMERS,
    TRANSACTIONS,
    Engine,
    StoredTable,
    as_of,
    input_asset,
    input_columns,
    native_pair,
    native_transactions,
)
from hvbuyer_assets.settings import Settings
from hvbuyer_assets.storage.catalog import StoredAsset
from hvbuyer_assets.storage.partitions import read_partitions, read_partitions_after
from hvbuyer_assets.storage.staged import StagedTable


class EmbeddedEngine(Engine):
    """Arrow tables and polars in this process (``HVBUYER_ENGINE=embedded``, the default)."""

    name = "embedded"

    def __init__(self, s3_endpoint_url: str | None = None, training_sample: TrainingSample | None = None) -> None:
        self.s3_endpoint_url = s3_endpoint_url
        self.training_sample = training_sample

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedEngine:
        return cls(settings.s3_endpoint_url, settings.training_sample())

    def __repr__(self) -> str:
        return f"EmbeddedEngine(s3_endpoint_url={self.s3_endpoint_url!r})"

    def read(self, asset: StoredAsset, files: Sequence[str]) -> StoredTable:
        columns = [stored for _, stored, _ in input_columns(asset.name)]
        try:
            table = asset.read_drops(files, columns, self.s3_endpoint_url)
        except (KeyError, pa.ArrowInvalid) as exc:
            raise ValueError(f"{files[0]}: cannot read columns {', '.join(columns)}: {exc}") from exc
        return StoredTable(asset.name, self, table)

    def frames(self, transactions: StoredTable, customers: StoredTable) -> engine.Frames:
        return engine.from_arrow(*native_pair(transactions, customers))  # ids encoded across both

    def latest_time(self, transactions: StoredTable) -> pd.Timestamp:
        ts = pl.from_arrow(engine.timestamps_as_ns(native_transactions(transactions).column("timestamp"))).alias("ts")
        return as_of(feature_defs.latest(nw.from_native(ts.to_frame().lazy())).to_native().collect().to_arrow())

    def rows_between(self, transactions: StoredTable, start_ns: int, end_ns: int) -> StoredTable:
        native = native_transactions(transactions)
        ts = engine.timestamps_as_ns(native.column("timestamp"))
        inside = pc.and_(pc.greater(ts, start_ns), pc.less_equal(ts, end_ns))
        return StoredTable(transactions.asset, self, native.filter(inside))

    def read_between(self, files: Sequence[str], start_ns: int, end_ns: int) -> StoredTable:
        columns = [stored for _, stored, _ in input_columns(TRANSACTIONS)]
        table = read_partitions_after(files, columns, "timestamp", start_ns, self.s3_endpoint_url, until_ns=end_ns)
        return self.rows_between(StoredTable(TRANSACTIONS, self, table), start_ns, end_ns)

    def stage_latest_customers(self, files: Sequence[str], staged: StagedTable) -> int:
        table = self.read(input_asset(CUSTOMERS), files).native.replace_schema_metadata(None)
        staged.put(table)
        return table.num_rows

    def keyed_transactions(self, files: Sequence[str], after_ns: int | None = None) -> nw.LazyFrame:
        columns = [stored for _, stored, _ in input_columns(TRANSACTIONS)]
        if after_ns is None:
            return engine.keyed_transactions(input_asset(TRANSACTIONS).read_drops(files, columns, self.s3_endpoint_url))
        return engine.keyed_transactions(
            read_partitions_after(files, columns, "timestamp", after_ns, self.s3_endpoint_url)
        )

    def keyed_customers(self, files: Sequence[str]) -> nw.LazyFrame:
        return engine.keyed_customers(self.read(input_asset(CUSTOMERS), files).native)

    def read_states(self, files: Sequence[str]) -> nw.LazyFrame:
        return engine.keyed_state(read_partitions(files, endpoint_url=self.s3_endpoint_url))

    def collect(self, lazy: nw.LazyFrame) -> pa.Table:
        return engine.collect_keyed(lazy)
