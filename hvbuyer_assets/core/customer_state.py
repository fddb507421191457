"""Per-drop customer state: what a drop adds to each customer's features, so a new drop costs the drop, not the
history. Written in narwhals beside ``feature_defs`` (whose row columns, aggregation and feature formulas it
reuses), so every engine runs it.

- ``drop_state(tx, large_amount)``: one drop's clean transactions -> one row per ``customer_id`` with
  ``feature_defs.TOTALS`` (counts and integer micro-unit sums, ``max_spend``, the first and last purchase times,
  the amount at the last purchase, the latest event time), in ``STATE_SCHEMA``. Any customer id, known or not:
  a customer record may arrive in a later drop.
- ``combine(states)``: the states of several drops (or a running total and a new drop's state) -> the state of
  their union. **By drop, not by time**: unlike ``feature_defs._combine`` (consecutive time ranges), no order in
  time is assumed, so a late transaction carried by a new drop, or a backfilled drop older than every other,
  combine exactly: sums add, maxima and minima take the max / min, and ``last_amount`` is the largest amount at
  the latest purchase time over all the drops (as ``feature_defs`` breaks a tie). Integer sums, maxima and minima
  are associative and commutative, so any split of a history into drops, combined in any grouping, gives the same
  bits as the whole history at once.
- ``features(total, recent_tx, customers, as_of_ns, large_amount)``: ``feature_defs.features`` as of
  ``as_of_ns`` from a total state of every transaction (all at or before ``as_of_ns``: T, the latest of them) plus
  the transactions of the longest window only (``recent_tx``: at least those with ``ts > as_of - LONGEST``) for
  the window sums. Equal, bit for bit, to ``feature_defs.features`` on the whole history (the reference).
- ``latest(total)``: one row, ``latest_ns`` (T of the history the state covers; = ``feature_defs.latest``).
- ``plan_totals(previous, current, large_amount)``: whether the running total is the previous one plus the new
  drops' states, or every drop's state combined again (a drop re-cleaned or backfilled in place, or removed);
  ``drops_in_window(states, as_of_ns)``: the drops a features step reads rows of (time range inside the window);
  ``drops_between`` the drops a label window reads, ``latest_of`` T from the drops' time ranges alone.

Re-sent records are settled before the state: cleaning drops a transaction_id an earlier drop already carried
(``core.cleaning.history``), so each transaction is in exactly one drop's clean rows; customer records are not
part of the state (``customers`` is the latest record of each customer, as every feature input).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import narwhals as nw

from hvbuyer_assets.core.feature_defs import (
    DAY_NS,
    ID,
    TOTAL_SUMS,
    TOTALS,
    _aggregate,
    _features,
    _rows,
    _window_sums,
)
from hvbuyer_assets.core.feature_spec import LONGEST_WINDOW_DAYS

c = nw.col
TIMES = ("last_event_ns", "last_purchase_ns", "first_purchase_ns")  # int64 ns, null = none
AMOUNTS = ("max_spend", "last_amount")  # float64, exact (maxima of amounts)
COUNT_COLUMNS = ("n_transactions", *TOTAL_SUMS)  # int64 sums
STATE_SCHEMA: dict[str, nw.dtypes.DType] = {
    ID: nw.String(),
    **{name: nw.Int64() for name in COUNT_COLUMNS},
    **{name: nw.Int64() for name in TIMES},
    **{name: nw.Float64() for name in AMOUNTS},
}
DROP_RANGE = ("min_ns", "max_ns")  # a drop's time range: ``drop_range(tx)``
STATE_COLUMNS: tuple[str, ...] = (ID, *TOTALS)
WINDOW_NS = LONGEST_WINDOW_DAYS * DAY_NS


def _typed(state: nw.LazyFrame) -> nw.LazyFrame:
    """``STATE_COLUMNS`` in ``STATE_SCHEMA`` (engines differ in the integer type of a count or a sum)."""
    return state.select(*(c(name).cast(STATE_SCHEMA[name]) for name in STATE_COLUMNS))


def drop_state(tx: nw.LazyFrame, large_amount: float) -> nw.LazyFrame:
    """``TOTALS`` per customer of one drop's transactions (``feature_defs`` input convention, ``customer_id`` a
    string; rows without ``ts`` ignored), whatever their times."""
    return _typed(_aggregate(_rows(tx, large_amount), None))


def combine(states: Sequence[nw.LazyFrame]) -> nw.LazyFrame:
    """The state of the union of the drops of ``states`` (each in ``STATE_SCHEMA``; no order in time assumed)."""
    if not states:
        raise ValueError("no state to combine")
    rows = nw.concat([_typed(s) for s in states], how="vertical")
    at_latest = c("last_purchase_ns") == c("last_purchase_ns").max().over(ID)  # null (no purchase): 0.0 below
    rows = rows.with_columns(last_amount=nw.when(at_latest).then(c("last_amount")).otherwise(0.0))
    return _typed(
        rows.group_by(ID).agg(
            *(c(name).sum() for name in COUNT_COLUMNS),
            c("last_event_ns").max(),
            c("last_purchase_ns").max(),
            c("first_purchase_ns").min(),
            *(c(name).max() for name in AMOUNTS),
        )
    )


def drop_range(tx: nw.LazyFrame) -> nw.LazyFrame:
    """One row: ``min_ns`` and ``max_ns``, the time range of a drop's transactions (null when none)."""
    valid = tx.filter(~c("ts").is_null())
    return valid.select(c("ts").min().alias("min_ns"), c("ts").max().alias("max_ns"))


