"""The Spark engine (``HVBUYER_ENGINE=spark``, ``local[2]``) against the embedded engine: the reader's conventions
(int64 ns exactly, at window boundaries; nulls), two drops read together (the latest drop's customer record, every
transaction, in the instance's drop order), and the graph (features -> training set -> model -> evaluation) run by
Dagster on two generated drop partitions, with the same features, labels and hold-out metrics on both engines.

One SparkSession for the module (``engines.spark`` caches it; the graph runs below use the same options), stopped
at the end so the JVM's memory goes back before the next module on this worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import narwhals as nw
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets.core import feature_defs, features, labels, training
from hvbuyer_assets.core.engine import Frames
from hvbuyer_assets.core.sampling import TrainingSample, quotas
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
from hvbuyer_assets.defs.partitions import DROPS
from hvbuyer_assets.engines import EmbeddedEngine, Engine, SparkEngine
from hvbuyer_assets.engines import spark as spark_engine
from hvbuyer_assets.engines.interface import CUSTOMERS, INPUT_COLUMNS, TRANSACTIONS, StoredTable, input_asset
from hvbuyer_assets.settings import load_settings
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_tests.core.test_sampling import T as SAMPLE_T
from hvbuyer_tests.core.test_sampling import by_stratum, clean_tables, rows_table, strata
from hvbuyer_tests.engines import graph
from hvbuyer_tests.pipeline import Workspace, read_frame

pytestmark = pytest.mark.slow

SPARK = SparkEngine(spark_engine.SparkOptions())  # the settings' defaults: local[2], as the graph runs use
EMBEDDED = EmbeddedEngine()

T0 = pd.Timestamp("2026-03-31T00:00:00Z")
NS = pd.Timedelta(1, "ns")
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    session = spark_engine.session(SPARK.options)
    yield session
    spark_engine.stop()


def _times(values: list[pd.Timestamp | None], unit: str = "ns") -> pa.Array:
    return pa.array(pd.Series(values, dtype="datetime64[ns, UTC]").dt.as_unit(unit))


def _clean_tables(folder: Path, unit: str = "ns") -> tuple[list[str], list[str]]:
    """Clean tables (the stored layout) around the window boundaries of T0: c1 buys exactly at T0 and 1 ns
    later, and exactly at T0 + 90 days; c2 (nothing known about it) buys exactly 30 days before T0 and 1 ns
    after that; c3 has no transaction."""
    customers = pa.table(
        {
            "customer_id": pa.array(["c1", "c2", "c3"], pa.large_string()),
            "age": [41.0, None, 30.0],
            "region": pa.array(["north", None, "East"], pa.large_string()),
            "signup_date": _times([pd.Timestamp("2025-01-01T12:00:00Z"), None, T0 + NS], unit),
            "loyalty_points": [10.0, None, 0.0],
        }
    )
    stamps = [T0, T0 + NS, T0 + 90 * DAY, T0 - 30 * DAY, T0 - 30 * DAY + NS]
    transactions = pa.table(
        {
            "transaction_id": pa.array([f"t{i}" for i in range(5)], pa.large_string()),
            "customer_id": pa.array(["c1", "c1", "c1", "c2", "c2"], pa.large_string()),
            "amount": [400.0, 500.0, 300.0, 20.0, 30.0],
            "timestamp": _times(stamps, unit),
            "payment_method": pa.array(["card"] * 5, pa.large_string()),
            "status": pa.array(["completed"] * 5, pa.large_string()),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(transactions, folder / "clean_transactions.parquet")
    pq.write_table(customers, folder / "clean_customers.parquet")
    return [str(folder / "clean_transactions.parquet")], [str(folder / "clean_customers.parquet")]


def _frames(engine: Engine, files: tuple[list[str], list[str]]) -> Frames:
    return engine.load(*files)


@pytest.mark.parametrize("unit", ["ns", "us"])
def test_spark_reads_stored_times_as_exact_int64_ns_utc(spark_session: Any, tmp_path: Path, unit: str) -> None:
    files = _clean_tables(tmp_path, unit)
    tx = spark_engine.read_input(spark_session, input_asset(TRANSACTIONS), files[0]).toArrow()
    customers = spark_engine.read_input(spark_session, input_asset(CUSTOMERS), files[1]).toArrow()
    assert tx.column_names == ["customer_id", "ts", "amount", "status"]
    assert customers.column_names == ["customer_id", "signup_ns", "age", "loyalty_points", "region"]
    assert tx.schema.field("ts").type == pa.int64() and customers.schema.field("signup_ns").type == pa.int64()
    stored = pq.read_table(files[0][0]).column("timestamp").cast(pa.timestamp("ns", "UTC")).cast(pa.int64())
    assert tx.column("ts").to_pylist() == stored.to_pylist()  # bit for bit, T0 + 1 ns included
    one = 1 if unit == "ns" else 0  # a microsecond file cannot hold T0 + 1 ns
    assert tx.column("ts").to_pylist()[:2] == [T0.value, T0.value + one]
    assert customers.column("signup_ns").to_pylist() == [
        pd.Timestamp("2025-01-01T12:00:00Z").value,
        None,
        T0.value + one,
    ]
    assert customers.column("age").to_pylist() == [41.0, None, 30.0]  # nulls stay null, not 0 or NaN strings
    assert customers.column("region").to_pylist() == ["north", None, "East"]


def test_spark_session_is_utc_with_ns_longs_and_small_local_shuffles(spark_session: Any) -> None:
    conf = spark_session.conf
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.sql.legacy.parquet.nanosAsLong") == "true"
    assert conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark_session.sparkContext.master == "local[2]"
    assert spark_engine.session(SPARK.options) is spark_session  # created once, reused by every step


def test_window_boundaries_and_unknowns_are_the_same_on_spark_and_embedded(spark_session: Any, tmp_path: Path) -> None:
    files = _clean_tables(tmp_path)
    spark_frames, embedded_frames = _frames(SPARK, files), _frames(EMBEDDED, files)
    assert SPARK.data_as_of(spark_frames) == EMBEDDED.data_as_of(embedded_frames) == T0 + 90 * DAY

    on_spark = features.features_frame(spark_frames, T0, large_amount=300.0)
    pd.testing.assert_frame_equal(on_spark, features.features_frame(embedded_frames, T0, large_amount=300.0))
    c1, c2, c3 = (on_spark.loc[c] for c in ("c1", "c2", "c3"))
    assert (c1["n_completed"], c1["last_amount"], c1["total_spend"]) == (1.0, 400.0, 400.0)  # T0 + 1 ns is later
    assert c1["last_event_at"] == T0 and c1["days_since_last_purchase"] == 0.0
    assert (c2["n_completed"], c2["n_completed_30d"], c2["spend_90d"]) == (2.0, 1.0, 50.0)  # exactly 30 d: out
    assert np.isnan(c2["age"]) and np.isnan(c2["tenure_days"]) and pd.isna(c2["signup_date"])
    assert c2["region"] == "Unknown" and c1["region"] == "North"
    assert c3["n_transactions"] == 0.0 and pd.isna(c3["last_event_at"]) and c3["tenure_days"] == 0.0

    for cutoff, expected in [(T0 - NS, [1, 0, 0]), (T0, [1, 0, 0]), (T0 + NS, [1, 0, 0]), (T0 + 90 * DAY, [0, 0, 0])]:
        got = labels.labels_frame(spark_frames, cutoff, 90, 300.0)
        pd.testing.assert_series_equal(got, labels.labels_frame(embedded_frames, cutoff, 90, 300.0))
        assert got.tolist() == expected, cutoff
    # (T0 + 1 ns, T0 + 1 ns + 90 d] holds only the 300 at T0 + 90 d; a 301 threshold leaves nothing in it
    assert labels.labels_frame(spark_frames, T0 + NS, 90, 301.0).tolist() == [0, 0, 0]
    assert labels.labels_frame(spark_frames, T0, 90, 450.0).tolist() == [1, 0, 0]  # the 500 at T0 + 1 ns
    # model_performance's labels of archived ids (one no customer: 0), in the archive's order, on either engine
    archived = ["c3", "nobody", "c1"]
    on_spark_ids = labels.labels_of(spark_frames, archived, T0, 90, 300.0)
    pd.testing.assert_series_equal(on_spark_ids, labels.labels_of(embedded_frames, archived, T0, 90, 300.0))
    assert on_spark_ids.index.tolist() == archived and on_spark_ids.tolist() == [0, 0, 1]
    # model_performance's T from the transactions alone, and its label rows: (start, end] of the label windows
    for engine in (SPARK, EMBEDDED):
        transactions = engine.read(input_asset(TRANSACTIONS), files[0])
        assert engine.latest_time(transactions) == T0 + 90 * DAY
        window = engine.rows_between(transactions, (T0 - 30 * DAY).value, T0.value)
        in_window = window.native.toArrow() if engine is SPARK else window.native
        assert in_window.num_rows == 2  # T0 - 30 d + 1 ns and T0; not T0 - 30 d itself (excluded), nor after T0
        customers = engine.read(input_asset(CUSTOMERS), files[1])
        span = engine.rows_between(transactions, (T0 - NS).value, (T0 + 90 * DAY).value)
        pd.testing.assert_series_equal(
            labels.labels_of(engine.frames(span, customers), archived, T0, 90, 300.0), on_spark_ids
        )


def test_a_stored_table_without_a_declared_column_is_named(spark_session: Any, tmp_path: Path) -> None:
    tx_files, _ = _clean_tables(tmp_path)
    pq.write_table(pq.read_table(tx_files[0]).drop_columns(["status"]), tx_files[0])
    with pytest.raises(ValueError, match=r"clean_transactions \(.*clean_transactions.parquet\.\.\.\): missing column"):
        spark_engine.read_input(spark_session, input_asset(TRANSACTIONS), tx_files)


def test_executors_run_the_declaration_without_python(spark_session: Any, tmp_path: Path) -> None:
    """narwhals turns the declaration into Spark Column expressions on the driver: the physical plans hold no
    Python UDF or pandas/Arrow Python node, so executors need Spark and Java, not hvbuyer or Python packages."""
    frames = _frames(SPARK, _clean_tables(tmp_path))
    tx, customers = frames.transactions, frames.customers
    cutoffs = [("train", (T0 - 90 * DAY).value), ("holdout", T0.value)]
    for lazy in (
        feature_defs.history(tx, customers),
        feature_defs.features(tx, customers, T0.value, 300.0),
        feature_defs.labels(tx, customers, T0.value, 90, 300.0),
        feature_defs.training_rows(tx, customers, cutoffs, 90, 300.0),
    ):
        plan = lazy.to_native()._jdf.queryExecution().executedPlan().toString()
        assert "FileScan parquet" in plan
        assert not [word for word in ("Python", "Pandas", "EvalPython") if word in plan], plan


# Two drops in arrival order; the later key sorts first, so only the drop order can make its record win.
FIRST, SECOND = "default", "2026-05"
C1_FIRST = {"age": 41.0, "region": "north", "signup_date": pd.Timestamp("2025-01-01T12:00:00Z"), "loyalty_points": 10.0}
COLUMNS_BY_ASSET = INPUT_COLUMNS
C1_SECOND = {"age": 52.0, "region": "West", "signup_date": pd.Timestamp("2023-06-01T00:00:00Z"), "loyalty_points": 99.0}


def _customers(rows: dict[str, dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(list(rows), pa.large_string()),
            "age": [r["age"] for r in rows.values()],
            "region": pa.array([r["region"] for r in rows.values()], pa.large_string()),
            "signup_date": _times([r["signup_date"] for r in rows.values()]),
            "loyalty_points": [r["loyalty_points"] for r in rows.values()],
        }
    )


def _transactions(rows: list[tuple[str, str, float, pd.Timestamp]]) -> pa.Table:
    return pa.table(
        {
            "transaction_id": pa.array([r[0] for r in rows], pa.large_string()),
            "customer_id": pa.array([r[1] for r in rows], pa.large_string()),
            "amount": [r[2] for r in rows],
            "timestamp": _times([r[3] for r in rows]),
            "payment_method": pa.array(["card"] * len(rows), pa.large_string()),
            "status": pa.array(["completed"] * len(rows), pa.large_string()),
        }
    )


def _two_drops(root: Path) -> dict[str, list[str]]:
    """Clean tables stored per drop (``<root>/processed/<asset>/<drop>.parquet``): the second drop re-sends c1
    with other demographics, adds c3, and adds transactions of c1 and c3. Each table's files, in drop order."""
    c2 = {"age": 30.0, "region": "East", "signup_date": pd.Timestamp("2024-01-01T00:00:00Z"), "loyalty_points": 5.0}
    c3 = {"age": 25.0, "region": "South", "signup_date": T0 - 10 * DAY, "loyalty_points": 0.0}
    drops = {
        FIRST: (
            _customers({"c1": C1_FIRST, "c2": c2}),
            _transactions([("t1", "c1", 120.0, T0 - 60 * DAY), ("t2", "c2", 80.0, T0 - 40 * DAY)]),
        ),
        SECOND: (
            _customers({"c1": C1_SECOND, "c3": c3}),
            _transactions([("t3", "c1", 400.0, T0 - 5 * DAY), ("t4", "c3", 30.0, T0), ("t5", "c1", 10.0, T0)]),
        ),
    }
    for drop, (customers, transactions) in drops.items():
        for asset, table in ((CUSTOMERS, customers), (TRANSACTIONS, transactions)):
            (root / "processed" / asset).mkdir(parents=True, exist_ok=True)
            pq.write_table(table, root / "processed" / asset / f"{drop}.parquet")
    return {a: entry(a).drop_files(str(root), [FIRST, SECOND]) for a in COLUMNS_BY_ASSET}


