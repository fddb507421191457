"""The Spark engine (``SparkEngine``, an ``engines.interface.Engine``): the stored clean parquet files read by Spark
into the ``core.feature_defs`` input convention, as narwhals LazyFrames over Spark DataFrames; results collected
to the driver as Arrow tables.

``pyspark`` is imported here only, inside the functions, so the embedded default never needs it (it is the
``spark`` extra: ``pip install -e ".[spark]"``). The SparkSession is created once per process and reused by every
step of a run (``session``): UTC session time zone, small shuffle partition counts on ``local[N]``, and
``spark.sql.legacy.parquet.nanosAsLong`` so the clean tables' ``timestamp[ns, UTC]`` columns arrive as the int64
ns they are stored as (no time-zone rule and no microsecond truncation can move a window boundary). Micro- or
millisecond timestamps (files written by other tools) are converted to ns exactly (``unix_micros * 1000``).

Only the driver runs Python here: narwhals translates the declaration into Spark Column expressions on the
driver, Spark plans and executes them on the JVM executors, so executors need Java and Spark, not hvbuyer.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import narwhals as nw
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hvbuyer_assets.core import customer_state, engine, features
from hvbuyer_assets.core.feature_defs import FEATURE_NUMERIC, ID, NO_TIME, latest
from hvbuyer_assets.core.sampling import STRATA, TrainingSample, quotas
from hvbuyer_assets.engines.interface import (
    CUSTOMERS,
    TRANSACTIONS,
    Engine,
    FeaturesSummary,
    StoredTable,
    as_of,
    input_asset,
    input_columns,
    native_pair,
    native_transactions,
)
from hvbuyer_assets.settings import Settings
from hvbuyer_assets.storage.catalog import StoredAsset
from hvbuyer_assets.storage.datasets import part_files, stored_schema
from hvbuyer_assets.storage.location import arrow_filesystem, location
from hvbuyer_assets.storage.staged import StagedTable

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

EXTRA = "spark"  # the pyproject extra that installs pyspark
LOCAL = re.compile(r"local(\[(?P<threads>\d+|\*)(,\d+)?\])?")
LOOPBACK_CLUSTER = re.compile(r"spark://(127\.0\.0\.1|localhost)(:\d+)?")  # a standalone cluster on this machine


def _default(name: str) -> Any:
    """A Spark setting's default as ``Settings`` declares it (``spark_<name>``): written there only."""
    return Settings.model_fields[f"spark_{name}"].get_default(call_default_factory=True)


@dataclass(frozen=True)
class SparkOptions:
    """How the SparkSession is made: the ``HVBUYER_SPARK_*`` settings (declared and validated in ``Settings``,
    docs/configuration.md) as one value, built by :meth:`from_settings` (the defaults are the settings' own)."""

    master: str = _default("master")
    driver_memory: str = _default("driver_memory")
    executor_memory: str | None = _default("executor_memory")
    shuffle_partitions: int | None = _default("shuffle_partitions")  # None: 2 per local thread, Spark's own else
    conf: tuple[tuple[str, str], ...] = field(default=())  # extra Spark properties, sorted
    s3_endpoint_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkOptions:
        return cls(
            master=settings.spark_master,
            driver_memory=settings.spark_driver_memory,
            executor_memory=settings.spark_executor_memory,
            shuffle_partitions=settings.spark_shuffle_partitions,
            conf=tuple(sorted(settings.spark_conf.items())),
            s3_endpoint_url=settings.s3_endpoint_url,
        )

    @property
    def is_local(self) -> bool:
        return LOCAL.fullmatch(self.master) is not None

    def properties(self) -> dict[str, str]:
        """Every Spark property the session is built with (``conf`` last: it overrides the rest)."""
        props = {
            "spark.app.name": "hvbuyer",
            "spark.driver.memory": self.driver_memory,
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.legacy.parquet.nanosAsLong": "true",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.ui.showConsoleProgress": "false",
        }
        if self.executor_memory:
            props["spark.executor.memory"] = self.executor_memory
        partitions = self.shuffle_partitions or _local_partitions(self.master)
        if partitions:
            props["spark.sql.shuffle.partitions"] = str(partitions)
        if self.is_local or LOOPBACK_CLUSTER.fullmatch(self.master):  # one machine: the driver on loopback only
            props.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
        if self.is_local:  # no UI port to find per process (a cluster keeps its UI and REST API)
            props["spark.ui.enabled"] = "false"
        if self.s3_endpoint_url:  # a MinIO / loopback S3 endpoint for s3a (needs hadoop-aws, docs/engines.md)
            props["spark.hadoop.fs.s3a.endpoint"] = self.s3_endpoint_url
            props["spark.hadoop.fs.s3a.path.style.access"] = "true"
        props.update(dict(self.conf))
        return props


