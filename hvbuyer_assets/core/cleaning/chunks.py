"""Cleaning a drop a chunk at a time, with the same result as cleaning it whole.

A source's cleaning rules run on one raw chunk at a time (rows are checked one by one; repeats of a key are
resolved within the chunk). What crosses chunks is "latest wins" among the clean rows of a key: each chunk's clean
rows are staged, their lineage (arrival, file, row) in a stage beside them, and only a 64-bit hash of each key is
kept in memory; keys whose hash occurs in more than one chunk are then compared exactly (their text and lineage
read back from the stages) and the earlier copies removed, as whole-drop cleaning would have. Memory: one chunk,
8 bytes per clean row, and the quarantine (the rows set aside).

A clean row's lineage is that of the raw row behind it: the position the cleaning gives
(``CleanResult.positions``), else the raw row of its chunk with the same key that the quarantine does not set
aside as a whole (``row_dropped``, ``duplicate_dropped``): one per key when cleaning keeps its rules. A key repeated
within one chunk is left to the ``*_ids_unique`` check (it would be a bug of the chunk's cleaning).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.cleaning.dedup import key_codes, latest_wins, repeated_hashes, string_hashes
from hvbuyer_assets.core.cleaning.lineage import Rows
from hvbuyer_assets.core.cleaning.quarantine import (
    DUPLICATE_DROPPED,
    QUARANTINE_SCHEMA,
    ROW_DROPPED,
    VALUE_NULLED,
    CleanResult,
    duplicate_rows,
    quarantine_frame,
)
from hvbuyer_assets.core.text import clean_text, column

ARRIVED, FILE, ROW = "__arrived_ns", "__file", "__row"  # lineage columns of a staged chunk
_ROW_BITS = 40  # (file code, row) packed in one int64: rows below 2**40 per file


class Stage(Protocol):
    """Where the chunks' clean rows wait for the cross-chunk rule: tables written in order (``cuts``: row offsets
    where a stored table may split it into parts, e.g. parquet row groups), read back by index."""

    def write(self, table: pa.Table, cuts: Sequence[int] = ()) -> None: ...

    def read(self, index: int, columns: list[str] | None = None) -> pa.Table: ...


class ListStage:
    """A :class:`Stage` in memory (tests, small drops)."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []

    def write(self, table: pa.Table, cuts: Sequence[int] = ()) -> None:
        self.tables.append(table)

    def read(self, index: int, columns: list[str] | None = None) -> pa.Table:
        table = self.tables[index]
        return table.select(columns) if columns is not None else table


@dataclass
class ChunkedClean:
    """What cleaning a drop chunk by chunk found: ``stats`` and ``quarantine`` as whole-drop cleaning gives them,
    ``removed`` (per staged chunk, the clean rows that a later chunk's copy of their key supersedes), ``bad`` (per
    value check, the clean rows breaking it, as (chunk, row) pairs), the keys missing or repeated in the result
    (0 and none unless cleaning has a bug) and ``chunks`` staged."""

    stats: dict[str, int]
    quarantine: pd.DataFrame
    removed: list[np.ndarray]
    bad: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    missing_keys: int = 0
    repeated_keys: list[str] = field(default_factory=list)

    @property
    def chunks(self) -> int:
        return len(self.removed)

    def bad_count(self, check: str) -> int:
        """Rows of the final clean table breaking ``check`` (those removed across chunks do not count)."""
        removed = {(i, int(r)) for i, rows in enumerate(self.removed) for r in rows}
        return len(self.bad.get(check, set()) - removed)