def window_start(as_of_ns: int) -> int:
    """The rows a features step reads besides the state: ``ts > window_start(T)`` (the longest window)."""
    return int(as_of_ns) - WINDOW_NS


def features(
    total: nw.LazyFrame, recent_tx: nw.LazyFrame, customers: nw.LazyFrame, as_of_ns: int, large_amount: float
) -> nw.LazyFrame:
    """``feature_defs.features`` as of ``as_of_ns`` from ``total`` (the state of every transaction, none after
    ``as_of_ns``) and ``recent_tx`` (transactions including every one with ``window_start(as_of_ns) < ts <=
    as_of_ns``; others are ignored): ``FEATURE_OUTPUT`` of every customer of ``customers``."""
    as_of_ns = int(as_of_ns)
    behaviour = total.join(_window_sums(_rows(recent_tx, large_amount), as_of_ns), on=ID, how="left")
    return _features(customers, behaviour, as_of_ns)


def latest(total: nw.LazyFrame) -> nw.LazyFrame:
    """One row: ``latest_ns``, the latest transaction time the state covers (null when none): T."""
    return total.select(c("last_event_ns").max().alias("latest_ns"))


@dataclass(frozen=True)
class DropState:
    """What a stored drop state says about itself (kept in its file's metadata and in the running total's):
    which drop, which computation of it (``state_id``, new on every materialization: a re-clean or backfill of
    the drop gives a new one), the time range of the drop's transactions and the large-purchase threshold."""

    drop: str
    state_id: str
    min_ns: int | None
    max_ns: int | None
    large_amount: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DropState:
        return cls(**{f: value[f] for f in ("drop", "state_id", "min_ns", "max_ns", "large_amount")})


@dataclass(frozen=True)
class DropVersion:
    """Which stored version of one drop's file a running table holds (``latest_customers``: a drop's clean
    customers; ``version`` changes whenever the file is written again, e.g. by a re-clean or backfill)."""

    drop: str
    version: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DropVersion:
        return cls(value["drop"], value["version"])


@dataclass(frozen=True)
class TotalsPlan:
    """How a running table (``customer_totals``, ``latest_customers``) is brought up to date: ``add`` the new
    ``drops`` to the previous table (``incremental``), or combine every drop again (``rebuild``: a drop of the
    previous table was re-cleaned, backfilled or removed, or there is no previous table); ``why`` says which."""

    mode: Literal["incremental", "rebuild", "unchanged"]
    drops: tuple[Any, ...]  # DropState / DropVersion: what the running table then holds of each drop
    why: str


def plan_running(previous: Sequence[Any] | None, current: Sequence[Any]) -> TotalsPlan:
    """The cheapest exact way from the ``previous`` running table's drops to the ``current`` ones (items with a
    ``drop`` name, equal when that drop's input is unchanged: ``DropState``, ``DropVersion``), in drop order. A
    table that combines by drop (state sums, latest record wins) is then the previous table plus the new drops."""
    if previous is None:
        return TotalsPlan("rebuild", tuple(current), "no previous running table")
    now = {s.drop: s for s in current}
    changed = [s.drop for s in previous if now.get(s.drop) != s]
    if changed:
        return TotalsPlan("rebuild", tuple(current), f"drop(s) {', '.join(changed)} changed or removed since the total")
    before = {s.drop for s in previous}
    new = tuple(s for s in current if s.drop not in before)
    if not new:
        return TotalsPlan("unchanged", (), "every drop is in the total already")
    if [s.drop for s in current[: len(previous)]] != [s.drop for s in previous]:
        return TotalsPlan("rebuild", tuple(current), "a new drop sorts before a drop of the previous table")
    return TotalsPlan("incremental", new, f"{len(new)} new drop(s) added to the previous total")


def plan_totals(previous: Sequence[DropState] | None, current: Sequence[DropState], large_amount: float) -> TotalsPlan:
    """``plan_running`` for ``customer_totals``. ValueError when a state was computed with another large-purchase
    threshold than ``large_amount`` (it must be recomputed)."""
    stale = [s.drop for s in current if s.large_amount != float(large_amount)]
    if stale:
        raise ValueError(
            f"customer_state of drop(s) {', '.join(stale)} was computed with another large-purchase threshold than "
            f"{large_amount}: materialize customer_state again for those drops (a backfill of its partitions)"
        )
    if not current:
        raise ValueError("no drop has a customer_state: materialize customer_state for the drops first")
    return plan_running(previous, current)


def drops_in_window(states: Sequence[DropState], as_of_ns: int) -> list[DropState]:
    """The drops holding a transaction inside the longest window before ``as_of_ns`` (the others are skipped: their
    time range ends at or before its start)."""
    start = window_start(as_of_ns)
    return [s for s in states if s.max_ns is not None and s.max_ns > start]


def drops_between(states: Sequence[DropState], start_ns: int, end_ns: int) -> list[DropState]:
    """The drops holding a transaction with ``start_ns < ts <= end_ns`` by their time range (the label windows a
    ``model_performance`` step reads; the others are skipped)."""
    return [s for s in states if s.max_ns is not None and s.max_ns > start_ns and s.min_ns <= end_ns]


def latest_of(states: Sequence[DropState]) -> int | None:
    """T from the drops' time ranges alone: their latest transaction time (None when no drop has one)."""
    return max((s.max_ns for s in states if s.max_ns is not None), default=None)
