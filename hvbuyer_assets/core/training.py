"""Temporal training set: point-in-time features with labels from the following horizon.

With T = as_of and C = T - H (H = horizon):

- holdout rows: features as of C, labels from (C, C + H] = (C, T]  (the evaluation data of the contract);
- train rows, snapshot k = 0 .. train_snapshots - 1: features as of c_k = C - H - k * step, labels from
  (c_k, c_k + H]. Every training label window ends at or before C, so no training label overlaps the holdout
  window, and every feature only uses data at or before its own cutoff.

A customer whose signup_date is after a snapshot's cutoff is left out of that snapshot (unknown signup dates
are kept). A snapshot whose cutoff is before the earliest transaction has no history at all and is skipped.
"""

from __future__ import annotations

from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd
import pyarrow as pa

from hvbuyer_assets.core import engine, feature_defs, problem, sampling
from hvbuyer_assets.core.features import (
    FEATURE_COLUMNS,
    customer_ids,
    feature_columns,
    in_columns,
    sort_rows,
    strings,
    to_utc,
    utc_times,
)
from hvbuyer_assets.core.labels import DEFAULT_HORIZON_DAYS, DEFAULT_THRESHOLD

TRAINING_COLUMNS: tuple[str, ...] = FEATURE_COLUMNS + (
    "customer_id",
    "cutoff",
    "label",
    "split",
    "last_event_at",
)
SPLITS = ("train", "holdout")


def snapshot_cutoffs(
    as_of: Any,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    train_snapshots: int = problem.DEFAULTS.train_snapshots,
    snapshot_step_days: int = problem.DEFAULTS.snapshot_step_days,
) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """(training cutoffs, newest first; holdout cutoff C = as_of - H)."""
    if train_snapshots < 1 or snapshot_step_days < 1 or horizon_days < 1:
        raise ValueError("horizon_days, train_snapshots and snapshot_step_days must be >= 1")
    horizon = pd.Timedelta(days=horizon_days)
    holdout = to_utc(as_of) - horizon
    step = pd.Timedelta(days=snapshot_step_days)
    return [holdout - horizon - k * step for k in range(train_snapshots)], holdout


def training_cutoffs(
    earliest_ns: int | None,
    as_of: Any,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    train_snapshots: int = problem.DEFAULTS.train_snapshots,
    snapshot_step_days: int = problem.DEFAULTS.snapshot_step_days,
) -> list[tuple[str, int]]:
    """The ``(split, cutoff_ns)`` of the training set (train newest first, then holdout) given the earliest
    transaction of a known customer (``feature_defs.history``): training cutoffs before it are skipped.

    Raises ValueError without transactions, or without history before the holdout cutoff or every training cutoff.
    """
    train, holdout = snapshot_cutoffs(as_of, horizon_days, train_snapshots, snapshot_step_days)
    if earliest_ns is None:
        raise ValueError("no usable transactions: cannot build a training set")
    usable = [c for c in train if c.value >= earliest_ns]
    if holdout.value < earliest_ns or not usable:
        first = pd.Timestamp(earliest_ns, tz="UTC")
        raise ValueError(
            f"not enough history: transactions start at {first}, the holdout cutoff is {holdout} and "
            f"the newest training cutoff is {train[0]} (need 2 x {horizon_days} days of data)"
        )
    return [("train", c.value) for c in usable] + [("holdout", holdout.value)]


def finish_training(table: pa.Table) -> pd.DataFrame:
    """A collected ``feature_defs.training_rows`` table as ``build_training_set``'s frame (rows by snapshot, then
    customer_id)."""
    table = sort_rows(table, ["snapshot", feature_defs.ID])
    columns = feature_columns(table)
    columns["customer_id"] = customer_ids(table)
    columns["cutoff"] = utc_times(table.column("cutoff_ns").to_numpy())
    columns["label"] = table.column("label").to_numpy().astype(np.int8)
    columns["split"] = strings(table.column("split"))
    return in_columns(columns, TRAINING_COLUMNS)


def known_customers(frames: engine.Frames) -> int:
    """How many customers ``frames`` know (one training row per customer and cutoff at most)."""
    return int(frames.collect(frames.customers.select(nw.len())).column(0)[0].as_py())


def training_frame(
    frames: engine.Frames,
    as_of: Any,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    threshold: float = DEFAULT_THRESHOLD,
    train_snapshots: int = problem.DEFAULTS.train_snapshots,
    snapshot_step_days: int = problem.DEFAULTS.snapshot_step_days,
    sample: sampling.TrainingSample | None = None,
) -> pd.DataFrame:
    """``build_training_set`` on any engine's ``Frames``; with ``sample``, at most ``sample.max_rows`` rows
    (``core.sampling``), drawn on the engine before anything is collected when the engine can (``Frames.sample``).
    A set that cannot exceed the cap (customers x cutoffs) is neither counted nor sampled."""
    tx, customers = frames.transactions, frames.customers
    earliest = frames.collect(feature_defs.history(tx, customers)).column("earliest_ns")[0].as_py()
    cutoffs = training_cutoffs(earliest, as_of, horizon_days, train_snapshots, snapshot_step_days)
    rows = feature_defs.training_rows(tx, customers, cutoffs, horizon_days, threshold)
    if sample is None or not sample.may_bind(known_customers(frames), len(cutoffs)):
        return finish_training(frames.collect(rows))
    if frames.sample is not None:
        return finish_training(frames.sample(rows, sample))
    return finish_training(sampling.sample_arrow(frames.collect(rows), sample))


def build_training_set(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    as_of: Any,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    threshold: float = DEFAULT_THRESHOLD,
    train_snapshots: int = problem.DEFAULTS.train_snapshots,
    snapshot_step_days: int = problem.DEFAULTS.snapshot_step_days,
) -> pd.DataFrame:
    """Rows of (customer, cutoff) with ``FEATURE_COLUMNS``, customer_id, cutoff, label (int8), split and
    last_event_at (latest transaction used by the features, <= cutoff). See the module docstring. Rows are
    ordered by cutoff (training cutoffs newest first, then the holdout), then customer_id.

    Raises ValueError when the data has no history before the holdout cutoff or before every training cutoff.
    """
    frames = engine.from_pandas(transactions, customers)
    return training_frame(frames, as_of, horizon_days, threshold, train_snapshots, snapshot_step_days)