def _local_partitions(master: str) -> int | None:
    match = LOCAL.fullmatch(master)
    if match is None:
        return None
    threads = match["threads"]
    count = 1 if threads is None else (os.cpu_count() or 1) if threads == "*" else int(threads)
    return 2 * count


def _pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError as exc:
        raise RuntimeError(
            f'HVBUYER_ENGINE=spark needs pyspark: install the {EXTRA!r} extra (pip install -e ".[{EXTRA}]")'
        ) from exc
    return pyspark.sql


_SESSIONS: dict[SparkOptions, SparkSession] = {}
_LOCK = threading.Lock()
_DROP_RANK = "_drop_rank"  # position of a row's file among the files read (drop order)
HASH_RANGE = 1 << 53  # a sampling hash modulo this, as a fraction of it: uniform in [0, 1), exact in a double


def session(options: SparkOptions) -> SparkSession:
    """The process's SparkSession for ``options``, created on first use and cached (one JVM per process)."""
    with _LOCK:
        cached = _SESSIONS.get(options)
        if cached is not None:
            return cached
        builder = _pyspark().SparkSession.builder.master(options.master)
        for key, value in options.properties().items():
            builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()
        except Exception as exc:
            if "JAVA_GATEWAY_EXITED" in str(exc) or "Java gateway process exited" in str(exc):
                raise RuntimeError(
                    "HVBUYER_ENGINE=spark could not start the Spark JVM: it needs Java 17 or later "
                    "(`java` on PATH or JAVA_HOME set)"
                ) from exc
            raise
        spark.sparkContext.setLogLevel("WARN")
        _SESSIONS[options] = spark
        return spark


def stop() -> None:
    """Stop the process's SparkSession (its JVM's memory is released); the next ``session`` starts a new one."""
    with _LOCK:
        for spark in _SESSIONS.values():
            spark.stop()
        _SESSIONS.clear()


def spark_path(uri: str) -> str:
    """A stored file's URI as Spark's Hadoop filesystems name it (``s3://`` -> ``s3a://``)."""
    return "s3a://" + uri[len("s3://") :] if uri.startswith("s3://") else uri


def _ns(column: Column, data_type: Any, where: str) -> Column:
    types = _pyspark().types
    functions = _pyspark().functions
    if isinstance(data_type, types.LongType):  # TIMESTAMP(NANOS) read with nanosAsLong: already int64 ns
        return column
    if isinstance(data_type, types.TimestampType):
        return functions.unix_micros(column) * 1000
    if isinstance(data_type, types.TimestampNTZType):  # a naive time is UTC (the session time zone)
        return functions.unix_micros(column.cast(types.TimestampType())) * 1000
    raise ValueError(f"{where}: expected a timestamp column, Spark reads it as {data_type.simpleString()}")


def read_convention(
    spark: SparkSession,
    files: Sequence[str],
    columns: Sequence[tuple[str, str, str]],
    table: str,
    key: str | None = None,
) -> DataFrame:
    """Spark reads ``files`` (one stored table's parquet files, in drop order) and selects ``columns`` in the
    convention; with ``key``, the record of the latest file wins for each key (``cleaning.history.latest_rows``)."""
    if not files:
        raise FileNotFoundError(f"{table}: no stored parquet file to read")
    frame = spark.read.parquet(*(spark_path(f) for f in files))
    if key is not None and len(files) > 1:
        frame = _latest_per_key(spark, files, key)
    schema = {f.name: f.dataType for f in frame.schema.fields}
    missing = [stored for _, stored, _ in columns if stored not in schema]
    if missing:
        raise ValueError(f"{table} ({files[0]}...): missing column(s) {', '.join(missing)}")
    functions = _pyspark().functions
    selected = []
    for name, stored, kind in columns:
        column = functions.col(stored)
        if kind == "ns":
            column = _ns(column, schema[stored], f"{table}.{stored}")
        selected.append(column.cast(kind if kind != "ns" else "long").alias(name))
    return frame.select(*selected)


