"""The online store: each customer's latest score, model version, as-of time and feature values (and, when the
scoring stored them, its top reasons), one key per customer, for ``GET /customers/{id}/prediction``.

Feast's shape: SQLite when embedded (``sqlite:///<path>``, the default under the data dir, nothing to start),
Redis in production (``redis://host:port/db``), chosen by ``HVBUYER_ONLINE_STORE``. ``customer_scores`` writes it
(``OnlineStore.write``: only the rows that changed since the last write, under a new version that readers switch
to atomically); the API reads one customer per request and holds nothing per customer.
"""

from __future__ import annotations

from hvbuyer_serving.online_store.base import OnlineStore, StoreUnavailable, WriteResult
from hvbuyer_serving.online_store.records import score_records


def open_store(url: str) -> OnlineStore:
    """The store at ``url`` (``sqlite:///PATH`` or ``redis://HOST:PORT/DB``); nothing is connected yet."""
    if url.startswith("sqlite:///"):
        from hvbuyer_serving.online_store.sqlite_store import SqliteStore

        return SqliteStore(url)
    if url.startswith(("redis://", "rediss://")):
        from hvbuyer_serving.online_store.redis_store import RedisStore

        return RedisStore(url)
    raise ValueError(f"unsupported online store {url!r}: expected sqlite:///PATH or redis://HOST:PORT/DB")


__all__ = ["OnlineStore", "StoreUnavailable", "WriteResult", "open_store", "score_records"]
