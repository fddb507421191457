"""The customer key: its column name and its string index (shared by the features, the engines and serving)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

KEY = "customer_id"  # the customer key of every feature, label and training frame
STRING = pd.StringDtype("pyarrow")


def id_index(customer_ids: Iterable[Any]) -> pd.Index:
    """The customers' ids as a string Index named customer_id (ValueError when not unique)."""
    index = pd.Index(pd.array(customer_ids, dtype=STRING), name=KEY)
    if not index.is_unique:
        raise ValueError("customer_id values must be unique")
    return index
