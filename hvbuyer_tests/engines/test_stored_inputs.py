"""What ``model_performance`` reads of the stored clean transactions on the embedded engine: T from the one
timestamp column (``latest_time``, the same T as the full frames give) and only the rows of its label windows
(``rows_between``), whose labels equal those of every row; and, as the asset reads them (``label_inputs``), T from
the drops' stored time ranges and only the drops and row groups of the label windows, with the latest customers
table: the same T, rows, customers and labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets.core import labels
from hvbuyer_assets.core.customer_state import DropState, plan_running
from hvbuyer_assets.defs.features import state
from hvbuyer_assets.defs.features.inputs import EngineInputManager
from hvbuyer_assets.defs.features.state import label_inputs
from hvbuyer_assets.engines import EmbeddedEngine, Engine
from hvbuyer_assets.engines.interface import CUSTOMERS, TRANSACTIONS, StoredTable, input_asset
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_assets.storage.staged import StagedTable
from hvbuyer_tests.state_drops import clean_drops

T0 = pd.Timestamp("2026-03-31T00:00:00Z")
NS, DAY = pd.Timedelta(1, "ns"), pd.Timedelta(days=1)
EMBEDDED = EmbeddedEngine()


def _stored(folder: Path) -> tuple[StoredTable, StoredTable]:
    stamps = [T0 - 30 * DAY, T0 - 30 * DAY + NS, T0, T0 + NS, T0 + 90 * DAY, None]
    transactions = pa.table(
        {
            "transaction_id": [f"t{i}" for i in range(6)],
            "customer_id": ["c2", "c2", "c1", "c1", "c1", "c1"],
            "amount": [20.0, 30.0, 400.0, 500.0, 300.0, 900.0],
            "timestamp": pa.array(pd.Series(stamps, dtype="datetime64[ns, UTC]")),
            "status": ["completed"] * 6,
        }
    )
    customers = pa.table(
        {
            "customer_id": ["c1", "c2", "c3"],
            "signup_date": pa.array(pd.Series([None] * 3, dtype="datetime64[ns, UTC]")),
            "age": [41.0, None, 30.0],
            "loyalty_points": [1.0, 2.0, 3.0],
            "region": ["north", "east", None],
        }
    )
    pq.write_table(transactions, folder / "tx.parquet")
    pq.write_table(customers, folder / "customers.parquet")
    return (
        EMBEDDED.read(input_asset(TRANSACTIONS), [str(folder / "tx.parquet")]),
        EMBEDDED.read(input_asset(CUSTOMERS), [str(folder / "customers.parquet")]),
    )


def test_t_from_the_transactions_alone_is_the_frames_t(tmp_path: Path) -> None:
    transactions, customers = _stored(tmp_path)
    assert EMBEDDED.latest_time(transactions) == EMBEDDED.data_as_of(EMBEDDED.frames(transactions, customers))
    assert EMBEDDED.latest_time(transactions) == T0 + 90 * DAY  # the row without a timestamp is ignored
    with pytest.raises(ValueError, match="clean_transactions"):
        EMBEDDED.latest_time(customers)


def test_rows_between_keep_start_exclusive_end_inclusive_and_the_labels_of_their_windows(tmp_path: Path) -> None:
    transactions, customers = _stored(tmp_path)
    window = EMBEDDED.rows_between(transactions, (T0 - 30 * DAY).value, T0.value)
    assert window.native.column("amount").to_pylist() == [30.0, 400.0]  # t1 and t2
    everything = EMBEDDED.frames(transactions, customers)
    for cutoff in (T0 - NS, T0, T0 + NS):
        start, end = cutoff.value, (cutoff + 90 * DAY).value
        only = EMBEDDED.frames(EMBEDDED.rows_between(transactions, start, end), customers)
        expected = labels.labels_of(everything, ["c3", "c1", "c2"], cutoff, 90, 300.0)
        pd.testing.assert_series_equal(labels.labels_of(only, ["c3", "c1", "c2"], cutoff, 90, 300.0), expected)
    assert labels.labels_of(everything, ["c1"], T0, 90, 300.0).tolist() == [1]


def _stored_drops(base: Path, engine: Engine) -> tuple[EngineInputManager, list[str]]:
    """The state drops (``hvbuyer_tests/state_drops.py``) stored as the graph stores them: clean files per drop
    (q3, the backfill, written in time order in row groups of 50 rows), each drop's ``customer_state`` and the
    ``latest_customers`` table."""
    manager, drops = EngineInputManager(engine, str(base)), []
    for drop in clean_drops():
        tx = pa.Table.from_pandas(drop.transactions.sort_values("timestamp", kind="stable"), preserve_index=False)
        tx_path = Path(entry(TRANSACTIONS).drop_path(str(base), drop.name))
        tx_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tx, tx_path, row_group_size=50)
        customers = Path(entry(CUSTOMERS).drop_path(str(base), drop.name))
        customers.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(drop.customers, preserve_index=False), customers)
        staged = StagedTable(state.STATE.drop_path(str(base), drop.name))
        _, low, high = engine.stage_drop_state([str(tx_path)], 300.0, staged)
        staged.commit(state.state_metadata([DropState(drop.name, "a", low, high, 300.0)]))
        drops.append(drop.name)
    versions = state.customer_versions(manager, drops)
    current = [v for _, v in versions]
    path = state.LATEST.path(str(base))
    plan = plan_running(None, current)
    state.update_running(path, None, plan, versions, engine.stage_latest_customers, state.latest_metadata(current))
    return manager, drops


def _corrupt_row_group(path: str, group: int) -> None:
    """Overwrite every column chunk of one row group with garbage: a reader that opens it fails."""
    meta = pq.read_metadata(path)
    with open(path, "r+b") as f:
        for column in range(meta.num_columns):
            chunk = meta.row_group(group).column(column)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            f.seek(start)
            f.write(b"\xff" * chunk.total_compressed_size)


def test_model_performance_reads_t_from_the_drop_ranges_and_only_the_label_windows_rows(tmp_path: Path) -> None:
    """``defs.features.state.label_inputs`` (what ``model_performance`` reads) gives the T, the label-window rows
    and the customers of every drop read whole (what it read before), and reads no drop and no row group outside
    the windows: q1 ends before the window, and q3's old row groups are made unreadable."""
    manager, drops = _stored_drops(tmp_path, EMBEDDED)
    all_tx = EMBEDDED.read(input_asset(TRANSACTIONS), entry(TRANSACTIONS).drop_files(str(tmp_path), drops))
    all_customers = EMBEDDED.read(input_asset(CUSTOMERS), entry(CUSTOMERS).drop_files(str(tmp_path), drops))
    reading = label_inputs(manager, drops)
    assert reading.as_of == EMBEDDED.latest_time(all_tx)

    q3 = entry(TRANSACTIONS).drop_path(str(tmp_path), "q3")
    assert pq.read_metadata(q3).num_row_groups > 5
    _corrupt_row_group(q3, 0)  # 2019: outside every window below
    with pytest.raises((OSError, pa.ArrowException)):
        pq.read_table(q3)
    customers = ["C001", "C005", "C012", "C045", "C999"]
    for cutoff in (pd.Timestamp("2024-07-01T00:00:00Z"), pd.Timestamp("2024-09-15T12:00:00Z")):
        start, end = labels.label_window(cutoff, 90)
        got, read = reading.frames(start.value, end.value)
        assert read == 2  # q2 and q3 (its range spans the window); q1 ends before it
        before = EMBEDDED.frames(EMBEDDED.rows_between(all_tx, start.value, end.value), all_customers)
        for table in ("transactions", "customers"):  # (NaN ages: compared as pandas, NaN equal to NaN)
            pd.testing.assert_frame_equal(
                got.collect(getattr(got, table)).to_pandas(), before.collect(getattr(before, table)).to_pandas()
            )
        pd.testing.assert_series_equal(
            labels.labels_of(got, customers, cutoff, 90, 300.0), labels.labels_of(before, customers, cutoff, 90, 300.0)
        )
