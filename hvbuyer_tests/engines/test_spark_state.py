"""Per-drop customer state through the engine interface (``Engine.drop_state`` / ``combine_states`` /
``stage_latest_customers`` / ``state_features``) on both engines, Spark ``local[2]`` and embedded: each drop's state
from its stored clean file, stored, combined by drop (a new drop at a time, and all at once), and the features from
the total plus the longest window's rows equal each engine's own from-scratch features, and the embedded engine's,
bit for bit, on drops with late rows, re-sent transaction ids, re-sent customers and a backfill
(``hvbuyer_tests/state_drops.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from upath import UPath

from hvbuyer_assets.engines import EmbeddedEngine, Engine, SparkEngine
from hvbuyer_assets.engines import spark as spark_engine
from hvbuyer_assets.engines.interface import CUSTOMERS, FeaturesSummary, input_asset
from hvbuyer_assets.storage import read_partitions, read_stored
from hvbuyer_assets.storage.datasets import SCHEMA_FILE, read_value
from hvbuyer_assets.storage.files import parquet_batches, parquet_rows, read_table_metadata
from hvbuyer_assets.storage.staged import StagedTable
from hvbuyer_tests.core.test_feature_defs import digest
from hvbuyer_tests.state_drops import clean_drops

pytestmark = pytest.mark.slow

SPARK = SparkEngine(spark_engine.SparkOptions())
EMBEDDED = EmbeddedEngine()
LARGE = 300.0


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    session = spark_engine.session(SPARK.options)
    yield session
    spark_engine.stop()


def _stored(folder: Path) -> tuple[list[str], list[str]]:
    """The drops' clean tables as the clean assets store them: one parquet file per drop, in drop order."""
    tx_files, customer_files = [], []
    for drop in clean_drops():
        for frame, files, asset in (
            (drop.transactions, tx_files, "clean_transactions"),
            (drop.customers, customer_files, "clean_customers"),
        ):
            path = folder / asset / f"{drop.name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
            files.append(str(path))
    return tx_files, customer_files


def _latest_customers(engine: Engine, folder: Path, customer_files: list[str]) -> str:
    """``latest_customers`` kept a drop at a time (the previous table + the new drop's clean customers), equal to
    it rebuilt from every drop at once and to the embedded engine's every-drop read (latest wins); its path."""
    latest = str(folder / f"latest-{engine.name}.parquet")
    for i, f in enumerate(customer_files):
        staged = StagedTable(latest)
        engine.stage_latest_customers([latest, f] if i else [f], staged)
        staged.commit()
    rebuilt = StagedTable(str(folder / f"latest-{engine.name}-rebuilt.parquet"))
    engine.stage_latest_customers(customer_files, rebuilt)
    rebuilt.commit()
    scratch = EMBEDDED.read(input_asset(CUSTOMERS), customer_files).native.replace_schema_metadata(None)
    for table in (read_value(UPath(latest)), read_value(rebuilt.target)):
        assert table.replace_schema_metadata(None).sort_by("customer_id").equals(scratch.sort_by("customer_id"))
    return latest


def _from_state(engine: Engine, folder: Path, tx_files: list[str], customer_files: list[str]) -> pd.DataFrame:
    """Each drop's state stored, the running total built a drop at a time (and rebuilt at once: the same bits),
    the latest customers table a drop at a time, then the features from them."""
    states = []
    for i, f in enumerate(tx_files):
        state, _, _ = engine.drop_state([f], LARGE)
        states.append(str(folder / f"state-{i}.parquet"))
        pq.write_table(state, states[-1])
    total = folder / "total.parquet"
    pq.write_table(engine.combine_states(states[:1]), total)
    for f in states[1:]:
        pq.write_table(engine.combine_states([str(total), f]), total)  # previous total + the new drop's state
    rebuilt = engine.combine_states(states)
    assert rebuilt.sort_by("customer_id").equals(pq.read_table(total).sort_by("customer_id"))
    latest = _latest_customers(engine, folder, customer_files)
    frame, as_of = engine.state_features([str(total)], tx_files, [latest], LARGE)
    assert frame["feature_as_of"].iloc[0] == as_of
    return frame


@pytest.mark.parametrize("engine", [EMBEDDED, SPARK], ids=["embedded", "spark"])
def test_features_from_the_drops_states_equal_the_engines_features_from_scratch(
    spark_session: Any, tmp_path: Path, engine: Engine
) -> None:
    tx_files, customer_files = _stored(tmp_path)
    got = _from_state(engine, tmp_path, tx_files, customer_files)
    frames = engine.load(tx_files, customer_files)
    scratch = engine.features(frames, engine.data_as_of(frames), LARGE)
    pd.testing.assert_frame_equal(got, scratch, check_exact=True)
    assert digest(got) == digest(scratch)
    # and the other engine's: the same bits (sums are integer sums, scalings multiplications, feature_defs)
    embedded = EMBEDDED.load(tx_files, customer_files)
    reference = EMBEDDED.features(embedded, EMBEDDED.data_as_of(embedded), LARGE)
    pd.testing.assert_frame_equal(got, reference, check_exact=True)
    assert digest(got) == digest(reference)


