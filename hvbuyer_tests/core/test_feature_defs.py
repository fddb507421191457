"""The narwhals declaration (core.feature_defs) on the embedded engine (core.engine): hand-computed values at the
window edges, exact and order-free money sums, determinism across runs, row orders and thread counts, the
input convention on string keys, and the training rows as the per-cutoff features plus labels."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import narwhals as nw
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from hvbuyer_assets.core import engine, feature_defs, features, labels, training
from hvbuyer_assets.core.features import FEATURE_COLUMNS, FEATURE_NUMERIC

REPO = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2025-01-31T00:00:00Z")
DAY = pd.Timedelta(days=1)
STRING = "string[pyarrow]"


def customers(ids: list[str], signups: list[object] | None = None) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "customer_id": pd.array(ids, dtype=STRING),
            "age": np.full(n, 40.0),
            "region": pd.array(["east"] * n, dtype=STRING),
            "signup_date": pd.to_datetime(signups if signups is not None else [None] * n, utc=True),
            "loyalty_points": np.full(n, 10.0),
        }
    )


def transactions(rows: list[tuple]) -> pd.DataFrame:
    """rows: (customer_id, amount, timestamp, status)."""
    cust, amount, ts, status = (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [], [])
    return pd.DataFrame(
        {
            "customer_id": pd.array(cust, dtype=STRING),
            "amount": np.array(amount, dtype="float64"),
            "timestamp": pd.to_datetime(ts, utc=True),
            "status": pd.array(status, dtype=STRING),
        }
    )


def generated(n_customers: int = 300, n_rows: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random frames whose amounts are not round (float sums of them depend on the order of addition)."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:04d}" for i in range(n_customers)]
    start = AS_OF - pd.Timedelta(days=800)
    tx = pd.DataFrame(
        {
            "customer_id": pd.array(rng.choice(ids + ["unknown"], n_rows), dtype=STRING),
            "amount": rng.gamma(2.0, 80.0, n_rows),
            "timestamp": start + pd.to_timedelta(rng.integers(0, 800 * 86_400, n_rows), unit="s"),
            "status": pd.array(rng.choice(["completed"] * 6 + ["pending", "refunded", "failed"], n_rows), dtype=STRING),
        }
    )
    signups = [
        None if i % 7 == 0 else start + pd.Timedelta(days=int(d))
        for i, d in enumerate(rng.integers(0, 700, n_customers))
    ]
    return tx, customers(ids, signups)


def digest(frame: pd.DataFrame) -> str:
    """Bytes of every column (float bits exactly, NaN included) and of the index."""
    h = hashlib.sha256()
    for name in frame.columns:
        column = frame[name]
        h.update(name.encode())
        if column.dtype.kind in "fiub":
            h.update(np.ascontiguousarray(column.to_numpy()).tobytes())
        else:
            h.update("\x1f".join(map(str, column.tolist())).encode())
    h.update("\x1f".join(map(str, frame.index.tolist())).encode())
    return h.hexdigest()


def test_every_feature_at_the_window_edges_is_the_hand_computed_value() -> None:
    tx = transactions(
        [
            ("x", 10.0, AS_OF - 365 * DAY, "completed"),  # t - 365 d: outside every window, still in totals
            ("x", 20.0, AS_OF - 90 * DAY, "completed"),  # t - 90 d: outside 90 d, inside 365 d
            ("x", 40.0, AS_OF - 30 * DAY + pd.Timedelta(1, "ns"), "completed"),  # 1 ns inside 30 d
            ("x", 300.0, AS_OF - 2 * DAY, "completed"),  # large
            ("x", 70.0, AS_OF, "completed"),  # at t: included, ties with the next
            ("x", 60.0, AS_OF, "completed"),
            ("x", 900.0, AS_OF, "pending"),  # larger, same time, not a purchase: not last_amount
            ("x", 5.0, AS_OF - DAY, "refunded"),
            ("x", 6.0, AS_OF - DAY, "failed"),
            ("x", 1000.0, AS_OF + pd.Timedelta(1, "ns"), "completed"),  # 1 ns after t: ignored
        ]
    )
    x = features.build_features(tx, customers(["x"], [AS_OF - 10 * DAY]), AS_OF, large_amount=300.0).loc["x"]
    expected = {
        "n_transactions": 9,
        "n_completed": 6,
        "n_completed_30d": 4,
        "n_completed_90d": 4,
        "n_completed_365d": 5,
        "total_spend": 500.0,
        "spend_90d": 470.0,
        "spend_365d": 490.0,
        "avg_spend": 500.0 / 6,
        "max_spend": 300.0,
        "last_amount": 70.0,
        "n_large": 1,
        "share_large": 1 / 6,
        "days_since_last_purchase": 0.0,
        "days_since_first_purchase": 365.0,
        "refund_rate": 1 / 8,
        "n_failed": 1,
        "tenure_days": 10.0,
    }
    assert {name: x[name] for name in expected} == expected
    assert x["last_event_at"] == AS_OF and x["feature_as_of"] == AS_OF


def test_money_sums_are_exact_sums_of_micro_units() -> None:
    tx = transactions([("x", 0.1, AS_OF - DAY, "completed")] * 3)
    x = features.build_features(tx, customers(["x"]), AS_OF).loc["x"]
    assert 0.1 + 0.1 + 0.1 != 0.3  # float addition gives 0.30000000000000004
    assert x["total_spend"] == 0.3 and x["spend_90d"] == 0.3 and x["spend_365d"] == 0.3
    assert x["avg_spend"] == 0.3 / 3


def test_counts_past_the_range_of_a_small_int_do_not_wrap() -> None:
    tx = transactions([("x", 1.0, AS_OF - DAY, "completed")] * 300)
    x = features.build_features(tx, customers(["x"]), AS_OF).loc["x"]
    assert (x["n_transactions"], x["n_completed"], x["n_completed_30d"]) == (300, 300, 300)


def test_features_are_the_same_bits_whatever_the_row_order() -> None:
    tx, cust = generated()
    base = features.build_features(tx, cust, AS_OF)
    for seed in (1, 2, 3):
        shuffled = tx.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        assert digest(features.build_features(shuffled, cust.iloc[::-1], AS_OF)) == digest(base)
    plain = tx[tx["timestamp"] <= AS_OF]  # a float sum in another order differs somewhere: what the rule avoids
    done = plain[(plain["status"] == "completed") & plain["customer_id"].isin(cust["customer_id"])]
    forward = done.groupby("customer_id")["amount"].sum()
    backward = done.iloc[::-1].groupby("customer_id")["amount"].sum()
    assert (forward != backward.reindex(forward.index)).any()


_RUN = """
import hashlib, sys
sys.path.insert(0, {tests!r})
from test_feature_defs import AS_OF, digest, generated
from hvbuyer_assets.core import features, training
tx, cust = generated()
print(digest(features.build_features(tx, cust, AS_OF)))
print(digest(training.build_training_set(tx, cust, AS_OF, horizon_days=60, train_snapshots=3)))
"""


def test_features_and_training_set_are_the_same_bits_on_every_run_and_thread_count() -> None:
    code = _RUN.format(tests=str(Path(__file__).parent))
    outputs = set()
    for threads in ("1", "2", "2"):
        env = {"POLARS_MAX_THREADS": threads, "PATH": "/usr/bin:/bin"}
        run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.add(run.stdout)
    assert len(outputs) == 1, outputs


def test_the_declaration_on_string_keys_equals_the_embedded_engine() -> None:
    """The input convention as another engine would pass it (string ids, ns times, null signup, unknown
    customers and null times left in): the same frame as the embedded engine's encoded run."""
    tx, cust = generated(n_customers=50, n_rows=3_000)
    ts = tx["timestamp"].array.asi8.copy()
    ts[::50] = 0
    lazy_tx = pl.DataFrame(
        {
            "customer_id": tx["customer_id"].to_numpy(dtype=object),
            "ts": pl.Series(ts).set(pl.Series(ts == 0), None),
            "amount": tx["amount"].to_numpy(),
            "status": tx["status"].to_numpy(dtype=object),
        }
    ).lazy()
    signup = features.timestamps_ns(cust["signup_date"])
    lazy_cust = pl.DataFrame(
        {
            "customer_id": cust["customer_id"].to_numpy(dtype=object),
            "signup_ns": pl.Series(signup).set(pl.Series(signup == features.NAT_NS), None),
            "age": cust["age"].to_numpy(),
            "loyalty_points": cust["loyalty_points"].to_numpy(),
            "region": cust["region"].to_numpy(dtype=object),
        }
    ).lazy()

    def collect(lazy: nw.LazyFrame) -> pa.Table:  # unordered, as a distributed engine returns rows
        return lazy.collect(backend="polars").to_arrow()[::-1]

    other = engine.Frames(nw.from_native(lazy_tx), nw.from_native(lazy_cust), collect)
    kept = tx[ts != 0]
    pd.testing.assert_frame_equal(
        features.features_frame(other, AS_OF, 300.0), features.build_features(kept, cust, AS_OF, 300.0)
    )
    cutoff = AS_OF - 60 * DAY
    pd.testing.assert_series_equal(
        labels.labels_frame(other, cutoff, 30, 300.0),
        labels.build_labels(kept, cust["customer_id"], cutoff, 30, 300.0).sort_index(),
    )
    expected = training.build_training_set(kept, cust, AS_OF, horizon_days=30, threshold=300.0, train_snapshots=2)
    got = training.training_frame(other, AS_OF, horizon_days=30, threshold=300.0, train_snapshots=2)
    pd.testing.assert_frame_equal(got, expected)