def read_input(spark: SparkSession, asset: StoredAsset, files: Sequence[str]) -> DataFrame:
    """A stored clean table in the declaration's convention (``interface.INPUT_COLUMNS``: transactions as
    ``customer_id``, ``ts`` int64 ns UTC, ``amount``, ``status``; customers as ``customer_id``, ``signup_ns``,
    ``age``, ``loyalty_points``, ``region``), with the catalog's latest-wins key."""
    return read_convention(spark, files, input_columns(asset.name), asset.name, key=asset.latest_wins_by)


def _latest_per_key(spark: SparkSession, files: Sequence[str], key: str) -> DataFrame:
    """The files' rows with each ``key`` kept from the latest file only (files are drops, each unique by key)."""
    functions, window = _pyspark().functions, _pyspark().Window
    ranked = [
        spark.read.parquet(spark_path(f)).withColumn(_DROP_RANK, functions.lit(rank)) for rank, f in enumerate(files)
    ]
    frame = ranked[0]
    for other in ranked[1:]:
        frame = frame.unionByName(other, allowMissingColumns=True)
    latest = functions.max(_DROP_RANK).over(window.partitionBy(key))
    return frame.withColumn("_latest_rank", latest).filter(functions.col(_DROP_RANK) == functions.col("_latest_rank"))


def latest_stored(
    spark: SparkSession, asset: StoredAsset, files: Sequence[str], endpoint_url: str | None = None
) -> tuple[DataFrame, pa.Schema]:
    """``files`` of a clean table with a latest-wins key (or a previous latest table first) as each key's record of
    the latest file, the engine inputs' stored columns (``input_columns``) in their stored names, timestamps as
    int64 ns; and the Arrow schema its written parts are read as (the stored types of the last file)."""
    if not files:
        raise FileNotFoundError(f"{asset.name}: no stored parquet file to read")
    if asset.latest_wins_by is None:
        raise ValueError(f"{asset.name} has no latest-wins key")
    if len(files) > 1:
        frame = _latest_per_key(spark, files, asset.latest_wins_by)
    else:
        frame = spark.read.parquet(spark_path(files[0]))
    types = {f.name: f.dataType for f in frame.schema.fields}
    functions = _pyspark().functions
    selected = []
    for _, stored, kind in input_columns(asset.name):
        column = functions.col(stored)
        if kind == "ns":
            column = _ns(column, types[stored], f"{asset.name}.{stored}")
        selected.append(column.alias(stored))
    last = stored_schema(location(files[-1], endpoint_url), endpoint_url)
    schema = pa.schema([last.field(stored) for _, stored, _ in input_columns(asset.name)])
    return frame.select(*selected), schema


def collect(lazy: nw.LazyFrame) -> pa.Table:
    """A result of the declaration executed by Spark and brought to the driver as an Arrow table."""
    return lazy.collect(backend="pyarrow").to_native()


