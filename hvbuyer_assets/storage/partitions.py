"""Per-drop (partitioned) assets on storage: ``<base>/<layer>/<asset>/<key>.parquet``, one file per partition,
written once. Which files make an asset's history, in which order, is decided here only (:func:`partition_paths`);
the pipeline's IO manager, the cleaning of a new drop (ids of earlier drops) and the engines reach it through the
asset's ``storage.catalog`` entry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from hvbuyer_assets.storage.datasets import is_directory, read_value
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
    return [p for p, info in zip(paths, infos, strict=True) if info.type.name in ("File", "Directory")]


def read_partitions(
    paths: Sequence[str], columns: Iterable[str] | None = None, endpoint_url: str | None = None
) -> pa.Table:
    """The partition files ``paths`` as one Arrow table, rows in the order of ``paths`` (one Arrow dataset read,
    ``columns`` only when given)."""
    if not paths:
        raise FileNotFoundError("no stored partition to read")
    fs, first = arrow_location(location(paths[0], endpoint_url), endpoint_url)
    where = [first] + [arrow_location(location(p, endpoint_url), endpoint_url)[1] for p in paths[1:]]
    wanted = list(columns) if columns is not None else None
    values = [location(p, endpoint_url) for p in paths]
    if len(where) == 1 or any(is_directory(v, endpoint_url) for v in values):  # an executors' directory: one by one
        tables = [read_value(v, wanted, endpoint_url) for v in values]
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    try:
        return pads.dataset(where, format="parquet", filesystem=fs).to_table(columns=wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # partitions whose column types differ (e.g. string / large_string, an empty quarantine): one by one
        tables = [pq.read_table(w, filesystem=fs, columns=wanted) for w in where]
        return pa.concat_tables(tables, promote_options="permissive")


def read_partitions_after(
    paths: Sequence[str],
    columns: Iterable[str],
    column: str,
    after_ns: int,
    endpoint_url: str | None = None,
    until_ns: int | None = None,
) -> pa.Table:
    """The rows of the partition files ``paths`` whose timestamp ``column`` is after ``after_ns`` (int64 ns UTC)
    and, with ``until_ns``, at or before it, ``columns`` only: one Arrow dataset scan with the filter, which skips
    every row group whose parquet statistics lie wholly outside (a partition written in time order reads only the
    row groups of the range). A file whose column has a coarser unit is filtered at that unit (a superset: the
    caller filters exactly)."""
    if not paths:
        raise FileNotFoundError("no stored partition to read")
    fs, first = arrow_location(location(paths[0], endpoint_url), endpoint_url)
    where = [first] + [arrow_location(location(p, endpoint_url), endpoint_url)[1] for p in paths[1:]]

    def scan(files: list[str]) -> pa.Table:
        dataset = pads.dataset(files, format="parquet", filesystem=fs)
        kind = dataset.schema.field(column).type

        def at(ns: int) -> pa.Scalar:
            bound = pa.scalar(int(ns), pa.int64()).cast(pa.timestamp("ns", "UTC"))
            return pc.cast(bound, kind, safe=False) if kind != bound.type else bound

        keep = pads.field(column) > at(after_ns)
        if until_ns is not None:
            keep = keep & (pads.field(column) <= at(until_ns))
        return dataset.to_table(columns=list(columns), filter=keep)

    try:
        return scan(where)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # partitions whose column types differ (string / large_string, ns / us): one by one, as read_partitions
        return pa.concat_tables([scan([w]) for w in where], promote_options="permissive")


def row_groups_holding(ranges: Sequence[tuple[Any, Any] | None], values: np.ndarray) -> list[int]:
    """Which row groups may hold one of ``values`` (sorted, unique), given each row group's ``(min, max)`` of
    the column from the parquet statistics (``None`` when the file has none: always read)."""
    keep = []
    for group, bounds in enumerate(ranges):
        if bounds is None or np.searchsorted(values, bounds[1], "right") > np.searchsorted(values, bounds[0], "left"):
            keep.append(group)
    return keep


def sorted_values(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The distinct non-null ``values`` sorted, as the lookup key of :func:`read_matching`."""
    wanted = pc.unique(values).drop_null()
    return wanted.take(pc.sort_indices(wanted)).to_numpy(zero_copy_only=False)


def read_matching(path: str, column: str, values: np.ndarray, endpoint_url: str | None = None) -> pa.ChunkedArray:
    """``column`` of one stored partition, read only from the row groups whose statistics (min, max) admit one of
    ``values`` (:func:`sorted_values`): the rows that may equal one of them (a superset; the caller matches).

    Ids that grow with time (sequences, time-prefixed ids, ULID / UUIDv7) put each earlier drop's row groups in
    ranges a new drop's ids miss, so a lookup reads almost nothing of the history; random ids read every row
    group of the one column."""
    fs, where = arrow_location(location(path, endpoint_url), endpoint_url)
    parquet = pq.ParquetFile(where, filesystem=fs)
    meta = parquet.metadata
    names = meta.schema.names  # the leaf columns, which the row groups' statistics are listed by
    if column not in names:
        raise KeyError(f"{path}: no column {column}")
    at = names.index(column)
    ranges = []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(at).statistics
        ranges.append((stats.min, stats.max) if stats is not None and stats.has_min_max else None)
    groups = row_groups_holding(ranges, values) if len(values) else []
    if not groups:
        return pa.chunked_array([], parquet.schema_arrow.field(column).type)
    return parquet.read_row_groups(groups, columns=[column]).column(column)
