"""The small data rules shared by cleaning, features and the API: age bounds, region normalisation, statuses.

Kept apart from the cleaning kernels (``core.cleaning``) so that serving and ``core.features`` import them
without pulling those in (``hvbuyer_tests/core/test_rules.py`` checks it).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.text import arrow, clean_text

AGE_MIN = 13
AGE_MAX = 110
"""A customer age outside [AGE_MIN, AGE_MAX] is impossible: cleaning, features and the API treat it as unknown."""

UNKNOWN_REGION = "Unknown"
UNKNOWN_PAYMENT_METHOD = "unknown"
TRANSACTION_STATUSES: tuple[str, ...] = ("completed", "pending", "refunded", "failed")
"""The statuses a clean transaction can have (lower case), in the order ``core.features`` codes them."""


def normalise_region(values: pd.Series) -> pd.Series:
    """Strip, collapse inner whitespace, Title Case; missing/blank -> "Unknown". Keeps the index."""
    text = clean_text(arrow(values))
    text = pc.utf8_title(pc.replace_substring_regex(text, r"\s+", " "))
    text = pc.fill_null(text, UNKNOWN_REGION)
    return pd.Series(pd.arrays.ArrowStringArray(text.cast(pa.large_string())), index=values.index, name=values.name)


def normalise_region_value(value: str | None) -> str:
    """:func:`normalise_region` for one value (same code path, so the API and the pipeline always agree)."""
    return str(normalise_region(pd.Series([value], dtype=object)).iloc[0])