def test_training_rows_are_the_features_and_labels_of_each_cutoff() -> None:
    tx, cust = generated()
    horizon, threshold = 60, 250.0
    ts = training.build_training_set(tx, cust, AS_OF, horizon, threshold, train_snapshots=3, snapshot_step_days=45)
    train, holdout = training.snapshot_cutoffs(AS_OF, horizon, 3, 45)
    assert list(ts["cutoff"].unique()) == [*train, holdout]
    signup = cust.set_index("customer_id")["signup_date"]
    for cutoff, rows in ts.groupby("cutoff", sort=False):
        feats = features.build_features(tx, cust, cutoff, large_amount=threshold)
        eligible = signup.isna() | (signup <= cutoff)
        expected = feats.loc[eligible[eligible].index, [*FEATURE_COLUMNS, "last_event_at"]]
        got = rows.set_index("customer_id")
        got.index.name = "customer_id"
        pd.testing.assert_frame_equal(got[expected.columns], expected, check_index_type=False)
        label = labels.build_labels(tx, cust["customer_id"], cutoff, horizon, threshold)
        assert (got["label"].to_numpy() == label.loc[got.index].to_numpy()).all()
        assert (rows["split"] == ("holdout" if cutoff == holdout else "train")).all()
    assert ts["label"].sum() > 0 and ts["label"].dtype == np.int8