def sample_rows(lazy: nw.LazyFrame, sample: TrainingSample) -> pa.Table:
    """The training rows ``sample`` keeps (``core.sampling``), chosen by the executors: the rows are computed once
    (persisted), counted per stratum, each stratum pre-filtered to its first share of the hash range (with a margin)
    and ranked by (``xxhash64(customer_id, cutoff_ns, seed)``, customer_id, cutoff_ns); only the kept rows reach
    the driver. Should a pre-filter keep fewer rows than a quota (vanishingly unlikely), the strata are ranked whole."""
    functions, window = _pyspark().functions, _pyspark().Window
    rows = lazy.to_native().persist()
    try:
        counts = {(r["split"], int(r["label"])): int(r["count"]) for r in rows.groupBy(*STRATA).count().collect()}
        kept = quotas(counts, sample.max_rows)
        if sum(kept.values()) == sum(counts.values()):
            return collect(lazy)
        col = functions.col
        keyed = rows.withColumn("_key", functions.xxhash64(col(ID), col("cutoff_ns"), functions.lit(sample.seed)))
        share = functions.pmod(col("_key"), functions.lit(HASH_RANGE)) / float(HASH_RANGE)
        stratum = {s: (col("split") == s[0]) & (col("label") == s[1]) for s in kept}
        prefilter = functions.lit(False)
        limit = functions.lit(False)
        for s, quota in kept.items():
            prefilter = prefilter | (stratum[s] & (share < min(1.0, 1.25 * quota / counts[s] + 64 / counts[s])))
            limit = limit | (stratum[s] & (col("_n") <= quota))
        order = window.partitionBy(*STRATA).orderBy("_key", ID, "cutoff_ns")

        def first(frame: DataFrame) -> pa.Table:
            ranked = frame.withColumn("_n", functions.row_number().over(order))
            return ranked.filter(limit).drop("_key", "_n").toArrow()

        table = first(keyed.filter(prefilter))
        if table.num_rows < sum(kept.values()):
            table = first(keyed)
        return table
    finally:
        rows.unpersist()


ARROW_TYPES = {"string": pa.large_string(), "bigint": pa.int64(), "double": pa.float64(), "int": pa.int32()}


def arrow_schema(frame: DataFrame) -> pa.Schema:
    """The Arrow schema a written DataFrame's parts are read as (strings as ``large_string``, as the embedded
    engine collects them)."""
    fields = []
    for f in frame.schema.fields:
        kind = f.dataType.simpleString()
        if kind not in ARROW_TYPES:
            raise ValueError(f"column {f.name}: no stored Arrow type for Spark's {kind}")
        fields.append(pa.field(f.name, ARROW_TYPES[kind]))
    return pa.schema(fields)


def write_parts(frame: DataFrame, staged: StagedTable, schema: pa.Schema) -> DataFrame:
    """The executors write ``frame`` as parquet part files into ``staged``'s directory (nothing passes through
    the driver, which reads the parts' footers for the row count); the written parts, as Spark reads them back."""
    where = staged.directory()
    frame.write.mode("error").parquet(spark_path(where))
    fs, folder = arrow_filesystem(where)
    parts = part_files(fs, folder)  # named, not the (hidden) staging folder: Spark would warn it ignores it
    staged.written(sum(pq.ParquetFile(p, filesystem=fs).metadata.num_rows for p in parts), schema)
    if not parts:
        return frame.sparkSession.createDataFrame([], frame.schema)
    return frame.sparkSession.read.schema(frame.schema).parquet(*(spark_path(p) for p in parts))


def finished_features(frame: DataFrame, regions: DataFrame, as_of_ns: int) -> DataFrame:
    """A ``feature_defs.features`` result as the stored ``customer_features`` parts, in customer id order (byte
    order, as ``features.sort_rows``): what ``features.finish_features`` makes of it, on the executors (NaN stored
    as null as pandas stores it, regions through the ``regions`` lookup, no time as null, times as int64 ns)."""
    f = _pyspark().functions
    numeric = [f.when(f.isnan(f.col(n)), None).otherwise(f.col(n)).cast("double").alias(n) for n in FEATURE_NUMERIC]

    def time(column: str) -> Column:
        return f.when(f.col(column) == NO_TIME, None).otherwise(f.col(column)).cast("long")

    named = frame.join(f.broadcast(regions), frame["region"].eqNullSafe(regions["_raw"]), "left")
    return named.select(
        f.col(ID),
        *numeric,
        f.col("_region").alias("region"),
        time("signup_ns").alias("signup_date"),
        time("last_event_ns").alias("last_event_at"),
        f.lit(int(as_of_ns)).cast("long").alias("feature_as_of"),
    ).orderBy(ID)


