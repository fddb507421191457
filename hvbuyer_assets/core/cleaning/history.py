"""Rules across drops. Each drop is cleaned once, alone; what it needs of the drops before it is only the ids
that its own rows also carry (:func:`earlier_matches`), so the cost follows the size of the drop, not of the
history. Earlier drops are never rewritten: a transaction_id already received keeps its first record (the later
copy is quarantined naming the earlier drop), and a customer record of a later drop replaces an earlier one when
the drops are read together (:func:`latest_rows`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.cleaning.dedup import key_codes

MATCH_SCHEMA = pa.schema([("value", pa.large_string()), ("drop", pa.string())])


class EarlierDrops(Protocol):
    """The clean data of the drops before the one being cleaned, as cleaning may see it."""

    @property
    def empty(self) -> bool:
        """No drop came before (the cross-drop lookups are skipped: nothing to hash the new drop's ids for)."""
        ...

    def matching(self, kind: str, column: str, values: pa.Array) -> pa.Table:
        """Rows of the earlier drops' clean ``kind`` whose ``column`` is in ``values``: (value, drop), the first
        drop first."""
        ...


class NoEarlierDrops:
    """The first drop (or a one-shot clean of everything): nothing came before."""

    empty = True

    def matching(self, kind: str, column: str, values: pa.Array) -> pa.Table:
        return MATCH_SCHEMA.empty_table()


def earlier_matches(columns: Iterable[tuple[str, pa.Array | pa.ChunkedArray]], values: pa.Array) -> pa.Table:
    """Of each earlier drop's id column (``(drop, ids)``, in drop order), the ids that are in ``values``, as
    ``(value, drop)``. A hash set of ``values`` (the new drop's ids) is probed with each drop's ids: memory is
    that of the new drop, time one pass over the history's ids."""
    value_set = pc.unique(values)
    parts = []
    for drop, ids in columns:
        if not len(ids):
            continue
        found = ids.filter(pc.is_in(ids, value_set=value_set.cast(ids.type)))  # the small side is cast
        if len(found):
            parts.append(pa.table({"value": found, "drop": pa.repeat(pa.scalar(drop, pa.string()), len(found))}))
    if not parts:
        return MATCH_SCHEMA.empty_table()
    return pa.concat_tables(parts).cast(MATCH_SCHEMA).combine_chunks()


def first_drop_of(matches: pa.Table, values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """For each of ``values``, the first drop in ``matches`` (from :func:`earlier_matches`) holding it, else
    null."""
    where = pc.index_in(values.cast(pa.large_string()), value_set=matches.column("value").combine_chunks())
    return matches.column("drop").combine_chunks().take(where)


def latest_rows(table: pa.Table, key: str) -> pa.Table:
    """Drops read together (rows in drop order): the last record of each ``key`` wins, as within one drop (a
    missing key counts as one value); the rows kept stay in their order. The one implementation of the rule,
    for the IO manager and the feature engines' inputs alike."""
    if table.num_rows < 2:
        return table
    codes = key_codes(table.column(key))
    _, first_from_end = np.unique(codes[::-1], return_index=True)
    keep = np.sort(len(codes) - 1 - first_from_end)
    return table if len(keep) == table.num_rows else table.take(pa.array(keep))


class PrefetchedDrops:
    """The earlier drops' matches of a whole drop's ids, fetched once (``RawSource.prepare``), answering the
    lookups of each chunk of that drop by filtering them: ``found[(kind, column)]`` is an :func:`earlier_matches`
    table."""

    empty = False

    def __init__(self, found: dict[tuple[str, str], pa.Table]) -> None:
        self.found = found

    def matching(self, kind: str, column: str, values: pa.Array) -> pa.Table:
        if (kind, column) not in self.found:
            raise KeyError(f"no earlier {kind}.{column} was fetched for this drop ({sorted(self.found)})")
        table = self.found[(kind, column)]
        if not table.num_rows or not len(values):
            return MATCH_SCHEMA.empty_table()
        wanted = pc.unique(values).cast(pa.large_string())
        return table.filter(pc.is_in(table.column("value"), value_set=wanted))


class EarlierFrames:
    """Earlier drops held in memory: ``drops`` is ``[(drop, {kind: clean frame})]`` in drop order (tests, and a
    one-off clean of several drops in one process)."""

    def __init__(self, drops: list[tuple[str, dict[str, pd.DataFrame]]]) -> None:
        self.drops = drops

    @property
    def empty(self) -> bool:
        return not self.drops

    def matching(self, kind: str, column: str, values: pa.Array) -> pa.Table:
        columns = (
            (drop, pa.chunked_array([pa.array(frames[kind][column], type=pa.large_string())]))
            for drop, frames in self.drops
            if kind in frames
        )
        return earlier_matches(columns, values)
