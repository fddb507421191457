"""The scoring domain: every customer scored by the champion, and the segment summary."""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.defs.freshness import with_freshness
from hvbuyer_assets.defs.scoring import assets
from hvbuyer_assets.defs.scoring.resources import OnlineStoreResource
from hvbuyer_assets.settings import Settings

ASSETS = with_freshness(dg.load_assets_from_modules([assets]))


def build_defs(settings: Settings) -> dg.Definitions:
    """The domain's assets (they read the champion through the model domain's ``model_registry``) and the online
    store ``customer_scores`` writes."""
    return dg.Definitions(assets=ASSETS, resources={"online_store": OnlineStoreResource(url=settings.online_store)})
