"""Row groups that parquet statistics prune by time: a clean chunk of a time-keyed source is written as one row
group per calendar month (UTC), each in time order, so a reader filtering on the time column
(``partitions.read_partitions_after``) skips every row group of the months before its window, whatever order the
export came in. Memory stays one chunk: the chunk is sorted and cut, never the whole drop."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def by_month(table: pa.Table, column: str) -> list[pa.Table]:
    """``table`` sorted by ``column`` (a timestamp; nulls last) and cut where the UTC month changes: one table per
    month present (the nulls, if any, their own last one). An empty table comes back as it is."""
    if table.num_rows == 0:
        return [table]
    order, cuts = month_order(table, column)
    ordered = table.take(pa.array(order))
    bounds = [0, *cuts, ordered.num_rows]
    return [ordered.slice(start, stop - start) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def month_order(table: pa.Table, column: str) -> tuple[np.ndarray, list[int]]:
    """The order of :func:`by_month` (a stable sort by ``column``, nulls last) and the row offsets, in that order,
    where the UTC month changes."""
    order = pc.sort_indices(table, sort_keys=[(column, "ascending", "at_end")])
    times = table.column(column).take(order)
    month = pc.add(pc.multiply(pc.year(times), 12), pc.month(times))
    month = np.asarray(pc.fill_null(month.cast(pa.int64()), -1).to_numpy(), dtype=np.int64)
    return np.asarray(order.to_numpy(), dtype=np.int64), (np.flatnonzero(np.diff(month)) + 1).tolist()
