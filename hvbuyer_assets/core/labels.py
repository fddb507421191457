"""Labels: did the customer make a large completed purchase in the window (cutoff, cutoff + H]?

The definition is ``feature_defs.labels`` (one declaration, every engine); this module gives its window and the
pandas layout.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from hvbuyer_assets.core import engine, feature_defs, problem
from hvbuyer_assets.core.features import customer_ids, sort_rows, to_utc
from hvbuyer_assets.core.keys import id_index

DEFAULT_HORIZON_DAYS = problem.HORIZON_DAYS
DEFAULT_THRESHOLD = problem.LARGE_PURCHASE_THRESHOLD


def label_window(cutoff: Any, horizon_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The label window (start, end]: start = cutoff (excluded), end = cutoff + horizon_days (included)."""
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    start = to_utc(cutoff)
    return start, start + pd.Timedelta(days=horizon_days)


def finish_labels(table: pa.Table) -> pd.Series:
    """A collected ``feature_defs.labels`` table as an int8 Series named ``label`` (index sorted customer_id)."""
    table = sort_rows(table, [feature_defs.ID])
    index = id_index(customer_ids(table))
    return pd.Series(table.column("label").to_numpy().astype(np.int8), index=index, name="label")


def labels_frame(frames: engine.Frames, cutoff: Any, horizon_days: int, threshold: float) -> pd.Series:
    """``build_labels`` of every customer of ``frames``, on any engine."""
    start, _ = label_window(cutoff, horizon_days)
    lazy = feature_defs.labels(frames.transactions, frames.customers, start.value, horizon_days, threshold)
    return finish_labels(frames.collect(lazy))


def labels_of(
    frames: engine.Frames, customer_ids: Iterable[Any], cutoff: Any, horizon_days: int, threshold: float
) -> pd.Series:
    """:func:`labels_frame` of ``customer_ids`` (in the order given), on any engine; an id that is not a customer
    of ``frames`` gets 0 (its transactions, if any, are not counted)."""
    ids = id_index(customer_ids)
    return labels_frame(frames, cutoff, horizon_days, threshold).reindex(ids, fill_value=0)


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
    ids = id_index(customer_ids)
    customers = pd.DataFrame(
        {"customer_id": ids.array, "signup_date": pd.NaT, "age": np.nan, "loyalty_points": np.nan, "region": None}
    )
    return labels_of(engine.from_pandas(transactions, customers), ids, cutoff, horizon_days, threshold)
