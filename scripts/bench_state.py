"""The features step of each new drop, before and after the per-drop customer state, in one process on the same
data: a base history (default 4 years) plus 10 drops of 30 days (each with 2 % late rows from the 60 days before it),
stored as the clean assets store them (one parquet file per drop; rows in time order, as an export in time order
gives), on the embedded engine.

- before: ``customer_features`` from scratch, every drop's clean transactions read and aggregated
  (``Engine.load`` + ``Engine.features``);
- after: the drop's state (``Engine.drop_state``), the running total (``Engine.combine_states`` of the previous
  total and the new state), the features from the total plus the drops inside the longest window
  (``Engine.state_features``); states and totals written and read as parquet, as the assets do.

Both give the same frame (checked at every drop). Prints each drop's seconds and the 10th/1st ratios.

``--resend-customers``: every drop carries every customer's record again (as the generated drops of
``make bench-scale`` do; 1 % of them changed), and CPU seconds (this process, every thread) are printed instead:

- features, every drop's customers: the state path above reading every drop's clean customers (latest wins);
- features, ``latest_customers``: the previous latest table plus the new drop's customers
  (``Engine.stage_latest_customers``), then the features from the total, the window and that one table;
- ``model_performance`` reads, before: T from every drop's transactions, the label window's rows of the whole
  history, every drop's customers; after: T from the drops' time ranges, only the drops meeting the window read
  with statistics pruning (``Engine.read_between``), the latest customers table. Labels of every customer for
  the window (T - 100 d, T - 10 d], checked equal.

    python scripts/bench_state.py [--customers 200000] [--years 4] [--drops 10] [--drop-days 30] \\
        [--workdir .bench/state] [--resend-customers]
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from hvbuyer_assets.core import labels
from hvbuyer_assets.core.customer_state import DropState, drops_between, drops_in_window, latest_of
from hvbuyer_assets.core.engine import Frames
from hvbuyer_assets.engines import EmbeddedEngine
from hvbuyer_assets.engines.interface import CUSTOMERS, TRANSACTIONS, input_asset
from hvbuyer_assets.storage.files import write_parquet
from hvbuyer_assets.storage.staged import StagedTable

START = pd.Timestamp("2022-01-01", tz="UTC")
LARGE = 300.0
TX_PER_CUSTOMER_YEAR = 6.75  # the 1M-customer bench: 27M transactions over 4 years


def transactions(rng: np.random.Generator, n: int, customers: int, start: pd.Timestamp, days: int) -> pd.DataFrame:
    seconds = rng.integers(0, days * 86_400, n)
    return pd.DataFrame(
        {
            "transaction_id": pd.array([f"T{start.value}-{i}" for i in range(n)], dtype="string[pyarrow]"),
            "customer_id": pd.array([f"C{i:07d}" for i in rng.integers(0, customers, n)], dtype="string[pyarrow]"),
            "amount": np.round(rng.gamma(2.0, 90.0, n) + 0.01, 2),
            "timestamp": start + pd.to_timedelta(seconds, unit="s"),
            "payment_method": pd.array(["card"] * n, dtype="string[pyarrow]"),
            "status": pd.array(
                rng.choice(["completed"] * 17 + ["pending", "refunded", "failed"], n), dtype="string[pyarrow]"
            ),
        }
    )


def generate(
    folder: Path, customers: int, years: int, drops: int, drop_days: int, resend: bool = False
) -> tuple[list[str], list[str]]:
    """Clean drops in the stored layout: (transaction files, customer files), base first."""
    rng = np.random.default_rng(7)
    (folder / "clean_transactions").mkdir(parents=True)
    (folder / "clean_customers").mkdir(parents=True)
    people = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i:07d}" for i in range(customers)], dtype="string[pyarrow]"),
            "age": rng.integers(18, 90, customers).astype(float),
            "region": pd.array(rng.choice(["East", "West", "North"], customers), dtype="string[pyarrow]"),
            "signup_date": START - pd.to_timedelta(rng.integers(0, 700, customers), unit="D"),
            "loyalty_points": rng.integers(0, 3000, customers).astype(float),
        }
    )
    tx_files, customer_files = [], []
    per_day = customers * TX_PER_CUSTOMER_YEAR / 365
    plan = [("base", START, years * 365)]
    first = START + pd.Timedelta(days=years * 365)
    plan += [(f"d{i:02d}", first + pd.Timedelta(days=drop_days * (i - 1)), drop_days) for i in range(1, drops + 1)]
    for name, start, days in plan:
        frame = transactions(rng, int(per_day * days), customers, start, days)
        if name != "base":  # late rows: 2 % of the drop from the 60 days before it
            late = transactions(rng, int(per_day * days * 0.02), customers, start - pd.Timedelta(days=60), 60)
            late["transaction_id"] = late["transaction_id"] + "-late"
            frame = pd.concat([frame, late], ignore_index=True)
        tx = folder / "clean_transactions" / f"{name}.parquet"  # an export in time order, as the generator's
        frame = frame.sort_values("timestamp", ignore_index=True)
        write_parquet(UPath(str(tx)), frame, None, preserve_index=False)
        cust = folder / "clean_customers" / f"{name}.parquet"
        sent = people if name == "base" or resend else people.iloc[:0]
        if resend and name != "base":  # 1 % of the records changed
            sent = people.assign(loyalty_points=people["loyalty_points"] + (rng.random(customers) < 0.01))
        write_parquet(UPath(str(cust)), sent, None, preserve_index=False)
        tx_files.append(str(tx))
        customer_files.append(str(cust))
    return tx_files, customer_files


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--drops", type=int, default=10)
    parser.add_argument("--drop-days", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/state"))
    parser.add_argument("--resend-customers", action="store_true", help="every customer in every drop (docstring)")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    tx_files, customer_files = generate(
        args.workdir, args.customers, args.years, args.drops, args.drop_days, args.resend_customers
    )
    rows = [pq.read_metadata(f).num_rows for f in tx_files]
    print(f"== {args.customers} customers; base {rows[0]} transactions, drops of {rows[1]}-{max(rows[1:])}")
    if args.resend_customers:
        return resent(args.workdir, tx_files, customer_files)
    engine = EmbeddedEngine()
    total = str(args.workdir / "customer_totals.parquet")
    state, low, high = engine.drop_state(tx_files[:1], LARGE)
    pq.write_table(state, total)
    states = [DropState("base", "0", low, high, LARGE)]
    before, after = [], []
    for k in range(1, len(tx_files)):
        started = time.perf_counter()
        frames = engine.load(tx_files[: k + 1], customer_files[: k + 1])
        reference = engine.features(frames, engine.data_as_of(frames), LARGE)
        before.append(time.perf_counter() - started)
        del frames

        started = time.perf_counter()
        state, low, high = engine.drop_state(tx_files[k : k + 1], LARGE)
        path = str(args.workdir / f"state-{k}.parquet")
        pq.write_table(state, path)
        pq.write_table(engine.combine_states([total, path]), total)
        states.append(DropState(f"d{k:02d}", str(k), low, high, LARGE))
        window = {s.drop for s in drops_in_window(states, max(s.max_ns for s in states))}
        files = [f for f, s in zip(tx_files, states, strict=False) if s.drop in window]
        got, _ = engine.state_features([total], files, customer_files[: k + 1], LARGE)
        after.append(time.perf_counter() - started)
        pd.testing.assert_frame_equal(got, reference, check_exact=True)
        print(
            f"  drop {k:2d}: history {sum(rows[: k + 1])} transactions; before {before[-1]:.2f} s, after "
            f"{after[-1]:.2f} s (window files {len(files)} of {k + 1})"
        )
    print("== results (the same frame before and after at every drop)")
    print(f"  before: first drop {before[0]:.2f} s, last {before[-1]:.2f} s: last/first = {before[-1] / before[0]:.2f}")
    print(f"  after:  first drop {after[0]:.2f} s, last {after[-1]:.2f} s: last/first = {after[-1] / after[0]:.2f}")
    print(f"  last drop before/after = {before[-1] / after[-1]:.2f}x")
    return 0


def _labels(frames: Frames, ids: pa.Array, as_of: pd.Timestamp) -> pd.Series:
    """Every customer's label for the 90-day window after ``as_of`` (what model_performance computes)."""
    return labels.labels_of(frames, ids, as_of, 90, LARGE)


