"""The earlier drops' clean data as the cleaning of a new drop sees it (``core.cleaning.history.EarlierDrops``):
only the id column a rule needs, read partition by partition from storage (only the row groups whose id range
admits one of the new drop's ids: ``storage.partitions.read_matching``), only the ids the new drop also holds
kept."""

from __future__ import annotations

import time
from typing import Protocol

import pyarrow as pa

from hvbuyer_assets.core.cleaning.history import MATCH_SCHEMA, earlier_matches
from hvbuyer_assets.core.sources import BY_KIND
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_assets.storage.partitions import read_matching, sorted_values


class PartitionStore(Protocol):
    """Where the data dir is (the pipeline's IO manager)."""

    base_uri: str
    s3_endpoint_url: str | None


class StoredEarlierDrops:
    """Earlier drops ``keys`` (drop order) of the clean assets in ``store`` (the pipeline's IO manager)."""

    def __init__(self, store: PartitionStore, keys: list[str]) -> None:
        self.store = store
        self.keys = keys
        self.seconds = 0.0  # time spent reading and matching ids, for the asset's metadata

    @property
    def empty(self) -> bool:
        return not self.keys

    def matching(self, kind: str, column: str, values: pa.Array) -> pa.Table:
        if self.empty or not len(values):  # the first drop, or nothing to look up
            return MATCH_SCHEMA.empty_table()
        started = time.perf_counter()
        paths = entry(BY_KIND[kind].clean_asset).drop_files(self.store.base_uri, self.keys, self.store.s3_endpoint_url)
        by_path = dict(zip([p.rsplit("/", 1)[-1].removesuffix(".parquet") for p in paths], paths, strict=True))
        ordered = sorted_values(values)
        columns = (
            (key, read_matching(by_path[key], column, ordered, self.store.s3_endpoint_url))
            for key in self.keys
            if key in by_path
        )
        found = earlier_matches(columns, values)
        self.seconds += time.perf_counter() - started
        return found