def clean_chunks(
    chunks: Iterable[pd.DataFrame],
    clean: Callable[[pd.DataFrame], CleanResult],
    key: str,
    stage: Stage,
    bad_rows: Callable[[CleanResult], dict[str, np.ndarray]] | None = None,
    lineage: Stage | None = None,
    arrange: Callable[[pa.Table], tuple[np.ndarray, list[int]]] | None = None,
) -> ChunkedClean:
    """Clean raw ``chunks`` (in raw order; a categorical ``source_file`` with the same categories in every chunk)
    with ``clean``, staging each chunk's clean rows in ``stage`` and their lineage in ``lineage`` (in memory if
    None); then resolve ``key`` across chunks. ``arrange(table)`` gives the order a chunk's clean rows are staged
    in and the cuts between its parts (e.g. ``storage.time_groups.month_order``), so that when no row is removed
    across chunks the stage is already the clean table. ``bad_rows(result)`` gives, per value check, a mask over
    a chunk's clean rows (checked before the cross-chunk rule removes any)."""
    lineage = ListStage() if lineage is None else lineage
    hashes: list[np.ndarray] = []
    parts: list[pa.Table] = []
    stats: dict[str, int] = {}
    bad: dict[str, set[tuple[int, int]]] = {}
    files = pa.array([], type=pa.string())
    missing = 0
    for index, raw in enumerate(chunks):
        result = clean(raw)
        rows = Rows(raw)
        files = rows.file_names
        ids = pa.chunked_array([pa.array(result.clean[key], type=pa.large_string())])
        kept = result.positions  # the cleaning's own, unless it has none or a bug changed the rows' count
        if kept is None or len(kept) != len(ids):
            kept = _lineage_rows(rows, raw, result, key, ids)
        table = pa.Table.from_pandas(result.clean, preserve_index=False)
        masks = {check: np.asarray(mask, dtype=bool) for check, mask in (bad_rows(result) if bad_rows else {}).items()}
        cuts: list[int] = []
        if arrange is not None:
            order, cuts = arrange(table)
            table, ids, kept = table.take(pa.array(order)), ids.take(pa.array(order)), kept[order]
            masks = {check: mask[order] for check, mask in masks.items()}
        missing += ids.null_count
        hashes.append(string_hashes(ids))
        stage.write(table, cuts)
        lineage.write(
            pa.table({ARRIVED: rows.arrived[kept], FILE: rows.file_codes[kept].astype(np.int32), ROW: rows.row[kept]})
        )
        for check, mask in masks.items():
            bad.setdefault(check, set()).update((index, int(r)) for r in np.flatnonzero(mask))
        parts.append(pa.Table.from_pandas(result.quarantine, schema=QUARANTINE_SCHEMA, preserve_index=False))
        for name, value in result.stats.items():
            stats[name] = stats.get(name, 0) + int(value)
        del result, raw, table
    removed, duplicates, repeated = _across_chunks(stage, lineage, hashes, key, files)
    superseded = _keys(duplicates, files)
    quarantine = quarantine_frame([_without_values_of(part, superseded, files) for part in parts] + [duplicates])
    stats["duplicates"] = stats.get("duplicates", 0) + duplicates.num_rows
    stats["rows_clean"] = stats.get("rows_clean", 0) - duplicates.num_rows
    stats["values_nulled"] = int((quarantine["action"] == VALUE_NULLED).sum())
    return ChunkedClean(stats, quarantine, removed, bad, missing, repeated)


def final_chunks(stage: Stage, removed: list[np.ndarray]) -> Iterator[pa.Table]:
    """The clean table chunk by chunk: each staged chunk without its removed rows."""
    for index, rows in enumerate(removed):
        table = stage.read(index)
        if len(rows):
            keep = np.ones(table.num_rows, dtype=bool)
            keep[rows] = False
            table = table.filter(pa.array(keep))
        yield table


def _lineage_rows(rows: Rows, raw: pd.DataFrame, result: CleanResult, key: str, ids: pa.ChunkedArray) -> np.ndarray:
    """For each clean row, the position of the raw row behind it: the chunk's raw row with its key that the
    quarantine does not set aside as a whole (0 where there is none: only a bug of the cleaning makes that)."""
    quarantine = result.quarantine
    whole = quarantine["action"].isin([ROW_DROPPED, DUPLICATE_DROPPED]).to_numpy()
    names = pa.array(quarantine["source_file"].astype("string")[whole], type=pa.string())
    codes = np.asarray(pc.fill_null(pc.index_in(names, value_set=rows.file_names), -1).to_numpy(), dtype=np.int64)
    dropped = _packed(codes, quarantine["source_row"].to_numpy(dtype=np.int64)[whole])
    candidates = np.flatnonzero(~np.isin(_packed(rows.file_codes.astype(np.int64), rows.row), dropped))
    raw_keys = clean_text(column(raw, key)).take(pa.array(candidates)).combine_chunks().cast(pa.large_string())
    where = pc.index_in(ids, value_set=raw_keys)
    found = np.asarray(pc.fill_null(where, 0).to_numpy(), dtype=np.int64) if len(ids) else np.empty(0, np.int64)
    return candidates[found] if len(candidates) else np.zeros(len(ids), dtype=np.int64)


