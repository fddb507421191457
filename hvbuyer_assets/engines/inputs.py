"""The feature assets' inputs: the stored clean tables, read by the configured engine, as ``core.engine.Frames``.

- ``embedded``: Arrow tables read on native Arrow paths (a local folder or s3:// through
  ``storage.arrow_location``), only the columns the declaration needs, handed to ``core.engine.from_arrow``.
- ``spark``: Spark reads the same files (s3:// as s3a://) into the declaration's input convention
  (``engines.spark``); nothing is read until a result is collected.

Each clean table is one asset read as a ``StoredTable`` (the Dagster input manager of ``defs.engine_inputs``
calls ``read_table`` once per input); ``frames`` puts the two together for ``core.features`` / ``core.training``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import narwhals as nw
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core import engine, feature_defs
from hvbuyer_assets.core.cleaning.history import latest_rows
from hvbuyer_assets.core.features import to_utc
from hvbuyer_assets.engines import spark as spark_engine
from hvbuyer_assets.settings import Settings
from hvbuyer_assets.storage import partition_paths, read_partitions

EngineName = Literal["embedded", "spark"]
TRANSACTIONS, CUSTOMERS = "clean_transactions", "clean_customers"
# The stored columns each clean table contributes (column projection: nothing else is read).
COLUMNS: dict[str, tuple[str, ...]] = {
    TRANSACTIONS: tuple(stored for _, stored, _ in spark_engine.TRANSACTION_COLUMNS),
    CUSTOMERS: tuple(stored for _, stored, _ in spark_engine.CUSTOMER_COLUMNS),
}


@dataclass(frozen=True)
class EngineOptions:
    """Which engine reads and computes, and how (from ``Settings``)."""

    engine: EngineName = "embedded"
    s3_endpoint_url: str | None = None
    spark: spark_engine.SparkOptions = field(default_factory=spark_engine.SparkOptions)

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        return cls(settings.engine, settings.s3_endpoint_url, spark_engine.SparkOptions.from_settings(settings))


@dataclass(frozen=True)
class StoredTable:
    """One stored clean table as the engine sees it: a projected ``pa.Table`` (embedded) or a Spark DataFrame
    in the ``feature_defs`` convention (spark)."""

    asset: str
    engine: EngineName
    native: Any


def stored_files(
    base_uri: str, layer: str, asset: str, drops: Sequence[str], endpoint_url: str | None = None
) -> list[str]:
    """The parquet files of a clean table: one per stored drop, in drop order (``storage.partition_paths``)."""
    return partition_paths(base_uri, layer, asset, drops, endpoint_url)


def read_arrow(files: Sequence[str], columns: Sequence[str], endpoint_url: str | None = None) -> pa.Table:
    """The given columns of parquet files as one Arrow table (rows in the order of ``files``), on native Arrow
    filesystems."""
    try:
        return read_partitions(files, columns, endpoint_url)
    except (KeyError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{files[0]}: cannot read columns {', '.join(columns)}: {exc}") from exc


def read_table(asset: str, files: Sequence[str], options: EngineOptions) -> StoredTable:
    """Read one clean table (``clean_transactions`` or ``clean_customers``) with the configured engine."""
    if asset not in COLUMNS:
        raise ValueError(f"{asset} is not an engine input; expected one of {', '.join(COLUMNS)}")
    if options.engine == "spark":
        spark = spark_engine.session(options.spark)
        read = spark_engine.read_transactions if asset == TRANSACTIONS else spark_engine.read_customers
        native: Any = read(spark, files)
    else:
        native = read_arrow(files, COLUMNS[asset], options.s3_endpoint_url)
        if asset == CUSTOMERS and len(files) > 1:
            native = latest_rows(native, "customer_id")  # the latest record of a customer wins across drops
    return StoredTable(asset, options.engine, native)


def frames(transactions: StoredTable, customers: StoredTable) -> engine.Frames:
    """Both clean tables as ``Frames`` of their engine (the embedded engine encodes ids across both)."""
    if (transactions.asset, customers.asset) != (TRANSACTIONS, CUSTOMERS):
        raise ValueError(f"expected {TRANSACTIONS} and {CUSTOMERS}, got {transactions.asset} and {customers.asset}")
    if transactions.engine != customers.engine:
        raise ValueError(f"inputs read by different engines: {transactions.engine} and {customers.engine}")
    if transactions.engine == "spark":
        return spark_engine.frames(transactions.native, customers.native)
    return engine.from_arrow(transactions.native, customers.native)


def load_frames(
    options: EngineOptions, transaction_files: Sequence[str], customer_files: Sequence[str]
) -> engine.Frames:
    """``frames`` of stored files in one call (benchmarks, tests)."""
    return frames(read_table(TRANSACTIONS, transaction_files, options), read_table(CUSTOMERS, customer_files, options))


def _as_of(result: pa.Table) -> pd.Timestamp:
    latest = result.column("latest_ns")[0]
    if not latest.is_valid:
        raise ValueError("no transaction with a valid timestamp: the as-of time is undefined")
    return to_utc(pd.Timestamp(latest.as_py(), unit="ns", tz="UTC"))


def data_as_of(frames: engine.Frames) -> pd.Timestamp:
    """T: the latest valid transaction time of ``frames`` (``feature_defs.latest`` on any engine)."""
    return _as_of(frames.collect(feature_defs.latest(frames.transactions)))


def _transactions(table: StoredTable) -> Any:
    if table.asset != TRANSACTIONS:
        raise ValueError(f"expected {TRANSACTIONS}, got {table.asset}")
    return table.native


def latest_time(transactions: StoredTable) -> pd.Timestamp:
    """:func:`data_as_of` of the stored transactions alone (``feature_defs.latest`` over ``ts``): no customer is
    encoded, so a step that needs T before deciding what else to compute pays one column's max, not a frames
    build."""
    native = _transactions(transactions)
    if transactions.engine == "spark":
        return _as_of(spark_engine.collect(feature_defs.latest(nw.from_native(native.select("ts")))))
    ts = pl.from_arrow(engine.timestamps_as_ns(native.column("timestamp"))).alias("ts")
    return _as_of(feature_defs.latest(nw.from_native(ts.to_frame().lazy())).to_native().collect().to_arrow())


def rows_between(transactions: StoredTable, start_ns: int, end_ns: int) -> StoredTable:
    """The stored transactions with ``start_ns < ts <= end_ns`` only: what label windows inside that range read
    (``performance.label_span``), so their frames encode those rows instead of the whole history."""
    native = _transactions(transactions)
    if transactions.engine == "spark":
        ts = native["ts"]
        return StoredTable(transactions.asset, transactions.engine, native.filter((ts > start_ns) & (ts <= end_ns)))
    ts = engine.timestamps_as_ns(native.column("timestamp"))
    inside = pc.and_(pc.greater(ts, start_ns), pc.less_equal(ts, end_ns))
    return StoredTable(transactions.asset, transactions.engine, native.filter(inside))
