"""Per-drop customer state (``core.customer_state``) on the embedded engine: features from the combined state of
every drop equal the from-scratch features (``core.features.build_features``, the reference) bit for bit, on drops
with late rows, re-sent transaction ids, re-sent customers and a backfill; and for any split of one history into
drops combined in any grouping (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from hvbuyer_assets.core import customer_state, engine, features
from hvbuyer_assets.core.feature_defs import TOTALS
from hvbuyer_assets.engines import EmbeddedEngine
from hvbuyer_assets.engines.interface import CUSTOMERS as CUST
from hvbuyer_assets.engines.interface import input_asset
from hvbuyer_assets.storage.files import arrow_to_pandas
from hvbuyer_assets.storage.staged import StagedTable
from hvbuyer_tests.core.test_feature_defs import customers as customer_frame
from hvbuyer_tests.core.test_feature_defs import digest, transactions
from hvbuyer_tests.state_drops import clean_drops, history

LARGE = 300.0


def state_of(tx: pd.DataFrame) -> pa.Table:
    return engine.collect_keyed(customer_state.drop_state(engine.keyed_transactions(tx), LARGE))


def combined(states: list[pa.Table]) -> pa.Table:
    return engine.collect_keyed(customer_state.combine([engine.keyed_state(s) for s in states]))


def from_state(total: pa.Table, recent: pd.DataFrame, customers: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    return features.state_features_frame(
        engine.keyed_state(total),
        engine.keyed_transactions(recent),
        engine.keyed_customers(customers),
        engine.collect_keyed,
        as_of,
        LARGE,
    )


def as_of_of(total: pa.Table) -> pd.Timestamp:
    latest = engine.collect_keyed(customer_state.latest(engine.keyed_state(total))).column("latest_ns")[0].as_py()
    return pd.Timestamp(latest, unit="ns", tz="UTC")


def in_window(tx: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Only the rows the features step reads besides the state: those of the longest window."""
    start = pd.Timestamp(customer_state.window_start(as_of.value), unit="ns", tz="UTC")
    return tx[tx["timestamp"] > start]


def test_features_from_the_drops_states_equal_features_from_scratch_bit_for_bit() -> None:
    drops = clean_drops()
    q1, q2, q3 = drops
    assert q2.transactions["timestamp"].min() < q1.transactions["timestamp"].max()  # late rows
    assert q3.transactions["timestamp"].min() < q1.transactions["timestamp"].min()  # a backfill
    assert set(q2.quarantined_ids) >= {f"T{i}" for i in range(50)}  # re-sent ids: the first record stays
    assert set(q2.customers["customer_id"]) & set(q1.customers["customer_id"])  # re-sent customers
    tx, customers = history(drops)
    assert (
        customers.set_index("customer_id").loc["C010", "age"]
        == q2.customers.set_index("customer_id").loc["C010", "age"]
    )

    states = [state_of(d.transactions) for d in drops]
    running = states[0]
    for state in states[1:]:  # a new drop at a time: previous running total + the new drop's state
        running = combined([running, state])
    rebuilt = combined(states)  # a backfill / re-clean: every drop's state at once
    as_of = as_of_of(running)
    assert as_of == tx["timestamp"].max()

    reference = features.build_features(tx, customers, as_of, LARGE)
    for total in (running, rebuilt):
        got = from_state(total, in_window(tx, as_of), customers, as_of)
        pd.testing.assert_frame_equal(got, reference, check_exact=True)
        assert digest(got) == digest(reference)
    assert (reference["n_transactions"] > 0).sum() == 50


def test_the_amount_at_the_latest_purchase_is_the_largest_of_a_tie_across_drops() -> None:
    at = pd.Timestamp("2025-01-10T00:00:00Z")
    first = transactions([("x", 40.0, at, "completed"), ("x", 90.0, at - pd.Timedelta(days=3), "completed")])
    second = transactions([("x", 55.0, at, "completed"), ("x", 500.0, at, "pending")])  # tie; a pending is no buy
    later_drop_older_row = transactions([("x", 70.0, at - pd.Timedelta(days=1), "completed")])
    total = combined([state_of(first), state_of(later_drop_older_row), state_of(second)])
    row = total.to_pandas().set_index("customer_id").loc["x"]
    assert (row["last_amount"], row["max_spend"], row["n_completed"], row["n_transactions"]) == (55.0, 90.0, 4, 5)
    assert row["last_purchase_ns"] == at.value and row["first_purchase_ns"] == (at - pd.Timedelta(days=3)).value


