"""The catalog of stored assets: where each asset lives (data layer, one file or one file per drop) and, for a
per-drop asset whose records are re-sent, which key's latest record wins when its drops are read together.

The one answer to "where is asset X and how is its history read": the pipeline's IO manager and the engines' input
manager read the stored files through :meth:`StoredAsset.drop_files` and :meth:`StoredAsset.read_drops`, the engines
take the latest-wins key from here, and the prediction service finds the scores and features files here. No Dagster
import (the service imports it); the Dagster assets carry their entry as metadata (``defs.metadata.stored``).

Layout, under the data dir (a local folder or ``s3://``): ``<layer>/<asset>.<ext>`` for an asset stored whole,
``<layer>/<asset>/<drop>.parquet`` for one stored per drop (``storage.partitions``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pyarrow as pa

from hvbuyer_assets.core.cleaning.history import latest_rows
from hvbuyer_assets.core.sources import SOURCES, RawSource
from hvbuyer_assets.settings import DATA_LAYERS
from hvbuyer_assets.storage.partitions import partition_path, partition_paths, read_partitions


@dataclass(frozen=True)
class StoredAsset:
    """One asset on storage.

    layer: the data layer (folder under the data dir) it is stored in.
    per_drop: one parquet file per drop partition (``<layer>/<name>/<drop>.parquet``) instead of one value.
    latest_wins_by: for a per-drop asset, the key whose record of the latest drop replaces the earlier ones when
        drops are read together (re-sent customers); None: every drop's rows are kept.
    """

    name: str
    layer: str
    per_drop: bool = False
    latest_wins_by: str | None = None

    def __post_init__(self) -> None:
        if self.layer not in DATA_LAYERS:
            expected = ", ".join(DATA_LAYERS)
            raise ValueError(f"{self.name}: unknown data layer {self.layer!r}; expected one of {expected}")
        if self.latest_wins_by is not None and not self.per_drop:
            raise ValueError(f"{self.name}: a latest-wins key needs an asset stored per drop")

    def stem(self, base_uri: str) -> str:
        """``<base_uri>/<layer>/<name>``: the asset stored whole is this plus its suffix (``.parquet``, ``.json``,
        ``.joblib``); stored per drop, the folder of its drop files."""
        return f"{base_uri.rstrip('/')}/{self.layer}/{self.name}"

    def relative(self, suffix: str = ".parquet") -> str:
        """Where the asset stored whole lives, relative to the data dir: ``<layer>/<name><suffix>``."""
        if self.per_drop:
            raise ValueError(f"{self.name} is stored per drop: ask for drop_path or drop_files")
        return f"{self.layer}/{self.name}{suffix}"

    def path(self, base_uri: str, suffix: str = ".parquet") -> str:
        """Where the asset stored whole lives."""
        return f"{base_uri.rstrip('/')}/{self.relative(suffix)}"

    def drop_path(self, base_uri: str, drop: str) -> str:
        """Where one drop of a per-drop asset lives (written or not)."""
        return partition_path(base_uri, self.layer, self.name, drop)

    def drop_files(self, base_uri: str, drops: Sequence[str], endpoint_url: str | None = None) -> list[str]:
        """The stored files of ``drops`` (in their order: the drops' arrival order); drops never stored (refused,
        not yet ingested) are left out."""
        return partition_paths(base_uri, self.layer, self.name, drops, endpoint_url)

    def read_drops(
        self, files: Sequence[str], columns: Iterable[str] | None = None, endpoint_url: str | None = None
    ) -> pa.Table:
        """``files`` (from :meth:`drop_files`) as one Arrow table in drop order, ``columns`` only when given; with
        a latest-wins key, each key's record of the latest drop only (``cleaning.history.latest_rows``)."""
        table = read_partitions(files, columns, endpoint_url)
        if self.latest_wins_by is not None and len(files) > 1:
            table = latest_rows(table, self.latest_wins_by)
        return table


class SourceAssets(NamedTuple):
    """The stored assets of one raw source."""

    raw: StoredAsset
    clean: StoredAsset
    quarantine: StoredAsset


def source_assets(source: RawSource) -> SourceAssets:
    """A raw source's assets, each stored per drop: raw (``interim``), clean (``processed``, with the source's
    latest-wins rule) and quarantined (``quarantine``)."""
    return SourceAssets(
        StoredAsset(source.raw_asset, "interim", per_drop=True),
        StoredAsset(source.clean_asset, "processed", True, source.key if source.latest_wins else None),
        StoredAsset(source.quarantine_asset, "quarantine", per_drop=True),
    )


def _declared() -> dict[str, StoredAsset]:
    entries = [stored for source in SOURCES for stored in source_assets(source)]
    entries.append(StoredAsset("customer_state", "features", per_drop=True))  # core.customer_state, per drop
    whole = {
        "features": ("customer_totals", "latest_customers", "customer_features", "training_set"),
        "models": ("trained_model", "model_evaluation", "registered_model", "champion_model"),
        "scores": ("customer_scores", "segment_summary"),
        "monitoring": (
            "drift_reference",
            "drift_report",
            "score_history",
            "model_performance",
            "estimated_performance",
        ),
    }
    entries += [StoredAsset(name, layer) for layer, names in whole.items() for name in names]
    return {entry.name: entry for entry in entries}


CATALOG: dict[str, StoredAsset] = _declared()


def entry(name: str) -> StoredAsset:
    """The catalog entry of asset ``name``; ValueError for an asset the catalog does not declare."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(
            f"asset {name!r} is not in the storage catalog (hvbuyer_assets/storage/catalog.py); declared: "
            f"{', '.join(sorted(CATALOG))}"
        ) from None
