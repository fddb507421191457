"""Rules across drops (``core.cleaning.history``): each drop cleaned alone, reading only the ids it shares with
the drops before it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from hvbuyer_assets import datagen
from hvbuyer_assets.core.cleaning import DUPLICATE_DROPPED
from hvbuyer_assets.core.cleaning.history import (
    EarlierFrames,
    NoEarlierDrops,
    earlier_matches,
    first_drop_of,
    latest_rows,
)
from hvbuyer_assets.core.contract import raw_to_frame
from hvbuyer_assets.core.sources import CUSTOMERS, TRANSACTIONS
from hvbuyer_tests.core.test_cleaning import CUST_COLUMNS, TX_COLUMNS, _cust, _frame, _tx


def _clean_drop(raw_customers: pd.DataFrame, raw_tx: pd.DataFrame, earlier: EarlierFrames) -> dict:
    customers = CUSTOMERS.clean(raw_customers, earlier=earlier)
    transactions = TRANSACTIONS.clean(raw_tx, customers.clean, earlier=earlier)
    return {"customers": customers, "transactions": transactions}


def test_earlier_matches_keep_only_the_new_drops_ids_and_name_the_first_drop() -> None:
    history = [("q1", pa.array(["T1", "T2", "T3"])), ("q2", pa.array(["T4", "T5"]))]
    found = earlier_matches(iter(history), pa.array(["T2", "T5", "T9"]))
    assert found.column("value").to_pylist() == ["T2", "T5"] and found.column("drop").to_pylist() == ["q1", "q2"]
    assert first_drop_of(found, pa.array(["T9", "T5", "T2"])).to_pylist() == [None, "q2", "q1"]
    assert earlier_matches(iter([]), pa.array(["T1"])).num_rows == 0


def test_a_transaction_id_of_an_earlier_drop_is_a_duplicate_naming_that_drop() -> None:
    customers = _frame([_cust(), _cust(customer_id="C2")], CUST_COLUMNS)
    first = _clean_drop(customers, _frame([_tx(), _tx(transaction_id="T2")], TX_COLUMNS), EarlierFrames([]))
    earlier = EarlierFrames([("q1", {k: r.clean for k, r in first.items()})])
    later_raw = _frame([_tx(amount="99"), _tx(transaction_id="T3"), _tx(transaction_id="T3")], TX_COLUMNS)
    later = _clean_drop(customers, later_raw, earlier)["transactions"]
    assert later.clean["transaction_id"].tolist() == ["T3"]  # T1 is q1's; T3 twice within the drop: one kept
    quarantine = later.quarantine
    assert (quarantine["action"] == DUPLICATE_DROPPED).all() and len(quarantine) == 2
    again = quarantine[quarantine["record_id"] == "T1"].iloc[0]
    assert again["reason"] == "transaction_id T1 was already received in drop q1; the earlier record was kept"
    assert later.stats["duplicates"] == 2 and later.stats["rows_clean"] == 1


def test_a_customer_of_an_earlier_drop_is_known_and_the_latest_record_wins_when_read_together() -> None:
    q1 = _clean_drop(_frame([_cust(age="30")], CUST_COLUMNS), _frame([_tx()], TX_COLUMNS), EarlierFrames([]))
    earlier = EarlierFrames([("q1", {k: r.clean for k, r in q1.items()})])
    # q2 re-sends C1 with a new age and adds C2; C9 is in no drop.
    q2_customers = _frame([_cust(age="31"), _cust(customer_id="C2")], CUST_COLUMNS)
    q2_tx = _frame([_tx(transaction_id="T2"), _tx(transaction_id="T3", customer_id="C9")], TX_COLUMNS)
    q2 = _clean_drop(q2_customers, q2_tx, earlier)
    assert q2["transactions"].clean["transaction_id"].tolist() == ["T2"]
    assert "'C9' is not a known customer" in q2["transactions"].quarantine["reason"].iloc[0]
    # a drop with transactions only (a _SUCCESS marker): its customers are the earlier drops'
    q3 = _clean_drop(_frame([], CUST_COLUMNS), _frame([_tx(transaction_id="T4")], TX_COLUMNS), earlier)
    assert q3["transactions"].clean["transaction_id"].tolist() == ["T4"]
    assert q3["transactions"].references["customers"]["customer_id"].tolist() == ["C1"]
    read_together = pa.Table.from_pandas(
        pd.concat([q1["customers"].clean, q2["customers"].clean], ignore_index=True), preserve_index=False
    )
    together = latest_rows(read_together, "customer_id").to_pandas()
    assert together.set_index("customer_id")["age"].to_dict() == {"C1": 31.0, "C2": 35.0}


def test_latest_rows_keeps_the_last_record_of_each_key_in_row_order() -> None:
    table = pa.table({"customer_id": ["A", "B", None, "A", "C", None, "B"], "n": [1, 2, 3, 4, 5, 6, 7]})
    latest = latest_rows(table, "customer_id")
    assert latest.column("customer_id").to_pylist() == ["A", "C", None, "B"]  # a missing key is one value
    assert latest.column("n").to_pylist() == [4, 5, 6, 7]
    unique = table.slice(0, 3)
    assert latest_rows(unique, "customer_id") is unique  # nothing superseded: the same table, not a copy
    assert latest_rows(table.slice(0, 0), "customer_id").num_rows == 0


def _raw(path: Path, reader, arrived: pd.Timestamp) -> pd.DataFrame:  # noqa: ANN001
    frame = raw_to_frame(pa.concat_tables(reader(path, path.name)))
    frame["arrived_at"] = arrived
    return frame


def test_cleaning_drops_one_by_one_equals_one_clean_of_all_of_them(tmp_path: Path) -> None:
    """Three generated quarters, one re-sending a transaction of an earlier one: cleaned drop by drop (each with
    the ids of the drops before it) they give the rows of one clean of everything, except that a re-sent
    transaction keeps its first record (earlier drops are never rewritten)."""
    drops = []
    for i, as_of in enumerate(("2026-03-31", "2026-06-30", "2026-09-28")):
        paths = datagen.write_drop(tmp_path, 300, seed=3, as_of=as_of, days=90, drop=f"q{i}")
        arrived = pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)
        customers = _raw(paths[0], CUSTOMERS.reader, arrived)
        transactions = _raw(paths[1], TRANSACTIONS.reader, arrived)
        drops.append((f"q{i}", customers, transactions))
    resent = drops[0][2].iloc[[5]].assign(amount="1234.00", source_row=10**6)  # q0's row 5, again in q2
    drops[2] = (drops[2][0], drops[2][1], pd.concat([drops[2][2], resent], ignore_index=True))
    resent_id = str(resent["transaction_id"].iloc[0]).strip()

    one_by_one, quarantined = [], []
    earlier = EarlierFrames([])
    for name, customers, transactions in drops:
        result = _clean_drop(customers, transactions, earlier)
        earlier.drops.append((name, {k: r.clean for k, r in result.items()}))
        one_by_one.append(result["transactions"].clean)
        quarantined.append(result["transactions"].quarantine)
    all_customers = pd.concat([d[1] for d in drops], ignore_index=True)
    all_transactions = pd.concat([d[2] for d in drops], ignore_index=True)
    at_once = _clean_drop(all_customers, all_transactions, NoEarlierDrops())["transactions"].clean

    by_drop = pd.concat(one_by_one, ignore_index=True).sort_values("transaction_id", ignore_index=True)
    whole = at_once.sort_values("transaction_id", ignore_index=True)
    assert len(by_drop) == len(whole) > 1000
    pd.testing.assert_series_equal(by_drop["transaction_id"], whole["transaction_id"])
    same = by_drop["transaction_id"] != resent_id
    pd.testing.assert_frame_equal(by_drop[same].reset_index(drop=True), whole[same].reset_index(drop=True))
    assert by_drop.loc[~same, "amount"].item() != 1234.0 and whole.loc[~same, "amount"].item() == 1234.0
    reason = f"transaction_id {resent_id} was already received in drop q0; the earlier record was kept"
    assert reason in set(quarantined[2]["reason"])


class _CountingFirstDrop(NoEarlierDrops):
    """The first drop, counting the cross-drop lookups cleaning asks for."""

    def __init__(self) -> None:
        self.lookups = 0

    def matching(self, kind: str, column: str, values: pa.Array) -> pa.Table:
        self.lookups += 1
        return super().matching(kind, column, values)


def test_the_first_drop_skips_the_cross_drop_lookups_and_cleans_as_one_drop_alone() -> None:
    customers = _frame([_cust(), _cust(customer_id="C2")], CUST_COLUMNS)
    raw = _frame(
        [_tx(), _tx(transaction_id="T2", customer_id="C2"), _tx(transaction_id="T3", customer_id="C9")], TX_COLUMNS
    )
    first = _CountingFirstDrop()
    result = TRANSACTIONS.clean(raw, customers, earlier=first)
    assert first.lookups == 0  # hashing every id of a 20M-row first drop bought nothing (bench-pipeline: ~15 s)
    assert EarlierFrames([]).empty and not EarlierFrames([("q1", {})]).empty
    alone = TRANSACTIONS.clean(raw, customers, earlier=EarlierFrames([]))
    pd.testing.assert_frame_equal(result.clean, alone.clean)
    assert sorted(result.clean["transaction_id"]) == ["T1", "T2"]
    assert result.quarantine["reason"].str.contains("C9").any()
