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

import numpy as np
import pandas as pd

from hvbuyer_assets.core import problem
from hvbuyer_assets.core.features import (
    FEATURE_COLUMNS,
    NAT_NS,
    STRING,
    encode_transactions,
    features_from_encoded,
    to_utc,
)
from hvbuyer_assets.core.labels import DEFAULT_HORIZON_DAYS, DEFAULT_THRESHOLD, labels_from_encoded

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
    last_event_at (latest transaction used by the features, <= cutoff). See the module docstring.

    Raises ValueError when the data has no history before the holdout cutoff or before every training cutoff.
    """
    train_cutoffs, holdout_cutoff = snapshot_cutoffs(as_of, horizon_days, train_snapshots, snapshot_step_days)
    enc = encode_transactions(transactions, customers["customer_id"])
    if len(enc.ts) == 0:
        raise ValueError("no usable transactions: cannot build a training set")
    earliest = int(enc.ts.min())
    usable = [c for c in train_cutoffs if c.value >= earliest]
    if holdout_cutoff.value < earliest or not usable:
        first = pd.Timestamp(earliest, tz="UTC")
        raise ValueError(
            f"not enough history: transactions start at {first}, the holdout cutoff is {holdout_cutoff} and "
            f"the newest training cutoff is {train_cutoffs[0]} (need 2 x {horizon_days} days of data)"
        )
    signup = pd.to_datetime(customers["signup_date"], utc=True).dt.as_unit("ns").array.asi8
    signup_known = signup != NAT_NS
    frames = []
    for split, cutoff in [("train", c) for c in usable] + [("holdout", holdout_cutoff)]:
        eligible = ~signup_known | (signup <= cutoff.value)
        feats = features_from_encoded(enc, customers, cutoff, large_amount=threshold)
        frame = feats.loc[eligible, list(FEATURE_COLUMNS) + ["last_event_at"]].reset_index()
        frame["cutoff"] = cutoff
        frame["label"] = labels_from_encoded(enc, cutoff, horizon_days, threshold)[eligible]
        frame["split"] = pd.array([split] * len(frame), dtype=STRING)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)[list(TRAINING_COLUMNS)]
    out["customer_id"] = out["customer_id"].astype(STRING)
    out["label"] = out["label"].astype(np.int8)
    out["cutoff"] = pd.to_datetime(out["cutoff"], utc=True).dt.as_unit("ns")
    return out
