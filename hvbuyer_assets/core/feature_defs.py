"""The feature and label definitions, written once in narwhals and run lazily by any engine (core.engine).

Interface (the embedded engine and the Spark engine both build on it; keep it stable):

Input convention: two narwhals LazyFrames of any backend.

- transactions: ``customer_id`` (the key: string, or an integer code the engine maps back), ``ts`` (int64 ns since
  epoch, UTC; rows with a null ``ts`` are ignored), ``amount`` (float64, finite), ``status`` (string, one of
  ``rules.TRANSACTION_STATUSES``; anything else only counts in ``n_transactions``).
- customers: unique by ``customer_id``; ``signup_ns`` (int64 ns UTC, **null when unknown**), ``age`` and
  ``loyalty_points`` (float64, NaN/null when unknown), ``region`` (string, as stored; normalised after collection).

Transactions of customers missing from ``customers`` are ignored (every output is one row per known customer).
Times stay int64 ns end to end: no engine time-zone rule can move a window boundary, and no ns value passes
through float64 (which cannot hold it exactly) except as a difference turned into days.

Functions (each returns an unordered ``nw.LazyFrame``). An engine provides ``engine.Frames`` (the two inputs and
``collect``: LazyFrame -> ``pa.Table`` with string customer_id); ``features.features_frame``,
``labels.labels_frame`` and ``training.training_frame`` run these on any ``Frames`` and finish the table into the
pandas layout (``features.finish_features`` / ``labels.finish_labels`` / ``training.finish_training``, rows
sorted by customer_id so every engine gives the same frame):

- ``features(tx, customers, as_of_ns, large_amount)``: ``customer_id``, ``FEATURE_NUMERIC`` (float64; null =
  unknown), ``region`` (raw), ``signup_ns`` and ``last_event_ns`` (int64, ``NO_TIME`` = none).
- ``labels(tx, customers, cutoff_ns, horizon_days, threshold)``: ``customer_id``, ``label`` (int8).
- ``training_rows(tx, customers, cutoffs, horizon_days, threshold)``: for each ``(split, cutoff_ns)`` of
  ``cutoffs`` (``training.training_cutoffs(earliest_ns, as_of, ...)`` makes them), the eligible customers'
  ``features`` as of the cutoff plus ``label``, ``split``, ``cutoff_ns`` and ``snapshot`` (the position in
  ``cutoffs``, for a stable order).
- ``history(tx, customers)``: one row, ``latest_ns`` (latest valid transaction of ``tx``, any customer: T, the
  as-of time of the data, as ``features.latest_event_time``) and ``earliest_ns`` (earliest transaction of a
  known customer); null when there is none.

Determinism: money sums are exact integer sums of micro-units, ``round_half_away(amount * 1e6)`` as int64,
divided by 1e6 after aggregation. Integer addition is associative, so every engine, thread count and run
gives the same bits (polars' parallel float sums did not: the output hash changed on each of 4 runs). Amounts
are therefore quantised to 1e-6 in sums (``total_spend``, ``spend_*``, ``avg_spend``); counts are integer
sums; ``max_spend``, ``last_amount`` and recencies are exact. Ratios divide by ``max(denominator, 1)`` (the
numerator is 0 when the denominator is), so no engine ever divides by zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import narwhals as nw

from hvbuyer_assets.core.feature_spec import FEATURE_NUMERIC
from hvbuyer_assets.core.keys import KEY
from hvbuyer_assets.core.rules import TRANSACTION_STATUSES

DAY_NS = 86_400 * 10**9
MICRO = 1_000_000
NO_TIME = -(2**63)  # int64 min: "no time" in an int64 ns column (pandas reads it as NaT)

COMPLETED, PENDING, REFUNDED, FAILED = TRANSACTION_STATUSES
ID = KEY
FEATURE_OUTPUT: tuple[str, ...] = (ID, *FEATURE_NUMERIC, "region", "signup_ns", "last_event_ns")
TRAINING_OUTPUT: tuple[str, ...] = (*FEATURE_OUTPUT, "label", "split", "cutoff_ns", "snapshot")

FLAG = nw.Int8  # a 0/1 per row, summed (every engine sums small ints into int64)
c = nw.col


def _micro(amount: nw.Expr) -> nw.Expr:
    """``amount`` in integer micro-units, rounded half away from zero (the same on every engine)."""
    scaled = amount * MICRO
    return nw.when(scaled >= 0).then(scaled + 0.5).otherwise(scaled - 0.5).cast(nw.Int64)


def _days(ns: nw.Expr) -> nw.Expr:
    return ns.cast(nw.Float64) / float(DAY_NS)


def _per_unit(numerator: nw.Expr, denominator: nw.Expr) -> nw.Expr:
    return numerator / denominator.clip(lower_bound=1).cast(nw.Float64)


def features(tx: nw.LazyFrame, customers: nw.LazyFrame, as_of_ns: int, large_amount: float) -> nw.LazyFrame:
    """Every customer's features from its transactions with ``ts <= as_of_ns`` (windows ``(t - N days, t]``).

    Every per-row quantity is a column first and the aggregation only sums, maxes and mins plain columns (the
    fast path of every engine); ``last_amount`` compares each purchase time with the customer's latest one
    (a window max over the customer, cheaper than joining the aggregate back).
    """
    as_of_ns = int(as_of_ns)
    done = c("done")
    recent = {days: done & (c("ts") > as_of_ns - days * DAY_NS) for days in (30, 90, 365)}
    micro = _micro(c("amount"))
    rows = (
        tx.filter(~c("ts").is_null() & (c("ts") <= as_of_ns))
        .with_columns(done=c("status") == COMPLETED)
        .with_columns(
            n_completed=done.cast(FLAG),
            **{f"n_completed_{days}d": recent[days].cast(FLAG) for days in (30, 90, 365)},
            total_micro=nw.when(done).then(micro).otherwise(0),
            spend_90d_micro=nw.when(recent[90]).then(micro).otherwise(0),
            spend_365d_micro=nw.when(recent[365]).then(micro).otherwise(0),
            max_spend=nw.when(done).then(c("amount")).otherwise(0.0),
            purchase_ns=nw.when(done).then(c("ts")),  # null unless a completed purchase
            n_large=(done & (c("amount") >= float(large_amount))).cast(FLAG),
            non_failed=c("status").is_in([COMPLETED, PENDING, REFUNDED]).cast(FLAG),
            n_refunded=(c("status") == REFUNDED).cast(FLAG),
            n_failed=(c("status") == FAILED).cast(FLAG),
        )
        .with_columns(
            last_amount=nw.when(c("purchase_ns") == c("purchase_ns").max().over(ID)).then(c("amount")).otherwise(0.0)
        )
    )
    counts = ("n_completed", "n_completed_30d", "n_completed_90d", "n_completed_365d", "n_large")
    sums = (*counts, "total_micro", "spend_90d_micro", "spend_365d_micro", "non_failed", "n_refunded", "n_failed")
    behaviour = rows.group_by(ID).agg(
        nw.len().alias("n_transactions"),
        c("ts").max().alias("last_event_ns"),
        *(c(name).sum() for name in sums),
        c("max_spend").max(),
        c("last_amount").max(),
        c("purchase_ns").max().alias("last_purchase_ns"),
        c("purchase_ns").min().alias("first_purchase_ns"),
    )
    micro_sums = {"total_spend": "total_micro", "spend_90d": "spend_90d_micro", "spend_365d": "spend_365d_micro"}
    joined = customers.select(ID, "signup_ns", "age", "loyalty_points", "region").join(behaviour, on=ID, how="left")
    as_of = nw.lit(as_of_ns, nw.Int64)
    out = joined.with_columns(
        *(c(name).fill_null(0) for name in ("n_transactions", *sums)),
        *(c(name).fill_null(0.0) for name in ("max_spend", "last_amount")),
    ).with_columns(
        *(c(name).cast(nw.Float64) for name in ("n_transactions", *counts, "n_failed")),
        *((c(m).cast(nw.Float64) / float(MICRO)).alias(name) for name, m in micro_sums.items()),
        avg_spend=_per_unit(c("total_micro").cast(nw.Float64) / float(MICRO), c("n_completed")),
        share_large=_per_unit(c("n_large").cast(nw.Float64), c("n_completed")),
        refund_rate=_per_unit(c("n_refunded").cast(nw.Float64), c("non_failed")),
        days_since_last_purchase=_days(as_of - c("last_purchase_ns")),
        days_since_first_purchase=_days(as_of - c("first_purchase_ns")),
        tenure_days=_days((as_of - c("signup_ns")).clip(lower_bound=0)),
        age=c("age").cast(nw.Float64),
        loyalty_points=c("loyalty_points").cast(nw.Float64),
        signup_ns=c("signup_ns").fill_null(NO_TIME),
        last_event_ns=c("last_event_ns").fill_null(NO_TIME),
    )
    return out.select(*FEATURE_OUTPUT)


def labels(
    tx: nw.LazyFrame, customers: nw.LazyFrame, cutoff_ns: int, horizon_days: int, threshold: float
) -> nw.LazyFrame:
    """``label`` = 1 iff a completed transaction with ``amount >= threshold`` has ``cutoff < ts <= cutoff + H``."""
    start = int(cutoff_ns)
    end = start + int(horizon_days) * DAY_NS
    hits = (
        tx.filter((c("status") == COMPLETED) & (c("amount") >= float(threshold)) & (c("ts") > start) & (c("ts") <= end))
        .group_by(ID)
        .agg(nw.len().alias("hits"))
    )
    joined = customers.select(ID).join(hits, on=ID, how="left")
    return joined.select(ID, label=(~c("hits").is_null()).cast(nw.Int8))


def training_rows(
    tx: nw.LazyFrame,
    customers: nw.LazyFrame,
    cutoffs: Sequence[tuple[str, int]],
    horizon_days: int,
    threshold: float,
) -> nw.LazyFrame:
    """Features as of each cutoff (``large_amount`` = ``threshold``) with labels from ``(cutoff, cutoff + H]``,
    for the customers whose signup is unknown or at/before the cutoff."""
    if not cutoffs:
        raise ValueError("no cutoff to build training rows for")
    frames = []
    for snapshot, (split, cutoff_ns) in enumerate(cutoffs):
        feats = features(tx, customers, cutoff_ns, threshold)
        eligible = feats.filter(c("signup_ns") <= int(cutoff_ns))  # NO_TIME (unknown) is always <= cutoff
        rows = eligible.join(labels(tx, customers, cutoff_ns, horizon_days, threshold), on=ID, how="inner")
        frames.append(
            rows.with_columns(
                split=nw.lit(split, nw.String),
                cutoff_ns=nw.lit(int(cutoff_ns), nw.Int64),
                snapshot=nw.lit(snapshot, nw.Int64),
            ).select(*TRAINING_OUTPUT)
        )
    return nw.concat(frames, how="vertical")


def history(tx: nw.LazyFrame, customers: nw.LazyFrame) -> nw.LazyFrame:
    """One row: ``latest_ns`` (latest valid transaction time, T) and ``earliest_ns`` (earliest transaction of a
    known customer); null when there is none."""
    valid = tx.filter(~c("ts").is_null())
    latest = valid.select(c("ts").max().alias("latest_ns"))
    earliest = valid.join(customers.select(ID), on=ID, how="semi").select(c("ts").min().alias("earliest_ns"))
    return latest.join(earliest, how="cross")