def _as_convention(table: StoredTable) -> pd.DataFrame:
    """A stored table as read by either engine, in the declaration's convention (int64 ns times), as pandas."""
    columns = COLUMNS_BY_ASSET[table.asset]
    if table.engine is SPARK:
        arrow = table.native.toArrow()
    else:
        arrow = table.native.select([stored for _, stored, _ in columns])
        arrow = pa.table(
            [arrow.column(s).cast(pa.int64()) if kind == "ns" else arrow.column(s) for _, s, kind in columns],
            names=[name for name, _, _ in columns],
        )
    return arrow.to_pandas().sort_values(["customer_id", *(["ts"] if "ts" in arrow.column_names else [])])


@pytest.mark.parametrize("engine", [EMBEDDED, SPARK], ids=["embedded", "spark"])
def test_two_drops_read_as_the_latest_customer_record_and_every_transaction(
    spark_session: Any, tmp_path: Path, engine: Engine
) -> None:
    files = _two_drops(tmp_path)
    customers = _as_convention(engine.read(input_asset(CUSTOMERS), files[CUSTOMERS]))
    assert customers["customer_id"].tolist() == ["c1", "c2", "c3"]  # c1 once: one record per customer
    c1 = customers.iloc[0]
    assert (c1["age"], c1["region"], c1["loyalty_points"]) == (52.0, "West", 99.0)  # the second drop's record
    assert c1["signup_ns"] == C1_SECOND["signup_date"].value

    transactions = _as_convention(engine.read(input_asset(TRANSACTIONS), files[TRANSACTIONS]))
    union = pa.concat_tables(pq.read_table(f) for f in files[TRANSACTIONS]).to_pandas()
    assert len(transactions) == len(union) == 5  # the union: nothing of either drop dropped or doubled
    union = union.assign(ts=union["timestamp"].astype("int64"))[["customer_id", "ts", "amount"]]
    got = transactions[["customer_id", "ts", "amount"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, union.sort_values(["customer_id", "ts"]).reset_index(drop=True))

    # the order of the files decides, not their names: read the other way round, the first drop's record wins
    backwards = engine.read(input_asset(CUSTOMERS), files[CUSTOMERS][::-1])
    c1 = _as_convention(backwards).iloc[0]
    assert (c1["age"], c1["region"], c1["loyalty_points"]) == (41.0, "north", 10.0)


def test_the_engine_inputs_of_a_run_read_every_drop_partition_in_drop_order(spark_session: Any, tmp_path: Path) -> None:
    """``customer_state`` (each drop), ``customer_totals`` and ``customer_features`` run by Dagster with the drops
    as partitions of the instance (arrival order: the first drop's key sorts last): both engines compute c1 from
    its second-drop record and every transaction of both drops, and agree on every feature."""
    _two_drops(tmp_path)
    computed = {}
    for engine in ("embedded", "spark"):
        settings = load_settings(
            {
                "HVBUYER_ENGINE": engine,
                "HVBUYER_DATA_DIR": str(tmp_path),
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
            }
        )
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions(DROPS.name, [FIRST, SECOND])
            for drop in (FIRST, SECOND):  # each drop's customer state, by this engine
                state = dg.materialize(
                    ALL_ASSETS,
                    resources=build_resources(settings),
                    selection=["customer_state"],
                    instance=instance,
                    partition_key=drop,
                )
                assert state.asset_materializations_for_node("customer_state")[0].metadata["engine"].value == engine
            result = dg.materialize(
                ALL_ASSETS,
                resources=build_resources(settings),
                selection=["customer_totals", "latest_customers", "customer_features"],
                instance=instance,
                raise_on_error=False,
            )
        failures = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
        assert result.success, f"{engine}: {failures}"
        metadata = result.asset_materializations_for_node("customer_features")[0].metadata
        assert metadata["engine"].value == engine and metadata["as_of"].value == T0.isoformat()
        computed[engine] = read_frame(tmp_path / "features" / "customer_features.parquet")

    frame = computed["spark"]
    assert frame.index.tolist() == ["c1", "c2", "c3"]
    c1 = frame.loc["c1"]
    assert (c1["age"], c1["loyalty_points"], c1["region"]) == (52.0, 99.0, "West")
    assert c1["tenure_days"] == (T0 - C1_SECOND["signup_date"]) / DAY
    assert (c1["n_transactions"], c1["total_spend"], c1["last_amount"]) == (3.0, 530.0, 10.0)  # t1, t3, t5
    assert frame.loc["c3", "n_transactions"] == 1.0 and frame.loc["c2", "n_transactions"] == 1.0
    graph.assert_same(frame, computed["embedded"])


@pytest.fixture(scope="module")
def graph_runs(
    spark_session: Any, embedded_graph: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Workspace]:
    """``graph.GRAPH`` on ``local[2]`` and on the embedded engine, from the same two cleaned drops."""
    base = Workspace(embedded_graph["base"])
    spark = graph.run_graph(base, tmp_path_factory.mktemp("engines") / "spark", {"HVBUYER_ENGINE": "spark"})
    return {"spark": spark, "embedded": Workspace(embedded_graph["embedded"])}


def test_features_are_the_same_on_spark_and_embedded(graph_runs: dict[str, Workspace]) -> None:
    graph.assert_same_features(graph_runs["spark"], graph_runs["embedded"])


def test_training_rows_and_labels_are_the_same_on_spark_and_embedded(graph_runs: dict[str, Workspace]) -> None:
    graph.assert_same_training_rows(graph_runs["spark"], graph_runs["embedded"])


def test_holdout_metrics_are_the_same_on_spark_and_embedded(graph_runs: dict[str, Workspace]) -> None:
    graph.assert_same_holdout_metrics(graph_runs["spark"], graph_runs["embedded"])


def test_spark_draws_exactly_the_quotas_seeded_on_the_executors(spark_session: Any) -> None:
    """The training set's cap on Spark (``spark.sample_rows``): exactly each (split, label) stratum's quota, rows of
    the set unchanged, the same rows for a seed on every run, other rows for another seed."""
    table = rows_table(train=(2_600, 400), holdout=(1_800, 200))
    rows = nw.from_native(spark_session.createDataFrame(table.to_pandas()))

    def drawn(seed: int) -> pd.DataFrame:
        sample = spark_engine.sample_rows(rows, TrainingSample(500, seed))
        assert sample.num_rows == 500 and strata(sample) == quotas(strata(table), 500)
        return sample.to_pandas().set_index(["customer_id", "cutoff_ns"]).sort_index()

    first = drawn(7)
    pd.testing.assert_frame_equal(first, table.to_pandas().set_index(["customer_id", "cutoff_ns"]).loc[first.index])
    assert drawn(7).index.equals(first.index) and not drawn(8).index.equals(first.index)
    assert spark_engine.sample_rows(rows, TrainingSample(table.num_rows)).num_rows == table.num_rows


def test_the_training_set_is_capped_on_spark_as_on_the_embedded_engine(spark_session: Any, tmp_path: Path) -> None:
    """``training_frame`` with a cap, on Spark frames of stored clean tables: the uncapped set equals the embedded
    engine's; the capped one has exactly the same quotas per (split, label), its rows taken unchanged from it."""
    transactions, customers = clean_tables()
    files = []
    for name, frame in (("clean_transactions", transactions), ("clean_customers", customers)):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / f"{name}.parquet")
        files.append([str(tmp_path / f"{name}.parquet")])
    spark_frames, embedded_frames = _frames(SPARK, (files[0], files[1])), _frames(EMBEDDED, (files[0], files[1]))
    whole = training.training_frame(spark_frames, SAMPLE_T)
    graph.assert_same(whole, training.training_frame(embedded_frames, SAMPLE_T))
    cap = len(whole) // 3
    capped = training.training_frame(spark_frames, SAMPLE_T, sample=TrainingSample(cap, seed=11))
    on_embedded = training.training_frame(embedded_frames, SAMPLE_T, sample=TrainingSample(cap, seed=11))
    assert len(capped) == len(on_embedded) == cap
    assert by_stratum(capped) == by_stratum(on_embedded) == quotas(by_stratum(whole), cap)
    keys = ["customer_id", "cutoff"]
    chosen = capped.set_index(keys)
    graph.assert_same(chosen, whole.set_index(keys).loc[chosen.index])
