"""What ``model_performance`` reads of the stored clean transactions on the embedded engine: T from the one
timestamp column (``latest_time``, the same T as the full frames give) and only the rows of its label windows
(``rows_between``), whose labels equal those of every row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets.core import labels
from hvbuyer_assets.engines import EmbeddedEngine
from hvbuyer_assets.engines.interface import CUSTOMERS, TRANSACTIONS, StoredTable, input_asset

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
