"""The raw domain: drops -> contract-checked raw tables -> clean tables + quarantine; the raw drop location."""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.defs.freshness import with_freshness
from hvbuyer_assets.defs.raw import assets
from hvbuyer_assets.defs.raw.resources import IngestResource, RawStorageResource
from hvbuyer_assets.settings import Settings

ASSETS = with_freshness(dg.load_assets_from_modules([assets]))


def build_defs(settings: Settings) -> dg.Definitions:
    """The domain's assets (with their checks), ``raw_storage`` (``HVBUYER_RAW_URI``) and ``ingest``."""
    return dg.Definitions(
        assets=ASSETS,
        resources={
            "raw_storage": RawStorageResource(uri=settings.raw_uri, s3_endpoint_url=settings.s3_endpoint_url),
            "ingest": IngestResource(
                chunk_bytes=settings.raw_chunk_bytes, quarantine_min_rows=settings.quarantine_min_rows
            ),
        },
    )