def test_history_gives_the_latest_time_and_the_earliest_known_customers_time() -> None:
    tx = transactions(
        [
            ("x", 1.0, AS_OF - 9 * DAY, "completed"),
            ("ghost", 1.0, AS_OF - 20 * DAY, "completed"),  # unknown customer: not the earliest
            ("x", 1.0, AS_OF - DAY, "failed"),
            ("ghost", 1.0, AS_OF, "pending"),  # the latest transaction of all is T, whoever made it
        ]
    )
    frames = engine.from_pandas(tx, customers(["x"]))
    row = frames.collect(feature_defs.history(frames.transactions, frames.customers)).to_pylist()[0]
    assert row == {"latest_ns": AS_OF.value, "earliest_ns": (AS_OF - 9 * DAY).value}
    assert features.latest_event_time(tx) == AS_OF


def test_feature_outputs_are_float64_and_times_never_pass_through_float() -> None:
    odd = AS_OF - pd.Timedelta(123_456_789_123_457, "ns")  # not representable as float64 ns since epoch
    assert float(odd.value) != odd.value
    tx = transactions([("x", 5.0, odd, "completed")])
    frame = features.build_features(tx, customers(["x", "y"], [odd, None]), AS_OF)
    assert frame.loc["x", "last_event_at"] == odd and frame.loc["x", "signup_date"] == odd
    assert frame.loc["y", "last_event_at"] is pd.NaT and frame.loc["y", "signup_date"] is pd.NaT
    assert all(frame[name].dtype == np.float64 for name in FEATURE_NUMERIC)


