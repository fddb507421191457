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
- ``features_at(tx, customers, cutoffs, large_amount)``: ``{cutoff_ns: features as of it}``, the same rows and
  bits as ``features`` per cutoff for less work: the per-row columns once, the earliest cutoff in full, each later
  one from the previous one's totals plus those of the rows since it and the window sums of its longest window
  (integer sums, maxima and minima of consecutive time ranges combine exactly).
- ``training_rows(tx, customers, cutoffs, horizon_days, threshold)``: for each ``(split, cutoff_ns)`` of
  ``cutoffs`` (``training.training_cutoffs(earliest_ns, as_of, ...)`` makes them), the eligible customers'
  features as of the cutoff (``features_at``) plus ``label``, ``split``, ``cutoff_ns`` and ``snapshot`` (the
  position in ``cutoffs``, for a stable order).
- ``latest(tx)``: one row, ``latest_ns`` (T; reads ``ts`` only, so it runs on the transactions alone).
- ``history(tx, customers)``: one row, ``latest_ns`` (latest valid transaction of ``tx``, any customer: T, the
  as-of time of the data, as ``features.latest_event_time``) and ``earliest_ns`` (earliest transaction of a
  known customer); null when there is none.

Determinism: money sums are exact integer sums of micro-units, ``round_half_away(amount * 1e6)`` as int64,
divided by 1e6 after aggregation. Integer addition is associative, so every engine, thread count and run
gives the same bits (polars' parallel float sums did not: the output hash changed on each of 4 runs); the sums
and day differences are scaled by multiplying with ``PER_MICRO`` / ``PER_DAY_NS`` (see there). Amounts
are therefore quantised to 1e-6 in sums (``total_spend``, ``spend_*``, ``avg_spend``); counts are integer
sums; ``max_spend``, ``last_amount`` and recencies are exact. Ratios divide by ``max(denominator, 1)`` (the
numerator is 0 when the denominator is), so no engine ever divides by zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import narwhals as nw

from hvbuyer_assets.core.feature_spec import COUNT_WINDOWS, FEATURE_NUMERIC, LONGEST_WINDOW_DAYS, SPEND_WINDOWS
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


# Scaling by a constant is a multiplication by its reciprocal, written as such: polars divides a column by a
# float literal as a multiplication by the reciprocal when the column has no validity buffer and as a true division
# when it has one (0.09999999999999999 or 0.1 for 100000 / 1e6), Spark always divides. A multiplication is one IEEE
# operation on every engine and layout: the same bits everywhere.
PER_MICRO = 1.0 / MICRO
PER_DAY_NS = 1.0 / DAY_NS


def _money(micro: nw.Expr) -> nw.Expr:
    return micro.cast(nw.Float64) * PER_MICRO


def _days(ns: nw.Expr) -> nw.Expr:
    return ns.cast(nw.Float64) * PER_DAY_NS


def _per_unit(numerator: nw.Expr, denominator: nw.Expr) -> nw.Expr:
    return numerator / denominator.clip(lower_bound=1).cast(nw.Float64)


COUNTS = ("n_completed", "n_large")  # all-time counts; the window counts are ``WINDOW_COUNTS``
TOTAL_SUMS = (*COUNTS, "total_micro", "non_failed", "n_refunded", "n_failed")
# The windows of ``feature_spec.WINDOWS``: count features (summed as they are) and spend features (from their
# micro-unit sums, ``spend_<N>d_micro``).
WINDOW_COUNTS: tuple[str, ...] = tuple(w.count_name for w in COUNT_WINDOWS)
WINDOW_SPEND_MICRO: dict[str, str] = {w.spend_name: f"{w.spend_name}_micro" for w in SPEND_WINDOWS}
WINDOW_SUMS: tuple[str, ...] = (*WINDOW_COUNTS, *WINDOW_SPEND_MICRO.values())
# Per-customer aggregates of a time range that combine over consecutive ranges (``_combine``).
TOTALS = (
    "n_transactions",
    "last_event_ns",
    *TOTAL_SUMS,
    "max_spend",
    "last_amount",
    "last_purchase_ns",
    "first_purchase_ns",
)


def _rows(tx: nw.LazyFrame, large_amount: float) -> nw.LazyFrame:
    """The valid transactions with the per-row columns that do not depend on the cutoff (computed once for every
    cutoff of the training set). Each is a plain column, so the aggregation only sums, maxes and mins columns
    (the fast path of every engine)."""
    done = c("status") == COMPLETED
    return tx.filter(~c("ts").is_null()).with_columns(
        n_completed=done.cast(FLAG),
        total_micro=nw.when(done).then(_micro(c("amount"))).otherwise(0),
        max_spend=nw.when(done).then(c("amount")).otherwise(0.0),
        purchase_ns=nw.when(done).then(c("ts")),  # null unless a completed purchase
        n_large=(done & (c("amount") >= float(large_amount))).cast(FLAG),
        non_failed=c("status").is_in([COMPLETED, PENDING, REFUNDED]).cast(FLAG),
        n_refunded=(c("status") == REFUNDED).cast(FLAG),
        n_failed=(c("status") == FAILED).cast(FLAG),
    )


def _window_columns(as_of_ns: int) -> dict[str, nw.Expr]:
    """``WINDOW_SUMS`` per row of ``_rows`` (completed purchases in ``(t - N days, t]``, rows with ts <= t)."""

    def recent(days: int) -> nw.Expr:
        return c("ts") > as_of_ns - days * DAY_NS

    return {
        **{w.count_name: nw.when(recent(w.days)).then(c("n_completed")).otherwise(0) for w in COUNT_WINDOWS},
        **{
            WINDOW_SPEND_MICRO[w.spend_name]: nw.when(recent(w.days)).then(c("total_micro")).otherwise(0)
            for w in SPEND_WINDOWS
        },
    }


def _aggregate(rows: nw.LazyFrame, as_of_ns: int | None) -> nw.LazyFrame:
    """``TOTALS`` per customer of ``rows`` (and ``WINDOW_SUMS`` as of ``as_of_ns`` unless None). ``last_amount``
    compares each purchase time with the customer's latest one in ``rows`` (a window max over the customer,
    cheaper than joining the aggregate back)."""
    windows = _window_columns(as_of_ns) if as_of_ns is not None else {}
    latest = c("purchase_ns") == c("purchase_ns").max().over(ID)
    rows = rows.with_columns(last_amount=nw.when(latest).then(c("amount")).otherwise(0.0), **windows)
    return rows.group_by(ID).agg(
        nw.len().alias("n_transactions"),
        c("ts").max().alias("last_event_ns"),
        *(c(name).sum() for name in (*TOTAL_SUMS, *windows)),
        c("max_spend").max(),
        c("last_amount").max(),
        c("purchase_ns").max().alias("last_purchase_ns"),
        c("purchase_ns").min().alias("first_purchase_ns"),
    )


def _window_sums(rows: nw.LazyFrame, as_of_ns: int) -> nw.LazyFrame:
    """``WINDOW_SUMS`` per customer as of ``as_of_ns``, from the rows of the longest window only."""
    recent = rows.filter((c("ts") > as_of_ns - LONGEST_WINDOW_DAYS * DAY_NS) & (c("ts") <= as_of_ns))
    return recent.with_columns(**_window_columns(as_of_ns)).group_by(ID).agg(*(c(n).sum() for n in WINDOW_SUMS))


def _combine(keys: nw.LazyFrame, earlier: nw.LazyFrame, later: nw.LazyFrame) -> nw.LazyFrame:
    """``TOTALS`` of two consecutive time ranges (every ``later`` row after every ``earlier`` row) as the totals of
    their union, for each customer of ``keys`` (exact: sums of integers, maxima and minima)."""
    after = {name: f"{name}_later" for name in TOTALS}
    both = keys.join(earlier.select(ID, *TOTALS), on=ID, how="left").join(
        later.select(ID, *TOTALS).rename(after), on=ID, how="left"
    )

    def total(name: str, empty: float) -> nw.Expr:
        return c(name).fill_null(empty) + c(after[name]).fill_null(empty)

    bought_later = ~c(after["last_purchase_ns"]).is_null()
    return both.select(
        ID,
        total("n_transactions", 0).alias("n_transactions"),
        nw.coalesce(c(after["last_event_ns"]), c("last_event_ns")).alias("last_event_ns"),
        *(total(name, 0).alias(name) for name in TOTAL_SUMS),
        nw.max_horizontal(c("max_spend").fill_null(0.0), c(after["max_spend"]).fill_null(0.0)).alias("max_spend"),
        nw.when(bought_later).then(c(after["last_amount"])).otherwise(c("last_amount")).alias("last_amount"),
        nw.coalesce(c(after["last_purchase_ns"]), c("last_purchase_ns")).alias("last_purchase_ns"),
        nw.coalesce(c("first_purchase_ns"), c(after["first_purchase_ns"])).alias("first_purchase_ns"),
    )


def _features(customers: nw.LazyFrame, behaviour: nw.LazyFrame, as_of_ns: int) -> nw.LazyFrame:
    """``FEATURE_OUTPUT`` of every customer from its ``TOTALS`` and ``WINDOW_SUMS`` as of ``as_of_ns``."""
    sums = (*TOTAL_SUMS, *WINDOW_SUMS)
    counts = (*COUNTS, *WINDOW_COUNTS)
    micro_sums = {"total_spend": "total_micro", **WINDOW_SPEND_MICRO}
    joined = customers.select(ID, "signup_ns", "age", "loyalty_points", "region").join(behaviour, on=ID, how="left")
    as_of = nw.lit(as_of_ns, nw.Int64)
    out = joined.with_columns(
        *(c(name).fill_null(0) for name in ("n_transactions", *sums)),
        *(c(name).fill_null(0.0) for name in ("max_spend", "last_amount")),
    ).with_columns(
        *(c(name).cast(nw.Float64) for name in ("n_transactions", *counts, "n_failed")),
        *(_money(c(m)).alias(name) for name, m in micro_sums.items()),
        avg_spend=_per_unit(_money(c("total_micro")), c("n_completed")),
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


def features(tx: nw.LazyFrame, customers: nw.LazyFrame, as_of_ns: int, large_amount: float) -> nw.LazyFrame:
    """Every customer's features from its transactions with ``ts <= as_of_ns`` (windows ``(t - N days, t]``):
    one aggregation of the rows, windows included."""
    as_of_ns = int(as_of_ns)
    rows = _rows(tx, large_amount).filter(c("ts") <= as_of_ns)
    return _features(customers, _aggregate(rows, as_of_ns), as_of_ns)


def features_at(
    tx: nw.LazyFrame, customers: nw.LazyFrame, cutoffs: Sequence[int], large_amount: float
) -> dict[int, nw.LazyFrame]:
    """``features`` as of each of ``cutoffs``, sharing the work: the per-row columns once; the earliest cutoff
    as ``features``; each later one from the previous one's ``TOTALS`` plus those of the rows since it
    (``_combine``) and the window sums over its longest window only. Equal, bit for bit, to ``features`` per
    cutoff (integer sums, maxima and minima combine exactly) for a fraction of the aggregation work."""
    rows = _rows(tx, large_amount)
    keys = customers.select(ID)
    out: dict[int, nw.LazyFrame] = {}
    totals: nw.LazyFrame | None = None
    previous = 0
    for cutoff in sorted({int(c_) for c_ in cutoffs}):
        if totals is None:
            behaviour = _aggregate(rows.filter(c("ts") <= cutoff), cutoff)
            totals = behaviour
        else:
            since = _aggregate(rows.filter((c("ts") > previous) & (c("ts") <= cutoff)), None)
            totals = _combine(keys, totals, since)
            behaviour = totals.join(_window_sums(rows, cutoff), on=ID, how="left")
        out[cutoff] = _features(customers, behaviour, cutoff)
        previous = cutoff
    return out


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
    at = features_at(tx, customers, [cutoff_ns for _, cutoff_ns in cutoffs], threshold)
    for snapshot, (split, cutoff_ns) in enumerate(cutoffs):
        feats = at[int(cutoff_ns)]
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


def latest(tx: nw.LazyFrame) -> nw.LazyFrame:
    """One row: ``latest_ns``, the latest valid transaction time of ``tx`` (any customer; T, the as-of time of the
    data); null when there is none. Reads ``ts`` only."""
    return tx.filter(~c("ts").is_null()).select(c("ts").max().alias("latest_ns"))


def history(tx: nw.LazyFrame, customers: nw.LazyFrame) -> nw.LazyFrame:
    """One row: ``latest_ns`` (:func:`latest`, T) and ``earliest_ns`` (earliest transaction of a known customer);
    null when there is none."""
    valid = tx.filter(~c("ts").is_null())
    earliest = valid.join(customers.select(ID), on=ID, how="semi").select(c("ts").min().alias("earliest_ns"))
    return latest(tx).join(earliest, how="cross")
