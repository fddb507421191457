"""The engine interface: what the feature, training-set and label assets ask of an engine, whatever runs it.

An ``Engine`` reads the stored clean tables (``read``: a ``StoredTable`` that remembers its engine), finds T
(``latest_time``), narrows transactions to a time range (``rows_between``), turns both tables into
``core.engine.Frames`` (``frames``) and computes the declaration's results on them (``features``,
``training_rows``: ``core.feature_defs`` through ``core.features`` / ``core.training``, the same pandas frames on
every engine). The implementation is chosen once, from ``Settings``, when the definitions are built
(``engines.engine_for``); code holding an engine calls it, nothing asks which engine it is.

Implementations: ``engines.embedded.EmbeddedEngine`` (Arrow + polars in-process) and
``engines.spark.SparkEngine`` (Spark DataFrames, local or on a cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import narwhals as nw
import pandas as pd
import pyarrow as pa

from hvbuyer_assets.core import customer_state, feature_defs, features, training
from hvbuyer_assets.core.engine import Frames
from hvbuyer_assets.core.features import to_utc
from hvbuyer_assets.core.sampling import TrainingSample
from hvbuyer_assets.storage.catalog import StoredAsset, entry
from hvbuyer_assets.storage.staged import StagedTable

TRANSACTIONS, CUSTOMERS = "clean_transactions", "clean_customers"
# The feature_defs input convention per stored clean table: (output column, stored column, kind); nothing else is
# read ("ns": a timestamp as int64 ns UTC).
INPUT_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    TRANSACTIONS: (
        ("customer_id", "customer_id", "string"),
        ("ts", "timestamp", "ns"),
        ("amount", "amount", "double"),
        ("status", "status", "string"),
    ),
    CUSTOMERS: (
        ("customer_id", "customer_id", "string"),
        ("signup_ns", "signup_date", "ns"),
        ("age", "age", "double"),
        ("loyalty_points", "loyalty_points", "double"),
        ("region", "region", "string"),
    ),
}


def input_columns(name: str) -> tuple[tuple[str, str, str], ...]:
    """The convention of an engine input (``clean_transactions`` or ``clean_customers``); ValueError otherwise."""
    if name not in INPUT_COLUMNS:
        raise ValueError(f"{name} is not an engine input; expected one of {', '.join(INPUT_COLUMNS)}")
    return INPUT_COLUMNS[name]


def input_asset(name: str) -> StoredAsset:
    """The catalog entry of an engine input."""
    input_columns(name)
    return entry(name)


@dataclass(frozen=True)
class StoredTable:
    """One stored clean table as ``engine`` read it (``native``: a projected ``pa.Table`` on the embedded engine,
    a Spark DataFrame in the ``feature_defs`` convention on Spark)."""

    asset: str
    engine: Engine
    native: Any


def native_transactions(table: StoredTable) -> Any:
    """The engine's form of stored transactions; ValueError for another table."""
    if table.asset != TRANSACTIONS:
        raise ValueError(f"expected {TRANSACTIONS}, got {table.asset}")
    return table.native


def native_pair(transactions: StoredTable, customers: StoredTable) -> tuple[Any, Any]:
    """The engine's forms of both clean tables; ValueError when they are not the two inputs of one engine."""
    if (transactions.asset, customers.asset) != (TRANSACTIONS, CUSTOMERS):
        raise ValueError(f"expected {TRANSACTIONS} and {CUSTOMERS}, got {transactions.asset} and {customers.asset}")
    if transactions.engine is not customers.engine:
        raise ValueError(f"inputs read by different engines: {transactions.engine!r} and {customers.engine!r}")
    return transactions.native, customers.native


def as_of(result: pa.Table) -> pd.Timestamp:
    """T from a collected ``feature_defs.latest`` result (``latest_ns``)."""
    latest = result.column("latest_ns")[0]
    if not latest.is_valid:
        raise ValueError("no transaction with a valid timestamp: the as-of time is undefined")
    return to_utc(pd.Timestamp(latest.as_py(), unit="ns", tz="UTC"))