def test_duplicate_customer_ids_raise() -> None:
    with pytest.raises(ValueError, match="unique"):
        engine.from_pandas(transactions([]), customers(["x", "x"]))


def test_features_at_several_cutoffs_are_the_features_at_each_cutoff_bit_for_bit() -> None:
    """The shared computation of the training set (earliest cutoff in full, each later one from the previous
    totals plus the rows since it) equals ``features`` run alone at each cutoff, whatever the cutoffs' order."""
    tx, cust = generated()
    frames = engine.from_pandas(tx, cust)
    cutoffs = [(AS_OF - d * DAY).value for d in (40, 400, 95, 41)]  # unordered; 40 / 41 days: one day apart
    shared = feature_defs.features_at(frames.transactions, frames.customers, cutoffs, 250.0)
    assert sorted(shared) == sorted(cutoffs)
    for cutoff in cutoffs:
        alone = frames.collect(feature_defs.features(frames.transactions, frames.customers, cutoff, 250.0))
        assert frames.collect(shared[cutoff]).equals(alone), cutoff


def test_embedded_rows_come_in_customer_id_byte_order_so_finishing_needs_no_sort() -> None:
    """The embedded engine codes customers by their ids in byte order, so its rows (ordered by code) already are
    in the order ``finish_*`` guarantee and ``sort_rows`` keeps the table as it is; an engine that returns rows
    in another order (Spark) is sorted into the same frame."""
    ids = ["b", "a10", "B", "é", "a9", "Z", "a"]  # neither insertion, numeric nor case-insensitive order
    tx = transactions([(i, 10.0 + k, AS_OF - (k + 1) * 30 * DAY, "completed") for k, i in enumerate(ids * 3)])
    frames = engine.from_pandas(tx, customers(ids))
    byte_order = sorted(ids, key=str.encode)
    feats = frames.collect(feature_defs.features(frames.transactions, frames.customers, AS_OF.value, 300.0))
    assert feats.column("customer_id").to_pylist() == byte_order
    cutoffs = [("train", (AS_OF - 200 * DAY).value), ("holdout", (AS_OF - 100 * DAY).value)]
    rows = frames.collect(feature_defs.training_rows(frames.transactions, frames.customers, cutoffs, 90, 300.0))
    assert rows.column("customer_id").to_pylist() == byte_order * 2
    assert rows.column("snapshot").to_pylist() == [0] * len(ids) + [1] * len(ids)
    for table, keys in ((feats, ["customer_id"]), (rows, ["snapshot", "customer_id"])):
        assert features.in_order(table, keys) and features.sort_rows(table, keys) is table
        shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
        assert not features.in_order(shuffled, keys) and features.sort_rows(shuffled, keys).equals(table)
    assert list(features.finish_features(feats, AS_OF.value).index) == byte_order


def test_in_order_compares_keys_lexicographically() -> None:
    table = pa.table({"snapshot": [0, 0, 1, 1], "customer_id": ["b", "c", "a", "b"]})
    assert features.in_order(table, ["snapshot", "customer_id"])
    assert not features.in_order(table, ["customer_id"])  # the second key decides only on ties of the first
    assert not features.in_order(table.take([1, 0, 2, 3]), ["snapshot", "customer_id"])
    assert features.in_order(table.slice(0, 1), ["snapshot"]) and features.in_order(table.slice(0, 0), ["snapshot"])
    with_null = pa.table({"customer_id": ["a", None]})
    assert not features.in_order(with_null, ["customer_id"])  # nulls: sort_indices decides where they go
    assert features.sort_rows(with_null, ["customer_id"]).column(0).to_pylist() == ["a", None]
