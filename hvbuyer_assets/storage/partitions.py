"""Per-drop (partitioned) assets on storage: ``<base>/<layer>/<asset>/<key>.parquet``, one file per partition,
written once. Which files make an asset's history, in which order, is decided here only: the pipeline's IO manager,
the cleaning of a new drop (ids of earlier drops) and any other engine reading the same files go through
:func:`partition_paths`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from hvbuyer_assets.storage.location import arrow_location, location

SUFFIX = ".parquet"


def partition_path(base_uri: str, layer: str, asset: str, key: str) -> str:
    """Where partition ``key`` of ``asset`` is stored: ``<base_uri>/<layer>/<asset>/<key>.parquet``."""
    if not key or "/" in key or key.startswith("."):
        raise ValueError(f"partition key {key!r} of {asset} cannot name a file (empty, '/' or leading '.')")
    return f"{base_uri.rstrip('/')}/{layer}/{asset}/{key}{SUFFIX}"


def partition_paths(
    base_uri: str, layer: str, asset: str, keys: Sequence[str], endpoint_url: str | None = None
) -> list[str]:
    """The stored partitions of ``asset`` among ``keys``, in the order of ``keys`` (the drops' arrival order, as
    Dagster lists the dynamic partitions); partitions never stored (a refused or not yet ingested drop) are left
    out."""
    paths = [partition_path(base_uri, layer, asset, key) for key in keys]
    fs, _ = arrow_location(location(base_uri, endpoint_url), endpoint_url)
    if fs is None:
        return [p for p in paths if location(p).exists()]
    infos = fs.get_file_info([arrow_location(location(p, endpoint_url), endpoint_url)[1] for p in paths])
    return [p for p, info in zip(paths, infos, strict=True) if info.type.name == "File"]


def read_partitions(
    paths: Sequence[str], columns: Iterable[str] | None = None, endpoint_url: str | None = None
) -> pa.Table:
    """The partition files ``paths`` as one Arrow table, rows in the order of ``paths`` (one Arrow dataset read,
    ``columns`` only when given)."""
    if not paths:
        raise FileNotFoundError("no stored partition to read")
    fs, first = arrow_location(location(paths[0], endpoint_url), endpoint_url)
    where = [first] + [arrow_location(location(p, endpoint_url), endpoint_url)[1] for p in paths[1:]]
    if len(where) == 1:
        return pq.read_table(first, filesystem=fs, columns=list(columns) if columns is not None else None)
    wanted = list(columns) if columns is not None else None
    try:
        return pads.dataset(where, format="parquet", filesystem=fs).to_table(columns=wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # partitions whose column types differ (e.g. string / large_string, an empty quarantine): one by one
        tables = [pq.read_table(w, filesystem=fs, columns=wanted) for w in where]
        return pa.concat_tables(tables, promote_options="permissive")
