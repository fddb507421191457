"""Drops that test the per-drop state (``core.customer_state``): cleaned one at a time by the real cleaning rules
(``core.sources``, earlier drops' ids through ``EarlierFrames``), with what makes combining by time wrong.

- ``q1`` (arrives 2024-07-01): 40 customers, 2,000 transactions over 2022-01 .. 2024-06.
- ``q2`` (2025-01-01): re-sends 10 customers with new ages and regions, adds 10; 1,000 transactions from
  2024-05 (late rows, before q1's latest), re-sends 50 of q1's transaction_ids with other amounts (cleaning
  quarantines them), ties the latest purchase time of a q1 customer with another amount.
- ``q3`` (2025-02-01, a backfill): 500 transactions of 2019 .. 2021, older than everything, plus a few in the
  last 365 days and one more tie at a q2 customer's latest purchase time.

Amounts are not round (float sums would depend on the order of addition); statuses are mixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from hvbuyer_assets.core.cleaning.history import EarlierFrames, latest_rows
from hvbuyer_assets.core.sources import CUSTOMERS, TRANSACTIONS
from hvbuyer_assets.storage.files import arrow_to_pandas

S = "string[pyarrow]"
STATUSES = ["completed"] * 6 + ["pending", "refunded", "failed"]
TX_COLUMNS = ("transaction_id", "customer_id", "amount", "timestamp", "payment_method", "status")
CUST_COLUMNS = ("customer_id", "age", "region", "signup_date", "loyalty_points")


@dataclass(frozen=True)
class CleanDrop:
    """One drop after cleaning: its clean customers and transactions, and what cleaning set aside."""

    name: str
    customers: pd.DataFrame
    transactions: pd.DataFrame
    quarantined_ids: list[str]


def _raw(rows: dict[str, list[object]], columns: tuple[str, ...], arrived: str) -> pd.DataFrame:
    """A raw frame as the shell builds it: string columns, lineage, arrived_at."""
    n = len(next(iter(rows.values())))
    frame = pd.DataFrame(
        {col: pd.Series([None if v is None else str(v) for v in rows[col]], dtype=S) for col in columns}
    )
    frame["source_file"] = pd.Series(["file"] * n, dtype=S)
    frame["source_row"] = np.arange(1, n + 1, dtype="int64")
    frame["arrived_at"] = pd.Series([pd.Timestamp(arrived, tz="UTC")] * n, dtype="datetime64[ns, UTC]")
    return frame


def _customers(ids: list[str], rng: np.random.Generator, arrived: str) -> pd.DataFrame:
    n = len(ids)
    signups = [None if i % 5 == 0 else f"20{10 + i % 12:02d}-0{1 + i % 9}-15" for i in range(n)]
    rows = {
        "customer_id": ids,
        "age": [None if i % 7 == 3 else int(a) for i, a in enumerate(rng.integers(18, 90, n))],
        "region": [rng.choice(["East", "west ", "North", None]) for _ in range(n)],
        "signup_date": signups,
        "loyalty_points": list(rng.integers(0, 3000, n)),
    }
    return _raw(rows, CUST_COLUMNS, arrived)


def _transactions(
    ids: list[str], customer_ids: list[str], start: str, end: str, rng: np.random.Generator
) -> dict[str, list[object]]:
    n = len(ids)
    lo, hi = pd.Timestamp(start, tz="UTC").value, pd.Timestamp(end, tz="UTC").value
    stamps = pd.to_datetime(rng.integers(lo, hi, n), utc=True)
    return {
        "transaction_id": ids,
        "customer_id": list(rng.choice(customer_ids, n)),
        "amount": [f"{a:.2f}" for a in rng.gamma(2.0, 90.0, n) + 0.01],
        "timestamp": [t.isoformat() for t in stamps],
        "payment_method": ["card"] * n,
        "status": list(rng.choice(STATUSES, n)),
    }


def _extend(rows: dict[str, list[object]], more: dict[str, list[object]]) -> dict[str, list[object]]:
    return {key: rows[key] + more[key] for key in rows}


def _latest_purchase(drop: CleanDrop, customer: str) -> tuple[str, float]:
    done = drop.transactions[
        (drop.transactions["customer_id"] == customer) & (drop.transactions["status"] == "completed")
    ]
    at = done["timestamp"].max()
    return at.isoformat(), float(done.loc[done["timestamp"] == at, "amount"].max())


def _clean(name: str, customers: pd.DataFrame, transactions: pd.DataFrame, before: list[CleanDrop]) -> CleanDrop:
    earlier = EarlierFrames([(d.name, {"customers": d.customers, "transactions": d.transactions}) for d in before])
    cust = CUSTOMERS.clean(customers, earlier=earlier)
    tx = TRANSACTIONS.clean(transactions, cust.clean, earlier=earlier)
    return CleanDrop(name, cust.clean, tx.clean, tx.quarantine["record_id"].astype(str).tolist())


def clean_drops(seed: int = 0) -> list[CleanDrop]:
    """q1, q2, q3 (module docstring), each cleaned after the ones before it."""
    rng = np.random.default_rng(seed)
    first_ids = [f"C{i:03d}" for i in range(40)]
    q1_tx = _transactions([f"T{i}" for i in range(2000)], first_ids, "2022-01-01", "2024-06-30", rng)
    q1 = _clean("q1", _customers(first_ids, rng, "2024-07-01"), _raw(q1_tx, TX_COLUMNS, "2024-07-01"), [])

    q2_ids = [f"C{i:03d}" for i in range(10, 20)] + [f"C{i:03d}" for i in range(40, 50)]
    q2_tx = _transactions([f"T{i}" for i in range(2000, 3000)], first_ids + q2_ids, "2024-05-01", "2024-12-31", rng)
    resent = {key: values[:50] for key, values in q1_tx.items()}
    resent["amount"] = [f"{float(a) + 1:.2f}" for a in resent["amount"]]
    at, amount = _latest_purchase(q1, "C005")
    tie = {
        "transaction_id": ["T2999x"],
        "customer_id": ["C005"],
        "amount": [f"{amount + 7.5:.2f}"],
        "timestamp": [at],
        "payment_method": ["card"],
        "status": ["completed"],
    }
    q2_raw = _raw(_extend(_extend(q2_tx, resent), tie), TX_COLUMNS, "2025-01-01")
    q2 = _clean("q2", _customers(q2_ids, rng, "2025-01-01"), q2_raw, [q1])

    everyone = first_ids + [f"C{i:03d}" for i in range(40, 50)]
    q3_tx = _transactions([f"T{i}" for i in range(3000, 3500)], everyone, "2019-01-01", "2021-12-31", rng)
    recent = _transactions([f"T{i}" for i in range(3500, 3520)], everyone, "2024-12-01", "2025-01-31", rng)
    at, amount = _latest_purchase(q2, "C045")
    tie = {
        "transaction_id": ["T3999x"],
        "customer_id": ["C045"],
        "amount": [f"{amount - 0.5:.2f}"],
        "timestamp": [at],
        "payment_method": ["card"],
        "status": ["completed"],
    }
    q3_raw = _raw(_extend(_extend(q3_tx, recent), tie), TX_COLUMNS, "2025-02-01")
    q3 = _clean("q3", _customers([], rng, "2025-02-01"), q3_raw, [q1, q2])
    return [q1, q2, q3]


def history(drops: list[CleanDrop]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every drop read together, as the from-scratch features read them: all clean transactions, and the latest
    record of each customer (``latest_rows``)."""
    tx = pd.concat([d.transactions for d in drops], ignore_index=True)
    customers = pa.Table.from_pandas(pd.concat([d.customers for d in drops], ignore_index=True), preserve_index=False)
    return tx, arrow_to_pandas(latest_rows(customers, "customer_id"))
