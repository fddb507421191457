"""Cleaning of raw sources into typed frames plus a quarantine of rejected rows and values.

One module per concern: ``lineage`` (source file/row/arrival of raw rows), ``dedup`` (latest-wins and the
string-hash kernels for exact de-duplication), ``quarantine`` (quarantine rows and :class:`CleanResult`), and one
module of rules per raw source (``customers``, ``transactions``). The Arrow text parsing they share is
``core.text``; the small rules also used by features and the API (age bounds, region normalisation,
statuses) are ``core.rules``.

Everything is vectorised with pyarrow compute on the Arrow buffers behind ``string[pyarrow]`` columns (no
object dtype, no per-row Python); the quarantine is built only from the rows that failed a check. "Latest"
means the largest ``(arrived_at, source_file, source_row)``; a quarantine row has ``source_file, source_row,
record_id, field, value, reason, action``.
"""

from hvbuyer_assets.core.cleaning.customers import clean_customers
from hvbuyer_assets.core.cleaning.quarantine import (
    DUPLICATE_DROPPED,
    QUARANTINE_COLUMNS,
    ROW_DROPPED,
    VALUE_NULLED,
    CleanResult,
)
from hvbuyer_assets.core.cleaning.transactions import clean_transactions

__all__ = [
    "DUPLICATE_DROPPED",
    "QUARANTINE_COLUMNS",
    "ROW_DROPPED",
    "VALUE_NULLED",
    "CleanResult",
    "clean_customers",
    "clean_transactions",
]
