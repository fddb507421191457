"""The online store the scoring writes for the API's per-customer lookups (``HVBUYER_ONLINE_STORE``)."""

from __future__ import annotations

import dagster as dg

from hvbuyer_serving.online_store import OnlineStore, open_store


class OnlineStoreResource(dg.ConfigurableResource):
    """``sqlite:///PATH`` (embedded default, under the data dir) or ``redis://HOST:PORT/DB`` (production)."""

    url: str

    def open(self) -> OnlineStore:
        """A store client for this URL (connects on first use)."""
        return open_store(self.url)
