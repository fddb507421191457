"""Features and training set: the narwhals declaration on the embedded engine against the former numpy kernels.

Synthetic clean frames (string[pyarrow] customer ids, ``timestamp`` datetime64[ns, UTC], amounts in cents over
four years, 85/5/5/5 % completed/pending/refunded/failed, 10 % of customers without transactions, 1 % of rows of
unknown customers, 5 % unknown signup dates; transaction_id and payment_method as in the clean table) are
written once per size under ``--workdir``. Each (implementation, stage) then runs in a fresh process that loads
the frames and times the call: wall seconds, peak RSS of the process during the call (its peak RSS is reset after
loading, Linux ``clear_refs``) and what the call added on top of the loaded inputs; also the process's CPU
seconds (user + system, all threads), steadier than wall time on a shared box. ``old`` is the numpy
implementation of main before the engine (kept here verbatim as the baseline, not in the package); ``new`` is
``features.build_features`` / ``training.build_training_set``. Stage ``stored`` is the customer_features step
from the parquet files, load included: before, the whole clean tables as pandas (what the IO manager loaded)
and the numpy kernels; now, only the declaration's columns as Arrow (``engine.from_arrow``). Also checks, at
the first size, that both give the same rows and values (sums to 1e-6 relative: the new sums are exact sums of
micro-units).

    python scripts/bench_features.py [--sizes 200000:4000000,1000000:20000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hvbuyer_assets.core import engine, features, problem, training
from hvbuyer_assets.core.features import FEATURE_COLUMNS, STRING, to_utc
from hvbuyer_assets.core.rules import TRANSACTION_STATUSES

DAY_S = 86_400
GIB = 1024**3
START = pd.Timestamp("2022-01-01", tz="UTC")
YEARS = 4


# --- the former numpy implementation (main before the engine): the baseline ------------------------------------

NAT_NS = np.iinfo(np.int64).min
DAY_NS = DAY_S * 10**9
STATUS_COMPLETED, STATUS_PENDING, STATUS_REFUNDED, STATUS_FAILED = range(4)


def _arrow(values: Any) -> pa.Array | pa.ChunkedArray:
    arr = pa.array(values, from_pandas=True) if not isinstance(values, pa.ChunkedArray | pa.Array) else values
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    return arr


def old_encode(transactions: pd.DataFrame, customer_ids: Any) -> dict[str, Any]:
    index = pd.Index(pd.array(customer_ids, dtype=STRING), name="customer_id")
    tx_ids = _arrow(transactions["customer_id"])
    value_set = _arrow(index.array)
    if isinstance(value_set, pa.ChunkedArray):
        value_set = value_set.combine_chunks()
    code = pc.fill_null(pc.index_in(tx_ids, value_set=value_set.cast(tx_ids.type)), -1)
    code = code.to_numpy(zero_copy_only=False).astype(np.int64)
    status_arr = _arrow(transactions["status"])
    status = pc.index_in(status_arr, value_set=pa.array(TRANSACTION_STATUSES, type=status_arr.type))
    status = pc.fill_null(status, -1).to_numpy(zero_copy_only=False).astype(np.int8)
    ts = features.timestamps_ns(transactions["timestamp"])
    amount = pd.to_numeric(transactions["amount"]).to_numpy(dtype="float64", na_value=np.nan)
    keep = (code >= 0) & (ts != NAT_NS)
    return {"ids": index, "code": code[keep], "ts": ts[keep], "amount": amount[keep], "status": status[keep]}


def _group_max(code: np.ndarray, values: np.ndarray, n: int, initial: float | int) -> np.ndarray:
    out = np.full(n, initial, dtype=values.dtype)
    np.maximum.at(out, code, values)
    return out


def _group_min(code: np.ndarray, values: np.ndarray, n: int, initial: float | int) -> np.ndarray:
    out = np.full(n, initial, dtype=values.dtype)
    np.minimum.at(out, code, values)
    return out


def _count(code: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(code, weights=weights, minlength=n).astype("float64")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype="float64")
    np.divide(num, den, out=out, where=den > 0)
    return out


def old_behaviour(enc: dict[str, Any], as_of_ns: int, large_amount: float) -> dict[str, np.ndarray]:
    n = len(enc["ids"])
    keep = enc["ts"] <= as_of_ns
    code, ts, amount, status = enc["code"][keep], enc["ts"][keep], enc["amount"][keep], enc["status"][keep]
    done = status == STATUS_COMPLETED
    cc, ct, ca = code[done], ts[done], amount[done]
    out: dict[str, np.ndarray] = {"last_event_at": _group_max(code, ts, n, NAT_NS)}
    out["n_transactions"] = _count(code, n)
    out["n_completed"] = n_completed = _count(cc, n)
    for days in (30, 90, 365):
        recent = ct > as_of_ns - days * DAY_NS
        out[f"n_completed_{days}d"] = _count(cc[recent], n)
        if days != 30:
            out[f"spend_{days}d"] = _count(cc[recent], n, ca[recent])
    out["total_spend"] = total = _count(cc, n, ca)
    out["avg_spend"] = _ratio(total, n_completed)
    out["max_spend"] = _group_max(cc, ca, n, 0.0)
    last_ts = _group_max(cc, ct, n, NAT_NS)
    first_ts = _group_min(cc, ct, n, np.iinfo(np.int64).max)
    at_last = ct == last_ts[cc]
    out["last_amount"] = _group_max(cc[at_last], ca[at_last], n, 0.0)
    out["n_large"] = n_large = _count(cc[ca >= large_amount], n)
    out["share_large"] = _ratio(n_large, n_completed)
    bought = n_completed > 0
    out["days_since_last_purchase"] = np.where(bought, (as_of_ns - last_ts) / DAY_NS, np.nan)
    out["days_since_first_purchase"] = np.where(bought, (as_of_ns - first_ts) / DAY_NS, np.nan)
    non_failed = _count(code[(status >= 0) & (status != STATUS_FAILED)], n)
    out["refund_rate"] = _ratio(_count(code[status == STATUS_REFUNDED], n), non_failed)
    out["n_failed"] = _count(code[status == STATUS_FAILED], n)
    return out


def old_features_from_encoded(
    enc: dict[str, Any], customers: pd.DataFrame, as_of: Any, large_amount: float
) -> pd.DataFrame:
    as_of = to_utc(as_of)
    as_of_ns = int(as_of.value)
    n = len(enc["ids"])
    behaviour = old_behaviour(enc, as_of_ns, large_amount)
    signup = pd.to_datetime(customers["signup_date"], utc=True).dt.as_unit("ns")
    signup_ns = signup.array.asi8
    tenure = np.where(signup_ns == NAT_NS, np.nan, np.maximum(as_of_ns - signup_ns, 0) / DAY_NS)
    columns: dict[str, Any] = {
        "age": customers["age"].to_numpy(dtype="float64", na_value=np.nan),
        "loyalty_points": customers["loyalty_points"].to_numpy(dtype="float64", na_value=np.nan),
        "tenure_days": tenure,
    }
    columns.update({name: behaviour[name] for name in features.BEHAVIOUR_FEATURES})
    columns["region"] = features._region(customers["region"]).array
    columns["signup_date"] = signup.array
    columns["feature_as_of"] = pd.DatetimeIndex(np.full(n, as_of_ns).view("M8[ns]")).tz_localize("UTC")
    columns["last_event_at"] = pd.DatetimeIndex(behaviour["last_event_at"].view("M8[ns]")).tz_localize("UTC")
    return pd.DataFrame(columns, index=enc["ids"])[list(FEATURE_COLUMNS + features.EXTRA_COLUMNS)]


def old_build_features(transactions: pd.DataFrame, customers: pd.DataFrame, as_of: Any, large: float) -> pd.DataFrame:
    return old_features_from_encoded(old_encode(transactions, customers["customer_id"]), customers, as_of, large)


def old_labels(enc: dict[str, Any], cutoff: pd.Timestamp, horizon_days: int, threshold: float) -> np.ndarray:
    start, end = cutoff.value, (cutoff + pd.Timedelta(days=horizon_days)).value
    hit = (enc["status"] == STATUS_COMPLETED) & (enc["amount"] >= threshold) & (enc["ts"] > start) & (enc["ts"] <= end)
    return (np.bincount(enc["code"][hit], minlength=len(enc["ids"])) > 0).astype(np.int8)


def old_build_training_set(
    transactions: pd.DataFrame, customers: pd.DataFrame, as_of: Any, horizon_days: int, threshold: float
) -> pd.DataFrame:
    train_cutoffs, holdout_cutoff = training.snapshot_cutoffs(as_of, horizon_days)
    enc = old_encode(transactions, customers["customer_id"])
    earliest = int(enc["ts"].min())
    usable = [c for c in train_cutoffs if c.value >= earliest]
    signup = pd.to_datetime(customers["signup_date"], utc=True).dt.as_unit("ns").array.asi8
    signup_known = signup != NAT_NS
    frames = []
    for split, cutoff in [("train", c) for c in usable] + [("holdout", holdout_cutoff)]:
        eligible = ~signup_known | (signup <= cutoff.value)
        feats = old_features_from_encoded(enc, customers, cutoff, large_amount=threshold)
        frame = feats.loc[eligible, list(FEATURE_COLUMNS) + ["last_event_at"]].reset_index()
        frame["cutoff"] = cutoff
        frame["label"] = old_labels(enc, cutoff, horizon_days, threshold)[eligible]
        frame["split"] = pd.array([split] * len(frame), dtype=STRING)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)[list(training.TRAINING_COLUMNS)]
    out["customer_id"] = out["customer_id"].astype(STRING)
    out["label"] = out["label"].astype(np.int8)
    out["cutoff"] = pd.to_datetime(out["cutoff"], utc=True).dt.as_unit("ns")
    return out


# --- data and runs ---------------------------------------------------------------------------------------------


def generate(n_customers: int, n_transactions: int, folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    width = len(str(n_customers)) + 1
    ids = pc.utf8_lpad(pa.array(np.arange(n_customers).astype(str)), width, "0")
    ids = pc.binary_join_element_wise("C", ids, "")
    active = rng.random(n_customers) < 0.9
    code = rng.choice(np.flatnonzero(active), n_transactions)
    span = YEARS * 365 * DAY_S
    seconds = START.value // 10**9 + rng.integers(0, span, n_transactions)
    tx_ids = ids.take(pa.array(code))
    unknown = rng.random(n_transactions) < 0.01
    tx_ids = pc.if_else(pa.array(unknown), pc.binary_join_element_wise("X", tx_ids, ""), tx_ids)
    statuses = np.array(TRANSACTION_STATUSES)[rng.choice(4, n_transactions, p=[0.85, 0.05, 0.05, 0.05])]
    transactions = pa.table(
        {
            "transaction_id": pc.binary_join_element_wise("T", pa.array(np.arange(n_transactions).astype(str)), ""),
            "customer_id": tx_ids,
            "amount": np.round(rng.gamma(2.0, 60.0, n_transactions), 2) + 0.01,
            "timestamp": pa.array(seconds * 10**9, pa.timestamp("ns", tz="UTC")),
            "payment_method": pa.array(np.array(["card", "paypal", "bank_transfer"])[code % 3]),
            "status": pa.array(statuses),
        }
    )
    signup = START.value // 10**9 - rng.integers(0, 2 * 365 * DAY_S, n_customers)
    customers = pa.table(
        {
            "customer_id": ids,
            "age": np.where(rng.random(n_customers) < 0.05, np.nan, rng.integers(18, 90, n_customers).astype(float)),
            "region": pa.array(rng.choice(["north", " South", "EAST", "west", None], n_customers)),
            "signup_date": pa.array(signup * 10**9, pa.timestamp("ns", tz="UTC"), mask=rng.random(n_customers) < 0.05),
            "loyalty_points": rng.gamma(1.5, 400.0, n_customers).round(),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(transactions, folder / "transactions.parquet")
    pq.write_table(customers, folder / "customers.parquet")


def _strings(dtype: pa.DataType) -> pd.ArrowDtype | None:
    return STRING if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) else None


def load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    tx = pq.read_table(folder / "transactions.parquet").to_pandas(types_mapper=_strings)
    customers = pq.read_table(folder / "customers.parquet").to_pandas(types_mapper=_strings)
    return tx, customers


def stored(impl: str, folder: Path) -> pd.DataFrame:
    """The customer_features step from the stored clean tables: before, the whole tables as pandas (the IO
    manager's load) then the numpy kernels; now, the declaration's columns as Arrow (``engine.from_arrow``)."""
    if impl == "old":
        tx, customers = load(folder)
        return old_build_features(tx, customers, features.latest_event_time(tx), problem.LARGE_PURCHASE_THRESHOLD)
    tx_table = pq.read_table(folder / "transactions.parquet", columns=["customer_id", "timestamp", "amount", "status"])
    cust_table = pq.read_table(folder / "customers.parquet")
    as_of = pc.max(tx_table.column("timestamp")).as_py()
    frames = engine.from_arrow(tx_table, cust_table)
    return features.features_frame(frames, as_of, problem.LARGE_PURCHASE_THRESHOLD)


def call(impl: str, stage: str, tx: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    as_of = features.latest_event_time(tx)
    large, horizon = problem.LARGE_PURCHASE_THRESHOLD, problem.HORIZON_DAYS
    if stage == "features":
        fn = old_build_features if impl == "old" else features.build_features
        return fn(tx, customers, as_of, large)
    if impl == "old":
        return old_build_training_set(tx, customers, as_of, horizon, large)
    return training.build_training_set(tx, customers, as_of, horizon_days=horizon, threshold=large)


def child(impl: str, stage: str, folder: Path) -> None:
    tx, customers = load(folder) if stage != "stored" else (None, None)
    before = psutil.Process().memory_info().rss
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak RSS (VmHWM) restarts from the current RSS
    start, cpu = time.perf_counter(), time.process_time()
    out = stored(impl, folder) if stage == "stored" else call(impl, stage, tx, customers)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = _peak_rss()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss": peak, "inputs_rss": before, "rows": len(out)}))


def _peak_rss() -> int:
    """VmHWM of this process in bytes (the peak RSS since start or since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def compare(folder: Path) -> dict[str, float]:
    """Largest differences between old and new outputs (rows aligned by customer id, then cutoff)."""
    tx, customers = load(folder)
    result: dict[str, float] = {}
    for stage in ("features", "training"):
        old, new = (call(impl, stage, tx, customers) for impl in ("old", "new"))
        if stage == "features":
            old = old.sort_index()
        else:
            keys = ["split", "cutoff", "customer_id"]
            old, new = (f.sort_values(keys).reset_index(drop=True) for f in (old, new))
            assert (old["label"].to_numpy() == new["label"].to_numpy()).all(), "labels differ"
        assert len(old) == len(new) and (old.index == new.index).all(), f"{stage}: rows differ"
        assert old["region"].equals(new["region"]), f"{stage}: regions differ"
        assert old["last_event_at"].equals(new["last_event_at"]), f"{stage}: last_event_at differs"
        for name in features.FEATURE_NUMERIC:
            a, b = old[name].to_numpy(), new[name].to_numpy()
            assert (np.isnan(a) == np.isnan(b)).all(), f"{stage}.{name}: unknowns differ"
            rel = np.abs(a - b) / np.maximum(np.abs(a), 1.0)
            result[f"{stage}.{name}"] = float(np.nanmax(rel)) if len(rel) else 0.0
    return result


def run(impl: str, stage: str, folder: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", impl, stage, str(folder)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000:4000000,1000000:20000000", help="customers:transactions,...")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/features"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per (implementation, stage); the best is shown")
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "STAGE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]))
        return 0
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    for k, size in enumerate(args.sizes.split(",")):
        n, m = (int(v) for v in size.split(":"))
        folder = args.workdir / f"{n}_{m}"
        if not (folder / "customers.parquet").exists():
            start = time.perf_counter()
            generate(n, m, folder)
            print(f"generated {n:,} customers / {m:,} transactions in {time.perf_counter() - start:.1f} s")
        if k == 0:
            worst = compare(folder)
            name = max(worst, key=worst.__getitem__)
            print(f"{n:,}: old and new give the same rows; largest relative difference {worst[name]:.2e} ({name})")
        for stage in ("features", "training", "stored"):
            best = {
                impl: min((run(impl, stage, folder) for _ in range(args.repeat)), key=lambda r: r["seconds"])
                for impl in ("old", "new")
            }
            for impl, r in best.items():
                print(
                    f"{n:>9,} / {m:>11,}  {stage:8s} {impl}: {r['seconds']:6.2f} s (CPU {r['cpu']:6.2f} s)  peak RSS "
                    f"{r['peak_rss'] / GIB:5.2f} GiB (+{(r['peak_rss'] - r['inputs_rss']) / GIB:.2f} GiB over inputs)"
                )
            old, new = best["old"], best["new"]
            print(
                f"{'':25s}{stage:8s} new/old: time {new['seconds'] / old['seconds']:.2f}x, "
                f"peak RSS {new['peak_rss'] / old['peak_rss']:.2f}x"
            )
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
