"""The IO manager of every asset: ``<HVBUYER_DATA_DIR>/<layer>/<asset>.<ext>`` on a local folder or s3://; an asset
partitioned by drop: ``<HVBUYER_DATA_DIR>/<layer>/<asset>/<drop>.parquet``, one file per drop, read back by an
unpartitioned consumer as one frame of every stored drop in drop order."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from hvbuyer_assets.core.cleaning.history import latest_rows
from hvbuyer_assets.defs.metadata import LATEST_WINS_KEY, LAYER_KEY, frame_metadata
from hvbuyer_assets.defs.partitions import drop_order
from hvbuyer_assets.memory import release_memory
from hvbuyer_assets.storage import (
    location,
    partition_path,
    partition_paths,
    read_partitions,
    read_stored,
    write_joblib,
    write_json,
    write_parquet,
)
from hvbuyer_assets.storage.files import arrow_to_pandas

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

    def stored_partitions(self, asset: str, layer: str, keys: list[str]) -> list[str]:
        """The stored files of ``asset``'s partitions among ``keys``, in that order (``storage.partition_paths``)."""
        return partition_paths(self.base_uri, layer, asset, keys, self.s3_endpoint_url)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if context.has_asset_partitions:
            self._write_partition(context, obj)
            return
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

    def _write_partition(self, context: dg.OutputContext, obj: Any) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: a partitioned asset must be a DataFrame")
        folder = (context.definition_metadata or {}).get(LAYER_KEY, "interim")
        path = location(
            partition_path(self.base_uri, folder, context.asset_key.path[-1], context.asset_partition_key),
            self.s3_endpoint_url,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, obj, self.s3_endpoint_url, preserve_index=not isinstance(obj.index, pd.RangeIndex))
        context.add_output_metadata({**frame_metadata(obj), "path": dg.MetadataValue.path(str(path))})
        release_memory()

    def _load_partitions(self, context: dg.InputContext, metadata: dict[str, Any]) -> pd.DataFrame:
        """One partition (a consumer of the same drop) or every stored one in drop order (an unpartitioned
        consumer), as one frame; for an asset declaring it, the latest record of a key wins across drops."""
        wanted = set(context.asset_partition_keys)
        keys = [key for key in drop_order(context.instance) if key in wanted] or sorted(wanted)
        asset, folder = context.asset_key.path[-1], metadata.get(LAYER_KEY, "interim")
        paths = self.stored_partitions(asset, folder, keys)
        if not paths:
            raise FileNotFoundError(
                f"asset {context.asset_key.to_user_string()} has no stored partition among {', '.join(keys) or 'none'}"
                f" under {self.base_uri}/{folder}/{asset}/ (a new Dagster instance on existing data: "
                "`python -m hvbuyer_assets.register_drops` adds the drops as partitions again)"
            )
        table = read_partitions(paths, endpoint_url=self.s3_endpoint_url)
        key = metadata.get(LATEST_WINS_KEY)
        if key and len(paths) > 1:
            table = latest_rows(table, key)  # before pandas: superseded records are never converted
        return arrow_to_pandas(table)

    def load_input(self, context: dg.InputContext) -> Any:
        release_memory()  # the previous step's frames are garbage by now
        upstream = context.upstream_output
        if context.has_asset_partitions:
            return self._load_partitions(context, dict(upstream.definition_metadata or {}) if upstream else {})
        stem = self._stem(context.asset_key, upstream.definition_metadata if upstream else None)
        for suffix in SUFFIXES:
            path = stem.with_suffix(suffix)
            if path.exists():
                return read_stored(path, self.s3_endpoint_url)
        raise FileNotFoundError(f"asset {context.asset_key.to_user_string()} has no stored value under {stem}")