@dataclass(frozen=True)
class FeaturesSummary:
    """What the driver learns of ``customer_features`` staged by ``Engine.stage_features``: T, its rows, the
    customers with history and the rows whose last event is after T (the leakage guard's count)."""

    as_of: pd.Timestamp
    rows: int
    with_history: int
    after_as_of: int

    @classmethod
    def of(cls, frame: pd.DataFrame, as_of: pd.Timestamp) -> FeaturesSummary:
        late = int((frame["last_event_at"] > as_of).fillna(False).sum())
        return cls(as_of, len(frame), int((frame["n_transactions"] > 0).sum()), late)


class Engine(Protocol):
    """What computes features, labels and training rows from the stored clean tables.

    Implementations define ``name`` and the four reading methods; the computing methods below are the same on
    every engine (the declaration runs on the engine's ``Frames``), so implementations inherit them.
    """

    name: str
    training_sample: TrainingSample | None = None  # the training set's cap (HVBUYER_MAX_TRAINING_ROWS)

    def read(self, asset: StoredAsset, files: Sequence[str]) -> StoredTable:
        """One clean table's stored ``files`` (one per drop, in drop order) in the engine's form; a latest-wins
        key of ``asset`` (re-sent customers) keeps each key's record of the latest drop."""
        ...

    def frames(self, transactions: StoredTable, customers: StoredTable) -> Frames:
        """Both clean tables as ``Frames`` of this engine."""
        ...

    def latest_time(self, transactions: StoredTable) -> pd.Timestamp:
        """T of the stored transactions alone (one column's max; no customer is encoded)."""
        ...

    def rows_between(self, transactions: StoredTable, start_ns: int, end_ns: int) -> StoredTable:
        """The stored transactions with ``start_ns < ts <= end_ns`` only (what label windows in that range read)."""
        ...

    def read_between(self, files: Sequence[str], start_ns: int, end_ns: int) -> StoredTable:
        """Stored clean transactions ``files`` with ``start_ns < ts <= end_ns`` only, read where the parquet
        statistics admit such rows (row groups wholly outside are skipped)."""
        ...

    def start(self) -> None:
        """Start what the engine runs on ahead of the first read (Spark: its session); nothing by default."""

    # Per-drop customer state (``core.customer_state``): frames keyed by the customer id itself (states of different
    # drops are combined by id, and outlive the customer table they were computed with).

    def keyed_transactions(self, files: Sequence[str], after_ns: int | None = None) -> nw.LazyFrame:
        """Stored clean transactions in the convention, string ``customer_id``; with ``after_ns``, read only where
        the parquet statistics admit ``ts > after_ns`` (at least every such row; the caller filters exactly)."""
        ...

    def keyed_customers(self, files: Sequence[str]) -> nw.LazyFrame:
        """Stored clean customers (each customer's record of the latest drop) in the convention, string ids."""
        ...

    def read_states(self, files: Sequence[str]) -> nw.LazyFrame:
        """Stored state files (``customer_state.STATE_COLUMNS``) as one LazyFrame of this engine."""
        ...

    def stage_latest_customers(self, files: Sequence[str], staged: StagedTable) -> int:
        """Stage in ``staged`` each customer's record of the latest of ``files`` (stored clean customers or a
        previous ``latest_customers`` table, in drop order; the catalog's latest-wins key), the engine inputs'
        stored columns (``input_columns``) in their stored names and types, rows in the order the latest-wins rule
        keeps them; its rows. Read back as a single file of ``clean_customers`` (``read``, ``keyed_customers``)."""
        ...

    def collect(self, lazy: nw.LazyFrame) -> pa.Table:
        """A result over this engine's keyed frames as an Arrow table (any row order)."""
        ...

    def stage(self, lazy: nw.LazyFrame, staged: StagedTable) -> int:
        """Stage a result over this engine's keyed frames (any row order) in ``staged`` and return its rows; here
        collected into this process (``StagedTable.put``). An engine with executors writes it from them instead."""
        table = self.collect(lazy)
        staged.put(table)
        return table.num_rows

    def drop_state(
        self, transaction_files: Sequence[str], large_amount: float
    ) -> tuple[pa.Table, int | None, int | None]:
        """One drop's state (``customer_state.drop_state``) collected, and the time range of its transactions
        (min, max ns; None when it has none)."""
        tx = self.keyed_transactions(transaction_files)
        state = self.collect(customer_state.drop_state(tx, large_amount))
        return (state, *self._drop_range(tx))

    def stage_drop_state(
        self, transaction_files: Sequence[str], large_amount: float, staged: StagedTable
    ) -> tuple[int, int | None, int | None]:
        """``drop_state`` staged in ``staged`` (``stage``): its rows and the drop's time range."""
        tx = self.keyed_transactions(transaction_files)
        return (self.stage(customer_state.drop_state(tx, large_amount), staged), *self._drop_range(tx))

    def _drop_range(self, tx: nw.LazyFrame) -> tuple[int | None, int | None]:
        bounds = self.collect(customer_state.drop_range(tx)).to_pylist()[0]
        return bounds["min_ns"], bounds["max_ns"]

    def _combined(self, state_files: Sequence[str]) -> nw.LazyFrame:
        return customer_state.combine([self.read_states([f]) for f in state_files])

    def combine_states(self, state_files: Sequence[str]) -> pa.Table:
        """The state of the union of the drops of ``state_files`` (a running total is one of them), collected."""
        return self.collect(self._combined(state_files))

    def stage_combined_states(self, state_files: Sequence[str], staged: StagedTable) -> int:
        """``combine_states`` staged in ``staged`` (``stage``); its rows."""
        return self.stage(self._combined(state_files), staged)

    def _state_inputs(
        self, total_files: Sequence[str], transaction_files: Sequence[str], customer_files: Sequence[str]
    ) -> tuple[nw.LazyFrame, nw.LazyFrame, nw.LazyFrame, pd.Timestamp]:
        """The total state, the rows of the longest window before T, the customers, and T."""
        total = self.read_states(total_files)
        when = as_of(self.collect(customer_state.latest(total)))
        recent = self.keyed_transactions(transaction_files, after_ns=customer_state.window_start(when.value))
        return total, recent, self.keyed_customers(customer_files), when

    def state_features(
        self,
        total_files: Sequence[str],
        transaction_files: Sequence[str],
        customer_files: Sequence[str],
        large_amount: float,
    ) -> tuple[pd.DataFrame, pd.Timestamp]:
        """Every known customer's features as of T (the latest time of the total state) and T, from the total
        state and the rows of the longest window of ``transaction_files`` (``features.state_features_frame``):
        no transaction is read for the totals."""
        total, recent, customers, when = self._state_inputs(total_files, transaction_files, customer_files)
        frame = features.state_features_frame(total, recent, customers, self.collect, when, large_amount)
        return frame, when

    def stage_features(
        self,
        total_files: Sequence[str],
        transaction_files: Sequence[str],
        customer_files: Sequence[str],
        large_amount: float,
        staged: StagedTable,
    ) -> FeaturesSummary:
        """``state_features`` staged in ``staged`` as the stored frame (``customer_id`` index, pandas metadata);
        here computed into this process as pandas."""
        frame, when = self.state_features(total_files, transaction_files, customer_files, large_amount)
        staged.put(pa.Table.from_pandas(frame, preserve_index=True))
        return FeaturesSummary.of(frame, when)

    def load(self, transaction_files: Sequence[str], customer_files: Sequence[str]) -> Frames:
        """``frames`` of stored files in one call (benchmarks, tests)."""
        return self.frames(
            self.read(input_asset(TRANSACTIONS), transaction_files), self.read(input_asset(CUSTOMERS), customer_files)
        )

    def data_as_of(self, frames: Frames) -> pd.Timestamp:
        """T: the latest valid transaction time of ``frames`` (``feature_defs.latest``)."""
        return as_of(frames.collect(feature_defs.latest(frames.transactions)))

    def features(self, frames: Frames, as_of: pd.Timestamp, large_amount: float) -> pd.DataFrame:
        """Every known customer's features as of ``as_of`` (``core.features.features_frame``)."""
        return features.features_frame(frames, as_of, large_amount=large_amount)

    def training_rows(
        self,
        frames: Frames,
        as_of: pd.Timestamp,
        *,
        horizon_days: int,
        threshold: float,
        train_snapshots: int,
        snapshot_step_days: int,
    ) -> pd.DataFrame:
        """The temporal training set as of ``as_of`` (``core.training.training_frame``), sampled on this engine to
        ``training_sample.max_rows`` rows (stratified by split and label, seeded) when it holds more."""
        return training.training_frame(
            frames, as_of, horizon_days, threshold, train_snapshots, snapshot_step_days, self.training_sample
        )
