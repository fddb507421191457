"""A stored parquet value staged before it replaces what is there (``storage.staged.StagedTable``): a directory of
part files (what Spark's executors write) committed with its schema reads back as the single file the embedded
engine stores, through every reader; a discarded one (a failed run) replaces nothing; either form replaces the
other. The parts are written here with pyarrow in Spark's layout (int64 ns times, ``string`` ids, ``_SUCCESS``);
``hvbuyer_tests/engines/test_spark_state.py`` has Spark write them."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from hvbuyer_assets.defs.io_manager import StoredFrame
from hvbuyer_assets.storage import partition_paths, read_partitions, read_stored, write_parquet
from hvbuyer_assets.storage.datasets import SCHEMA_FILE
from hvbuyer_assets.storage.files import arrow_to_pandas, read_table_metadata
from hvbuyer_assets.storage.staged import StagedTable
from hvbuyer_tests.storage.test_batches import features


def _parts(staged: StagedTable, frame: pd.DataFrame, per_part: int) -> None:
    """``frame`` as executors write it: ordered part files, times as int64 ns, plain strings, a _SUCCESS marker."""
    table = pa.Table.from_pandas(frame, preserve_index=True).replace_schema_metadata(None)
    table = table.set_column(
        table.schema.get_field_index("feature_as_of"), "feature_as_of", table["feature_as_of"].cast(pa.int64())
    )
    table = table.cast(
        pa.schema([f.with_type(pa.string()) if f.type == pa.large_string() else f for f in table.schema])
    )
    folder = staged.directory()
    os.makedirs(folder)
    for n, start in enumerate(range(0, table.num_rows, per_part)):
        pq.write_table(table.slice(start, per_part), f"{folder}/part-{n:05d}-c000.snappy.parquet")
    Path(folder, "_SUCCESS").touch()
    staged.written(table.num_rows, pa.Table.from_pandas(frame.head(0), preserve_index=True).schema)


def test_a_directory_of_parts_reads_as_the_frame_through_every_reader(tmp_path: Path) -> None:
    frame = features(1_003)
    target = tmp_path / "features" / "customer_features.parquet"
    target.parent.mkdir()
    write_parquet(UPath(str(target)), features(10, seed=5), None, preserve_index=True)  # the previous value
    staged = StagedTable(str(target))
    _parts(staged, frame, per_part=300)
    staged.commit({"hvbuyer.note": "parts"})
    assert target.is_dir() and (target / SCHEMA_FILE).is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["customer_features.parquet"]  # no staging left
    path = UPath(str(target))
    pd.testing.assert_frame_equal(read_stored(path), frame, check_exact=True)
    stored = StoredFrame(path)
    chunks = list(stored.batches(100))
    assert stored.rows() == 1_003 and max(len(c) for c in chunks) <= 100
    pd.testing.assert_frame_equal(pd.concat(chunks), frame, check_exact=True)
    assert read_table_metadata(path, "hvbuyer.note") == "parts"


def test_a_discarded_staging_replaces_nothing(tmp_path: Path) -> None:
    target = tmp_path / "customer_features.parquet"
    write_parquet(UPath(str(target)), features(10), None, preserve_index=True)
    before = target.read_bytes()
    staged = StagedTable(str(target))
    _parts(staged, features(50, seed=3), per_part=20)
    staged.discard()  # the run failed (or a blocking check did) before the commit
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["customer_features.parquet"]


def test_a_file_replaces_a_directory_value_and_per_drop_directories_are_partitions(tmp_path: Path) -> None:
    base = str(tmp_path)
    drops = [f"{base}/features/customer_state/{d}.parquet" for d in ("a", "b")]
    first = StagedTable(drops[0])
    _parts(first, features(30), per_part=7)
    first.commit()
    second = StagedTable(drops[1])
    second.put(pa.Table.from_pandas(features(20, seed=9), preserve_index=True))
    second.commit()
    assert partition_paths(base, "features", "customer_state", ["a", "b", "c"]) == drops
    both = arrow_to_pandas(read_partitions(drops))
    pd.testing.assert_frame_equal(both, pd.concat([features(30), features(20, seed=9)]), check_exact=True)
    again = StagedTable(drops[0])  # the next run on the embedded engine: one file in place of the directory
    again.put(pa.Table.from_pandas(features(5), preserve_index=True))
    again.commit()
    assert Path(drops[0]).is_file()
    pd.testing.assert_frame_equal(read_stored(UPath(drops[0])), features(5), check_exact=True)