def _performance_before(
    engine: EmbeddedEngine, tx_files: list[str], customer_files: list[str], ids: pa.Array
) -> pd.Series:
    tx = engine.read(input_asset(TRANSACTIONS), tx_files)  # what the engine input manager read: every drop
    as_of = engine.latest_time(tx) - pd.Timedelta(days=100)
    start, end = labels.label_window(as_of, 90)
    customers = engine.read(input_asset(CUSTOMERS), customer_files)
    return _labels(engine.frames(engine.rows_between(tx, start.value, end.value), customers), ids, as_of)


def _performance_after(
    engine: EmbeddedEngine, tx_files: list[str], states: list[DropState], latest: str, ids: pa.Array
) -> pd.Series:
    as_of = pd.Timestamp(latest_of(states), unit="ns", tz="UTC") - pd.Timedelta(days=100)
    start, end = labels.label_window(as_of, 90)
    inside = {s.drop for s in drops_between(states, start.value, end.value)}
    files = [f for f, s in zip(tx_files, states, strict=False) if s.drop in inside]
    customers = engine.read(input_asset(CUSTOMERS), [latest])
    return _labels(engine.frames(engine.read_between(files, start.value, end.value), customers), ids, as_of)


def _with_latest(engine: EmbeddedEngine, total: str, latest: str, new: str, files: list[str]) -> pd.DataFrame:
    staged = StagedTable(latest)
    engine.stage_latest_customers([latest, new], staged)
    staged.commit()
    return engine.state_features([total], files, [latest], LARGE)[0]