def test_a_drop_state_keeps_the_drops_time_range(spark_session: Any, tmp_path: Path) -> None:
    tx_files, _ = _stored(tmp_path)
    stamps = pq.read_table(tx_files[2]).column("timestamp").cast(pa.timestamp("ns", "UTC")).cast(pa.int64())
    expected = (min(stamps.to_pylist()), max(stamps.to_pylist()))
    for engine in (EMBEDDED, SPARK):
        _, low, high = engine.drop_state([tx_files[2]], LARGE)
        assert (low, high) == expected


def _staged_graph(engine: Engine, root: Path, tx_files: list[str], customer_files: list[str]) -> FeaturesSummary:
    """What the assets store (``Engine.stage_*`` committed): each drop's state, the running total, the features."""
    states = []
    for i, f in enumerate(tx_files):
        staged = StagedTable(str(root / "customer_state" / f"{i}.parquet"))
        engine.stage_drop_state([f], LARGE, staged)
        staged.commit({"drop": str(i)})
        states.append(str(staged.target))
    total = StagedTable(str(root / "customer_totals.parquet"))
    engine.stage_combined_states(states, total)
    total.commit()
    latest = StagedTable(str(root / "latest_customers.parquet"))
    engine.stage_latest_customers(customer_files[:2], latest)
    latest.commit({"drop": "latest"})
    latest = StagedTable(str(root / "latest_customers.parquet"))  # the previous table + the last drop
    engine.stage_latest_customers([str(latest.target), customer_files[2]], latest)
    latest.commit({"drop": "latest"})
    staged = StagedTable(str(root / "customer_features.parquet"))
    summary = engine.stage_features([str(total.target)], tx_files, [str(latest.target)], LARGE, staged)
    staged.commit()
    return summary


def test_spark_executors_write_state_and_features_as_parts_the_readers_read_as_the_embedded_files(
    spark_session: Any, tmp_path: Path
) -> None:
    """On Spark the stored state, total and features are directories of part files written by the executors (the
    features over several parts, in customer id order); every reader (the IO manager's, the batched one scoring
    uses, the engines' state reader) gives the embedded engine's single files' tables, schema and metadata
    included, bit for bit."""
    tx_files, customer_files = _stored(tmp_path)
    spark_session.conf.set("spark.sql.adaptive.enabled", "false")  # several parts (no coalescing of small ones)
    try:
        on_spark = _staged_graph(SPARK, tmp_path / "spark", tx_files, customer_files)
    finally:
        spark_session.conf.unset("spark.sql.adaptive.enabled")
    on_embedded = _staged_graph(EMBEDDED, tmp_path / "embedded", tx_files, customer_files)
    assert on_spark == on_embedded and on_spark.rows > 0

    values = ["customer_state/0.parquet", "customer_state/2.parquet", "customer_totals.parquet"]
    values.append("latest_customers.parquet")
    for name in [*values, "customer_features.parquet"]:
        spark, embedded = UPath(str(tmp_path / "spark" / name)), UPath(str(tmp_path / "embedded" / name))
        assert embedded.is_file() and spark.is_dir(), name
        parts = sorted(p.name for p in Path(spark.path).glob("part-*.parquet"))
        assert parts and (Path(spark.path) / SCHEMA_FILE).is_file(), name
        got, want = read_value(spark), read_value(embedded)
        assert got.schema.equals(want.schema, check_metadata=True), name
        if name == "customer_features.parquet":
            assert len(parts) > 1  # the customer id order holds across the parts
            assert got.equals(want)
            frame = read_stored(spark)
            pd.testing.assert_frame_equal(frame, read_stored(embedded), check_exact=True)
            assert digest(frame) == digest(read_stored(embedded))
            batches = pd.concat(list(parquet_batches(spark, 7)))
            pd.testing.assert_frame_equal(batches, frame, check_exact=True)
            assert parquet_rows(spark) == len(frame)
        else:
            assert got.sort_by("customer_id").equals(want.sort_by("customer_id")), name
            assert read_table_metadata(spark, "drop") == read_table_metadata(embedded, "drop")
    both = read_partitions([str(tmp_path / "spark" / v) for v in values[:2]])
    assert both.sort_by("customer_id").equals(
        read_partitions([str(tmp_path / "embedded" / v) for v in values[:2]]).sort_by("customer_id")
    )
