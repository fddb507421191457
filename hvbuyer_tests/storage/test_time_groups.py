"""``storage.time_groups.by_month``: a chunk cut into one table per UTC month, each in time order, nulls last."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from hvbuyer_assets.storage.time_groups import by_month


def test_a_chunk_is_cut_into_one_sorted_table_per_month_with_the_nulls_last() -> None:
    stamps = [
        "2026-03-02T00:00:00",
        "2026-01-31T23:59:59",
        None,
        "2026-03-01T00:00:00",
        "2026-01-01T00:00:00",
        "2026-02-15T00:00:00",
    ]
    times = pa.array(pd.Series(pd.to_datetime(stamps, utc=True)).dt.as_unit("ns"))
    table = pa.table({"id": ["a", "b", "c", "d", "e", "f"], "timestamp": times})
    groups = by_month(table, "timestamp")
    assert [g.column("id").to_pylist() for g in groups] == [["e", "b"], ["f"], ["d", "a"], ["c"]]
    assert sum(g.num_rows for g in groups) == table.num_rows


def test_an_empty_chunk_comes_back_as_it_is() -> None:
    empty = pa.table({"timestamp": pa.array([], pa.timestamp("ns", "UTC"))})
    assert by_month(empty, "timestamp") == [empty]