def _packed(file_codes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return (file_codes << _ROW_BITS) | rows


class _Candidates:
    """Lineage of the clean rows whose key hash occurs in more than one chunk, as ``latest_wins`` reads it."""

    def __init__(self, table: pa.Table, files: pa.Array) -> None:
        self.arrived = np.asarray(table.column(ARRIVED).to_numpy(), dtype=np.int64)
        self.codes = np.asarray(table.column(FILE).to_numpy(), dtype=np.int64)
        self.row = np.asarray(table.column(ROW).to_numpy(), dtype=np.int64)
        self.files = files
        order = np.asarray(pc.array_sort_indices(files).to_numpy(), dtype=np.int64)
        self._rank = np.empty(len(order), dtype=np.int64)
        self._rank[order] = np.arange(len(order))

    def file_rank(self, idx: np.ndarray) -> np.ndarray:
        return self._rank[self.codes[idx]]

    def file(self, idx: np.ndarray) -> pa.Array:
        return self.files.take(pa.array(self.codes[idx]))


def _across_chunks(
    stage: Stage, lineage: Stage, hashes: list[np.ndarray], key: str, files: pa.Array
) -> tuple[list[np.ndarray], pa.Table, list[str]]:
    """Latest wins among the staged clean rows of a key found in several chunks. Returns, per chunk, the rows
    removed; their quarantine rows; keys still repeated afterwards (none, unless hashes collide on distinct keys,
    which the exact compare rules out)."""
    found = repeated_hashes(hashes)
    removed = [np.empty(0, dtype=np.int64) for _ in hashes]
    if not sum(len(f) for f in found):
        return removed, duplicate_rows(*_no_duplicates()), []
    tables, owner, local = [], [], []
    for index, positions in enumerate(found):
        if len(positions):
            keys = stage.read(index, [key]).column(key).take(pa.array(positions))
            lineage_rows = lineage.read(index).take(pa.array(positions))
            tables.append(lineage_rows.append_column(key, keys))
            owner.append(np.full(len(positions), index, dtype=np.int64))
            local.append(positions.astype(np.int64))
    table = pa.concat_tables(tables)
    candidates = _Candidates(table, files)
    ids = table.column(key).cast(pa.large_string())
    chunk_of, row_in_chunk = np.concatenate(owner), np.concatenate(local)
    codes = key_codes(ids)
    # only keys found in several chunks are resolved here; a repeat within one chunk is the unique check's
    first_chunk = np.full(codes.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    last_chunk = np.full(codes.max() + 1, -1, dtype=np.int64)
    np.minimum.at(first_chunk, codes, chunk_of)
    np.maximum.at(last_chunk, codes, chunk_of)
    across = first_chunk[codes] != last_chunk[codes]
    dup, kept = latest_wins(candidates, np.arange(table.num_rows), np.where(across, codes, -1))  # type: ignore[arg-type]
    for index in np.unique(chunk_of[dup]):
        removed[index] = np.sort(row_in_chunk[dup[chunk_of[dup] == index]])
    part = duplicate_rows(
        candidates.file(dup),
        candidates.row[dup],
        candidates.file(kept),
        candidates.row[kept],
        ids.take(pa.array(dup)),
        key,
    )
    survivors = np.setdiff1d(np.arange(table.num_rows), dup)
    left = codes[survivors]
    extra = np.flatnonzero(np.bincount(left) > 1) if len(left) else np.empty(0, dtype=np.int64)
    repeated = ids.take(pa.array(survivors[np.isin(left, extra)])).to_pylist()
    return removed, part, [str(v) for v in repeated]


def _no_duplicates() -> tuple[pa.Array, np.ndarray, pa.Array, np.ndarray, pa.Array, str]:
    empty = pa.array([], type=pa.string())
    none = np.empty(0, dtype=np.int64)
    return empty, none, empty, none, empty, ""


def _keys(part: pa.Table, files: pa.Array) -> np.ndarray:
    """(file, row) of quarantine rows, packed."""
    codes = pc.fill_null(pc.index_in(part.column("source_file"), value_set=files), -1)
    return _packed(np.asarray(codes.to_numpy(), dtype=np.int64), np.asarray(part.column("source_row").to_numpy()))


def _without_values_of(part: pa.Table, superseded: np.ndarray, files: pa.Array) -> pa.Table:
    """A chunk's quarantine without the nulled values of rows superseded by a later chunk (whole-drop cleaning
    checks the values of the records it keeps only)."""
    if not len(superseded) or not part.num_rows:
        return part
    nulled = np.asarray(pc.equal(part.column("action"), VALUE_NULLED).to_numpy(zero_copy_only=False), dtype=bool)
    return part.filter(pa.array(~(nulled & np.isin(_keys(part, files), superseded))))