def test_a_state_row_per_customer_id_known_or_not_in_the_state_schema() -> None:
    tx = transactions([("x", 1.0, pd.Timestamp("2025-01-01", tz="UTC"), "failed"), ("ghost", 2.0, None, "completed")])
    state = state_of(tx)
    assert state.column_names == ["customer_id", *TOTALS]
    assert state.num_rows == 1  # a row without a time is ignored, as by the features
    assert state.schema.field("n_transactions").type == pa.int64()
    assert state.to_pylist()[0]["last_purchase_ns"] is None and state.to_pylist()[0]["n_failed"] == 1
    with pytest.raises(ValueError, match="no state"):
        customer_state.combine([])


# A history: rows of (customer, day, amount, status); few distinct days and amounts, so ties are common.
_row = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "zz"]),  # "zz" has no customer record
    st.integers(0, 800),
    st.sampled_from([0.1, 0.2, 19.99, 300.0, 300.01, 1234.5]),
    st.sampled_from(["completed", "completed", "pending", "refunded", "failed"]),
)


# Customer records: (customer, age, drop), one per customer and drop (cleaning keeps one); a customer sent in
# several drops is re-sent.
_record = st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(18, 90), st.integers(0, 4))


def running_latest_customers(records: list[tuple[str, int, int]], folder: Path) -> tuple[pd.DataFrame, pa.Table]:
    """Each drop's customer records stored as a clean file; ``latest_customers`` kept a drop at a time (previous
    table + the new drop, ``Engine.stage_latest_customers``) and read back; and from scratch (every drop read
    together, latest wins: ``StoredAsset.read_drops``)."""
    start = pd.Timestamp("2023-01-01T00:00:00Z")
    files = []
    for drop in sorted({d for _, _, d in records}):
        mine = [(c, age) for c, age, d in records if d == drop]
        frame = customer_frame([c for c, _ in mine], [start - pd.Timedelta(days=age) for _, age in mine])
        frame["age"] = [float(age) for _, age in mine]
        files.append(str(folder / f"{drop}.parquet"))
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), files[-1])
    latest = str(folder / "latest_customers.parquet")
    for i, f in enumerate(files):
        staged = StagedTable(latest)
        EmbeddedEngine().stage_latest_customers([latest, f] if i else [f], staged)
        staged.commit()
    scratch = EmbeddedEngine().read(input_asset(CUST), files).native
    return arrow_to_pandas(pq.read_table(latest)), scratch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(_row, min_size=0, max_size=60),
    drops=st.lists(st.integers(0, 4), min_size=60, max_size=60),
    one_at_a_time=st.booleans(),
    records=st.lists(_record, min_size=1, max_size=12, unique_by=lambda r: (r[0], r[2])),
)
def test_any_split_of_a_history_into_drops_gives_the_features_of_the_whole(
    rows: list[tuple], drops: list[int], one_at_a_time: bool, records: list[tuple[str, int, int]]
) -> None:
    start = pd.Timestamp("2023-01-01T00:00:00Z")
    tx = transactions([(c, a, start + pd.Timedelta(days=d), s) for c, d, a, s in rows])
    with tempfile.TemporaryDirectory() as folder:
        customers, scratch = running_latest_customers(records, Path(folder))
    assert pa.Table.from_pandas(customers, preserve_index=False).equals(
        scratch.replace_schema_metadata(None).cast(pa.Table.from_pandas(customers, preserve_index=False).schema)
    )
    assign = np.array(drops[: len(tx)])
    parts = [tx[assign == k] for k in range(5) if (assign == k).any()] or [tx]
    states = [state_of(part) for part in parts]
    if one_at_a_time:
        total = states[0]
        for state in states[1:]:
            total = combined([total, state])
    else:
        total = combined(states)
    as_of = start + pd.Timedelta(days=800) if tx.empty else tx["timestamp"].max()
    got = from_state(total, in_window(tx, as_of), customers, as_of)
    assert digest(got) == digest(features.build_features(tx, arrow_to_pandas(scratch), as_of, LARGE))


