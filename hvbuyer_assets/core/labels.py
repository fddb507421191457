"""Labels: did the customer make a large completed purchase in the window (cutoff, cutoff + H]?"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from hvbuyer_assets.core import problem
from hvbuyer_assets.core.features import STATUS_COMPLETED, EncodedTransactions, encode_transactions, to_utc

DEFAULT_HORIZON_DAYS = problem.HORIZON_DAYS
DEFAULT_THRESHOLD = problem.LARGE_PURCHASE_THRESHOLD


def label_window(cutoff: Any, horizon_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The label window (start, end]: start = cutoff (excluded), end = cutoff + horizon_days (included)."""
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    start = to_utc(cutoff)
    return start, start + pd.Timedelta(days=horizon_days)


def labels_from_encoded(enc: EncodedTransactions, cutoff: Any, horizon_days: int, threshold: float) -> np.ndarray:
    """int8 array aligned with ``enc.customer_ids`` (see ``build_labels``)."""
    start, end = label_window(cutoff, horizon_days)
    hit = (enc.status == STATUS_COMPLETED) & (enc.amount >= threshold) & (enc.ts > start.value) & (enc.ts <= end.value)
    return (np.bincount(enc.code[hit], minlength=enc.n_customers) > 0).astype(np.int8)


def build_labels(
    transactions: pd.DataFrame,
    customer_ids: Iterable[Any],
    cutoff: Any,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    threshold: float = DEFAULT_THRESHOLD,
) -> pd.Series:
    """1 iff the customer has a completed transaction with amount >= threshold and cutoff < ts <= cutoff + H.

    Returns an int8 Series named ``label`` indexed by ``customer_id`` (in the order given); customers without
    transactions get 0.
    """
    enc = encode_transactions(transactions, customer_ids)
    labels = labels_from_encoded(enc, cutoff, horizon_days, threshold)
    return pd.Series(labels, index=enc.customer_ids, name="label", dtype=np.int8)