def resent(folder: Path, tx_files: list[str], customer_files: list[str]) -> int:
    """``--resend-customers``: CPU seconds per drop of the features step and of model_performance's reads."""
    engine = EmbeddedEngine()
    total, latest = str(folder / "customer_totals.parquet"), str(folder / "latest_customers.parquet")
    state, low, high = engine.drop_state(tx_files[:1], LARGE)
    pq.write_table(state, total)
    staged = StagedTable(latest)
    engine.stage_latest_customers(customer_files[:1], staged)
    staged.commit()
    states = [DropState("base", "0", low, high, LARGE)]
    cpu: dict[str, list[float]] = {"every": [], "latest": [], "perf_before": [], "perf_after": []}

    def timed(name: str, work: Callable[..., Any], *args: Any) -> Any:
        started = time.process_time()
        result = work(*args)
        cpu[name].append(time.process_time() - started)
        return result

    for k in range(1, len(tx_files)):
        state, low, high = engine.drop_state(tx_files[k : k + 1], LARGE)
        path = str(folder / f"state-{k}.parquet")
        pq.write_table(state, path)
        pq.write_table(engine.combine_states([total, path]), total)
        states.append(DropState(f"d{k:02d}", str(k), low, high, LARGE))
        window = {s.drop for s in drops_in_window(states, max(s.max_ns for s in states))}
        files = [f for f, s in zip(tx_files, states, strict=False) if s.drop in window]
        every, _ = timed("every", engine.state_features, [total], files, customer_files[: k + 1], LARGE)
        got = timed("latest", _with_latest, engine, total, latest, customer_files[k], files)
        pd.testing.assert_frame_equal(got, every, check_exact=True)
        ids = pa.array(got.index.to_numpy(), pa.large_string())
        expected = timed("perf_before", _performance_before, engine, tx_files[: k + 1], customer_files[: k + 1], ids)
        got_labels = timed("perf_after", _performance_after, engine, tx_files[: k + 1], states, latest, ids)
        pd.testing.assert_series_equal(got_labels, expected)
        print(
            f"  drop {k:2d}: CPU s features every drop's customers {cpu['every'][-1]:.2f}, latest_customers "
            f"{cpu['latest'][-1]:.2f}; model_performance reads before {cpu['perf_before'][-1]:.2f}, after "
            f"{cpu['perf_after'][-1]:.2f}"
        )
    print("== results (CPU seconds of this process; the same features and labels both ways at every drop)")
    for name, values in cpu.items():
        ratio = values[-1] / values[0]
        print(f"  {name:12s} first drop {values[0]:.2f}, last {values[-1]:.2f}: last/first = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
