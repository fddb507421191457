"""Lineage of raw rows: source file, row number and arrival, and the order used for "latest wins".

"Latest" means the largest ``(arrived_at, source_file, source_row)``. ``source_file`` may be a categorical
(see :func:`contract.raw_to_frame`): its codes are used as they are (no per-row strings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.text import NAT, TS, arrow, ns


class Rows:
    """Lineage of the raw rows: file (a code per row into a few names), row, arrival (ns) and the order used
    for "latest wins". A categorical ``source_file`` is used as is (no per-row strings)."""

    def __init__(self, raw: pd.DataFrame, arrived_at: pd.Series | None = None) -> None:
        n = len(raw)
        self.n = n
        self.file_codes, self.file_names = _file_codes(raw, n)
        if "source_row" not in raw.columns:
            self.row = np.arange(1, n + 1, dtype=np.int64)
        elif raw["source_row"].dtype == np.int64:
            self.row = raw["source_row"].to_numpy()  # a view, no copy
        else:
            self.row = raw["source_row"].to_numpy(dtype=np.int64, na_value=0)
        self.arrived = self._arrival(raw, arrived_at)
        # rank of each file name in sort order; a missing file (code -1: the extra last slot) sorts last
        order = np.asarray(pc.array_sort_indices(self.file_names).to_numpy(), dtype=np.int64)
        self._rank = np.empty(len(order) + 1, dtype=np.int64)
        self._rank[order] = np.arange(len(order))
        self._rank[-1] = len(order)

    def _arrival(self, raw: pd.DataFrame, arrived_at: pd.Series | None) -> np.ndarray:
        if arrived_at is None:
            if "arrived_at" not in raw.columns:
                return np.full(self.n, NAT, dtype=np.int64)
            return ns(raw["arrived_at"])
        if len(arrived_at) == self.n and arrived_at.index.equals(raw.index):
            return ns(arrived_at)
        # otherwise: arrival per source_file (index = file name); files not in the index have no arrival
        names = pa.array([str(f) for f in arrived_at.index], type=pa.string())
        where = pc.fill_null(pc.index_in(self.file_names, value_set=names), len(names))
        per_file = np.append(ns(arrived_at), NAT)[np.asarray(where.to_numpy(), dtype=np.int64)]
        return np.append(per_file, NAT)[self.file_codes]  # code -1 (no file) -> the appended NaT

    def file(self, idx: np.ndarray) -> pa.Array:
        """source_file of the rows ``idx`` (null where missing)."""
        codes = self.file_codes[idx]
        return self.file_names.take(pa.array(codes, mask=codes < 0))

    def file_rank(self, idx: np.ndarray) -> np.ndarray:
        """Sort rank of source_file for the rows ``idx``."""
        return self._rank[self.file_codes[idx]]


def _file_codes(raw: pd.DataFrame, n: int) -> tuple[np.ndarray, pa.Array]:
    """``source_file`` as (code per row, -1 where missing; the distinct names as a string array)."""
    if "source_file" not in raw.columns:
        return np.zeros(n, dtype=np.int8), pa.array([""], type=pa.string())
    files = raw["source_file"]
    if isinstance(files.dtype, pd.CategoricalDtype):
        names = pa.array([str(c) for c in files.cat.categories], type=pa.string())
        return files.cat.codes.to_numpy(), names
    encoded = pc.dictionary_encode(arrow(files)).unify_dictionaries()
    if not encoded.num_chunks:
        return np.empty(0, dtype=np.int32), pa.array([], type=pa.string())
    codes = [np.asarray(pc.fill_null(c.indices, -1).to_numpy(), dtype=np.int32) for c in encoded.chunks]
    return np.concatenate(codes), encoded.chunk(0).dictionary.cast(pa.string())


def arrived_array(rows: Rows, idx: np.ndarray) -> pa.Array:
    """Arrival of the rows ``idx`` as Arrow timestamps."""
    return pa.array(rows.arrived[idx], type=pa.int64()).cast(TS)