class SparkEngine(Engine):
    """Spark DataFrames (``HVBUYER_ENGINE=spark``): nothing is read until a result is collected to the driver."""

    name = "spark"

    def __init__(self, options: SparkOptions, training_sample: TrainingSample | None = None) -> None:
        self.options = options
        self.training_sample = training_sample

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkEngine:
        return cls(SparkOptions.from_settings(settings), settings.training_sample())

    def __repr__(self) -> str:
        return f"SparkEngine({self.options!r})"

    def start(self) -> None:
        session(self.options)

    def read(self, asset: StoredAsset, files: Sequence[str]) -> StoredTable:
        return StoredTable(asset.name, self, read_input(session(self.options), asset, files))

    def frames(self, transactions: StoredTable, customers: StoredTable) -> engine.Frames:
        tx, people = native_pair(transactions, customers)
        return engine.Frames(nw.from_native(tx), nw.from_native(people), collect, sample_rows)

    def latest_time(self, transactions: StoredTable) -> pd.Timestamp:
        return as_of(collect(latest(nw.from_native(native_transactions(transactions).select("ts")))))

    def rows_between(self, transactions: StoredTable, start_ns: int, end_ns: int) -> StoredTable:
        native = native_transactions(transactions)
        ts = native["ts"]
        return StoredTable(transactions.asset, self, native.filter((ts > start_ns) & (ts <= end_ns)))

    def keyed_transactions(self, files: Sequence[str], after_ns: int | None = None) -> nw.LazyFrame:
        frame = read_input(session(self.options), input_asset(TRANSACTIONS), files)
        return nw.from_native(frame if after_ns is None else frame.filter(frame["ts"] > int(after_ns)))

    def keyed_customers(self, files: Sequence[str]) -> nw.LazyFrame:
        return nw.from_native(read_input(session(self.options), input_asset(CUSTOMERS), files))

    def read_states(self, files: Sequence[str]) -> nw.LazyFrame:
        return nw.from_native(session(self.options).read.parquet(*(spark_path(f) for f in files)))

    def read_between(self, files: Sequence[str], start_ns: int, end_ns: int) -> StoredTable:
        """Spark pushes the time filter down to the parquet scan (row groups outside are skipped)."""
        table = self.read(input_asset(TRANSACTIONS), files)
        return self.rows_between(table, start_ns, end_ns)

    def stage_latest_customers(self, files: Sequence[str], staged: StagedTable) -> int:
        """Written by the executors (``latest_stored``); the driver reads a footer for the stored types."""
        frame, schema = latest_stored(
            session(self.options), input_asset(CUSTOMERS), files, self.options.s3_endpoint_url
        )
        write_parts(frame, staged, schema)
        assert staged.rows is not None
        return staged.rows

    def collect(self, lazy: nw.LazyFrame) -> pa.Table:
        return collect(lazy)

    def stage(self, lazy: nw.LazyFrame, staged: StagedTable) -> int:
        frame = lazy.to_native()
        write_parts(frame, staged, arrow_schema(frame))
        assert staged.rows is not None
        return staged.rows

    def stage_features(
        self,
        total_files: Sequence[str],
        transaction_files: Sequence[str],
        customer_files: Sequence[str],
        large_amount: float,
        staged: StagedTable,
    ) -> FeaturesSummary:
        """The features written by the executors, finished there (``finished_features``); the driver collects the
        distinct raw regions, a rowless schema, the parts' row count (footers) and two counts of them."""
        total, recent, customers, when = self._state_inputs(total_files, transaction_files, customer_files)
        lazy = customer_state.features(total, recent, customers, when.value, large_amount)
        raw = collect(customers.select("region").unique()).column("region").combine_chunks()
        spark, f = session(self.options), _pyspark().functions
        regions = spark.createDataFrame(
            list(zip(raw.to_pylist(), features.region_names(raw).to_pylist(), strict=True)),
            "_raw string, _region string",
        )
        schema = features.stored_schema(collect(lazy.head(0)))
        written = write_parts(finished_features(lazy.to_native(), regions, when.value), staged, schema)
        counts = written.agg(
            f.sum((f.col("n_transactions") > 0).cast("long")).alias("with_history"),
            f.sum((f.col("last_event_at") > f.lit(when.value)).cast("long")).alias("late"),
        ).first()
        assert staged.rows is not None
        return FeaturesSummary(when, staged.rows, int(counts["with_history"] or 0), int(counts["late"] or 0))
