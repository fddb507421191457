"""The monitoring domain: drift references and report, the score archive, realised performance; their store."""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.defs.freshness import with_freshness
from hvbuyer_assets.defs.monitoring import assets
from hvbuyer_assets.defs.monitoring.storage import MonitoringStore
from hvbuyer_assets.settings import Settings

ASSETS = with_freshness(dg.load_assets_from_modules([assets]))


def build_defs(settings: Settings) -> dg.Definitions:
    """The domain's assets and ``monitoring_store`` (write-once files under ``<HVBUYER_DATA_DIR>/monitoring``)."""
    store = MonitoringStore(base_uri=settings.layer_uri("monitoring"), s3_endpoint_url=settings.s3_endpoint_url)
    return dg.Definitions(assets=ASSETS, resources={"monitoring_store": store})
