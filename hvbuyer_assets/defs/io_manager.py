"""The IO manager of every asset: ``<HVBUYER_DATA_DIR>/<layer>/<asset>.<ext>`` on a local folder or s3://; an asset
partitioned by drop: ``<HVBUYER_DATA_DIR>/<layer>/<asset>/<drop>.parquet``, one file per drop, read back by an
unpartitioned consumer as one frame of every stored drop in drop order. Where each asset lives, and which key's
latest record wins across drops, is the asset's ``storage.catalog`` entry, carried as its metadata."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from hvbuyer_assets.defs.metadata import arrow_column_schema, frame_metadata, stored_asset
from hvbuyer_assets.defs.partitions import stored_drop_files
from hvbuyer_assets.memory import release_memory
from hvbuyer_assets.storage import is_local, location, read_stored, write_joblib, write_json, write_parquet
from hvbuyer_assets.storage.catalog import StoredAsset
from hvbuyer_assets.storage.files import arrow_to_pandas, parquet_batches, parquet_rows, temporary_path
from hvbuyer_assets.storage.staged import StagedParquet, StagedTable

SUFFIXES = (".parquet", ".json", ".joblib")


class LayeredStorageIOManager(dg.ConfigurableIOManager):
    """Stores each asset as ``<base_uri>/<layer>/<asset>.<ext>`` (its catalog entry from the asset's metadata,
    ``defs.metadata.stored``).

    DataFrames are parquet, dicts/lists JSON, anything else (fitted models) joblib; every write is atomic
    (``hvbuyer_assets.storage``), so a crash never leaves a half-written asset behind. A drop of a per-drop asset
    may also be a :class:`StagedParquet` from :meth:`staged` (written by the step a chunk at a time), and a whole
    asset a :class:`StagedTable` (staged by an engine, e.g. part files its executors wrote): either is moved into
    place. A stored parquet value is read back the same way whether it is one file or such a directory.
    """

    base_uri: str
    s3_endpoint_url: str | None = None

    def _stem(self, key: dg.AssetKey, metadata: dict[str, Any] | None) -> UPath:
        asset = stored_asset(key.path[-1], metadata, per_drop=False)
        return location(asset.stem(self.base_uri), self.s3_endpoint_url)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if context.has_asset_partitions:
            self._write_partition(context, obj)
            return
        stem = self._stem(context.asset_key, context.definition_metadata)
        stem.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, StagedTable):
            self._commit(context, obj, stem.with_suffix(".parquet"))
        elif isinstance(obj, pd.DataFrame):
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

    def _commit(self, context: dg.OutputContext, staged: StagedTable, path: UPath) -> None:
        """Store a value the step staged (``storage.staged.StagedTable``: written by an engine's executors, or a
        table of the step) where this manager keeps the asset."""
        if str(staged.target) != str(path):
            raise ValueError(f"{context.asset_key.to_user_string()}: staged for {staged.target}, stored at {path}")
        staged.commit()
        assert staged.schema is not None and staged.rows is not None
        context.add_output_metadata(
            {
                "dagster/row_count": staged.rows,
                "dagster/column_schema": arrow_column_schema(staged.schema),
                "path": dg.MetadataValue.path(str(path)),
            }
        )

    def staged(self, asset: StoredAsset, drop: str) -> StagedParquet:
        """A file for drop ``drop`` of ``asset``, written a row group at a time by the step and stored when it is
        output (locally made beside its target, so that storing it is a rename)."""
        target = location(asset.drop_path(self.base_uri, drop), self.s3_endpoint_url)
        return StagedParquet(temporary_path(target).path if is_local(target) else None)

    def _write_partition(self, context: dg.OutputContext, obj: Any) -> None:
        if not isinstance(obj, pd.DataFrame | StagedParquet):
            raise TypeError(f"{context.asset_key.to_user_string()}: a partitioned asset must be a DataFrame")
        asset = stored_asset(context.asset_key.path[-1], context.definition_metadata, per_drop=True)
        path = location(asset.drop_path(self.base_uri, context.asset_partition_key), self.s3_endpoint_url)
        if isinstance(obj, StagedParquet):
            obj.commit(path, self.s3_endpoint_url)
            schema = {} if obj.schema is None else {"dagster/column_schema": arrow_column_schema(obj.schema)}
            context.add_output_metadata(
                {"dagster/row_count": obj.rows, **schema, "path": dg.MetadataValue.path(str(path))}
            )
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, obj, self.s3_endpoint_url, preserve_index=not isinstance(obj.index, pd.RangeIndex))
        context.add_output_metadata({**frame_metadata(obj), "path": dg.MetadataValue.path(str(path))})
        release_memory()

    def _load_partitions(self, context: dg.InputContext, metadata: dict[str, Any]) -> pd.DataFrame:
        """One partition (a consumer of the same drop) or every stored one in drop order (an unpartitioned
        consumer), as one frame; for an asset declaring it, the latest record of a key wins across drops."""
        asset = stored_asset(context.asset_key.path[-1], metadata, per_drop=True)
        files = stored_drop_files(context, asset, self.base_uri, self.s3_endpoint_url)
        # latest wins on Arrow, before pandas: superseded records are never converted
        table = asset.read_drops(files, endpoint_url=self.s3_endpoint_url)
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


STORED_FRAMES = "stored_frames"  # the resource key of StoredFrameInputManager


@dataclass(frozen=True)
class StoredFrame:
    """A stored DataFrame asset, not loaded: read it in chunks (``batches``) or count its rows (``rows``)."""

    path: UPath
    endpoint_url: str | None = None

    def rows(self) -> int:
        return parquet_rows(self.path, self.endpoint_url)

    def batches(self, rows: int) -> Iterator[pd.DataFrame]:
        """The frame ``rows`` at a time (its index and dtypes, as the IO manager would load it whole)."""
        return parquet_batches(self.path, rows, self.endpoint_url)


class StoredFrameInputManager(dg.ConfigurableIOManager):
    """Gives an asset an upstream DataFrame as a :class:`StoredFrame` (where the IO manager stored it, from the
    upstream's catalog entry) instead of loading it whole. Stores nothing."""

    base_uri: str
    s3_endpoint_url: str | None = None

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        raise NotImplementedError(f"{STORED_FRAMES} only loads inputs; outputs go through the io_manager")

    def load_input(self, context: dg.InputContext) -> StoredFrame:
        upstream = context.upstream_output
        asset = stored_asset(context.asset_key.path[-1], upstream.definition_metadata if upstream else None, False)
        path = location(asset.path(self.base_uri), self.s3_endpoint_url)
        if not path.exists():
            raise FileNotFoundError(f"asset {context.asset_key.to_user_string()} has no stored value at {path}")
        return StoredFrame(path, self.s3_endpoint_url)
