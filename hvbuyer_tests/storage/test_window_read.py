"""The features step's read of the longest window (``partitions.read_partitions_after``): only the rows after the
window's start, on ns or coarser timestamp files, and whole row groups before it are skipped by their parquet
statistics (which is what makes a drop of old history cheap to leave out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets.storage.partitions import read_partitions_after


def _table(n: int, unit: str) -> pa.Table:
    rng = np.random.default_rng(0)
    seconds = np.sort(rng.integers(0, 4 * 365 * 86_400, n))  # an export in time order
    stamps = pd.Timestamp("2022-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s")
    return pa.table(
        {
            "transaction_id": [f"T{i}" for i in range(n)],
            "timestamp": pa.array(pd.Series(stamps).dt.as_unit(unit)),
        }
    )


@pytest.mark.parametrize("unit", ["ns", "us"])
def test_the_window_read_returns_the_rows_after_its_start_and_skips_earlier_row_groups(
    tmp_path: Path, unit: str
) -> None:
    table = _table(10_000, unit)
    path = tmp_path / "q1.parquet"
    pq.write_table(table, path, row_group_size=1_000)
    after = pd.Timestamp("2025-01-01", tz="UTC")
    recent = read_partitions_after([str(path)], ["transaction_id", "timestamp"], "timestamp", after.value)
    stamps = table.column("timestamp").to_pandas()
    assert recent.column("transaction_id").to_pylist() == [
        t for t, s in zip(table.column("transaction_id").to_pylist(), stamps, strict=True) if s > after
    ]
    # the scan reads only the row groups whose statistics reach past the start: here 3 of 10
    meta = pq.ParquetFile(path).metadata
    at = meta.schema.names.index("timestamp")
    reaching = [
        g for g in range(meta.num_row_groups) if pd.Timestamp(meta.row_group(g).column(at).statistics.max) > after
    ]
    assert len(reaching) == 3