def _drop(name: str, state_id: str = "a", max_day: int = 0, large: float = LARGE) -> customer_state.DropState:
    day = pd.Timedelta(days=1).value
    return customer_state.DropState(name, state_id, 0, max_day * day, large)


def test_the_running_total_adds_new_drops_and_is_rebuilt_when_an_earlier_drop_changed() -> None:
    plan = customer_state.plan_totals
    q1, q2, q3 = _drop("q1"), _drop("q2"), _drop("q3")
    assert plan(None, [q1], LARGE).mode == "rebuild"
    added = plan([q1, q2], [q1, q2, q3], LARGE)
    assert (added.mode, added.drops) == ("incremental", (q3,))
    assert plan([q1, q2], [q1, q2], LARGE).mode == "unchanged"
    recleaned = plan([q1, q2], [_drop("q1", "b"), q2, q3], LARGE)  # q1 re-cleaned: a new state_id
    assert (recleaned.mode, recleaned.drops) == ("rebuild", (_drop("q1", "b"), q2, q3)) and "q1" in recleaned.why
    assert plan([q1, q2], [q2], LARGE).mode == "rebuild"  # a drop removed
    backfill = _drop("old", max_day=-2000)  # a new drop of old data is just a new drop (combined by drop)
    assert plan([q1], [q1, backfill], LARGE).drops == (backfill,)
    with pytest.raises(ValueError, match=r"drop\(s\) q2 .* another large-purchase threshold than 500"):
        plan(None, [_drop("q1", large=500.0), q2], 500.0)
    with pytest.raises(ValueError, match="no drop has a customer_state"):
        plan(None, [], LARGE)
    assert customer_state.DropState.from_json(q1.to_json()) == q1


def test_only_drops_with_rows_inside_the_longest_window_are_read() -> None:
    as_of = pd.Timedelta(days=1000).value
    old, edge, inside = _drop("old", max_day=600), _drop("edge", max_day=635), _drop("in", max_day=636)
    empty = customer_state.DropState("empty", "a", None, None, LARGE)
    assert customer_state.drops_in_window([old, edge, inside, empty], as_of) == [inside]  # (T - 365 d, T]


def test_the_latest_customers_table_adds_new_drops_at_the_end_and_is_rebuilt_when_a_file_changed() -> None:
    """``plan_running`` of ``latest_customers``: latest wins by drop order, so only drops after every drop of the
    previous table are added to it; a drop whose clean file was written again rebuilds it."""
    v = customer_state.DropVersion
    q1, q2, q3 = v("q1", "10:1"), v("q2", "20:2"), v("q3", "30:3")
    assert customer_state.plan_running([q1], [q1, q2, q3]) == customer_state.TotalsPlan(
        "incremental", (q2, q3), "2 new drop(s) added to the previous total"
    )
    assert customer_state.plan_running([q1, q2], [q1, q2]).mode == "unchanged"
    assert customer_state.plan_running([q1, q2], [v("q1", "10:9"), q2]).mode == "rebuild"  # q1 re-cleaned
    assert customer_state.plan_running([q1, q3], [q1, q2, q3]).mode == "rebuild"  # q2 sorts before q3
    assert customer_state.DropVersion.from_json(q1.to_json()) == q1


def test_the_label_windows_read_only_the_drops_whose_time_range_meets_them() -> None:
    day = pd.Timedelta(days=1).value
    old, edge, inside = _drop("old", max_day=100), _drop("edge", max_day=200), _drop("in", max_day=250)
    later = customer_state.DropState("later", "a", 301 * day, 400 * day, LARGE)
    empty = customer_state.DropState("empty", "a", None, None, LARGE)
    drops = [old, edge, inside, later, empty]
    assert customer_state.drops_between(drops, 200 * day, 300 * day) == [inside]  # (start, end]
    assert customer_state.drops_between(drops, 200 * day, 301 * day) == [inside, later]
    assert customer_state.latest_of(drops) == 400 * day and customer_state.latest_of([empty]) is None
