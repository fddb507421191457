"""The IO manager of every asset: ``<HVBUYER_DATA_DIR>/<layer>/<asset>.<ext>`` on a local folder or s3://."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from hvbuyer_assets.defs.metadata import LAYER_KEY, frame_metadata
from hvbuyer_assets.memory import release_memory
from hvbuyer_assets.storage import location, read_stored, write_joblib, write_json, write_parquet

SUFFIXES = (".parquet", ".json", ".joblib")


class LayeredStorageIOManager(dg.ConfigurableIOManager):
    """Stores each asset as ``<base_uri>/<layer>/<asset>.<ext>`` (layer from the asset's ``layer()`` metadata).

    DataFrames are parquet, dicts/lists JSON, anything else (fitted models) joblib; every write is atomic
    (``hvbuyer_assets.storage``), so a crash never leaves a half-written asset behind.
    """

    base_uri: str
    s3_endpoint_url: str | None = None

    def _stem(self, key: dg.AssetKey, metadata: dict[str, Any] | None) -> UPath:
        folder = (metadata or {}).get(LAYER_KEY, "interim")
        return location(self.base_uri, self.s3_endpoint_url) / folder / key.path[-1]

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        stem = self._stem(context.asset_key, context.definition_metadata)
        stem.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pd.DataFrame):
            path = stem.with_suffix(".parquet")
            write_parquet(path, obj, self.s3_endpoint_url, preserve_index=not isinstance(obj.index, pd.RangeIndex))
            context.add_output_metadata({**frame_metadata(obj), "path": dg.MetadataValue.path(str(path))})
        elif isinstance(obj, dict | list):
            path = stem.with_suffix(".json")
            write_json(path, obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
        else:
            path = stem.with_suffix(".joblib")
            write_joblib(path, obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
        release_memory()

    def load_input(self, context: dg.InputContext) -> Any:
        release_memory()  # the previous step's frames are garbage by now
        upstream = context.upstream_output
        stem = self._stem(context.asset_key, upstream.definition_metadata if upstream else None)
        for suffix in SUFFIXES:
            path = stem.with_suffix(suffix)
            if path.exists():
                return read_stored(path, self.s3_endpoint_url)
        raise FileNotFoundError(f"asset {context.asset_key.to_user_string()} has no stored value under {stem}")
