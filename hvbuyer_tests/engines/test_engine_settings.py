"""The engine settings (validated, with clear errors), the engine object the definitions are built with (chosen
once from the settings), the Spark session's properties, the embedded reader's column projection on local and s3://
data, and pyspark staying unimported on the embedded default."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets.definitions import build_resources
from hvbuyer_assets.defs.features.inputs import ENGINE_INPUTS
from hvbuyer_assets.engines import EmbeddedEngine, SparkEngine, spark
from hvbuyer_assets.engines.interface import CUSTOMERS, TRANSACTIONS, StoredTable, input_asset
from hvbuyer_assets.settings import load_settings
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_tests.s3 import S3Server, s3_server  # noqa: F401 - the fixture

TX = pa.table(
    {
        "transaction_id": ["t1", "t2"],
        "customer_id": pa.array(["c1", "c2"], pa.large_string()),
        "amount": [10.0, 350.5],
        "timestamp": pa.array(pd.to_datetime(["2026-01-01", "2026-02-01"], utc=True)),
        "payment_method": ["card", "cash"],
        "status": ["completed", "refunded"],
    }
)


def test_engine_defaults_to_embedded_with_spark_on_two_local_threads() -> None:
    settings = load_settings({})
    assert (settings.engine, settings.spark_master, settings.spark_driver_memory) == ("embedded", "local[2]", "2g")
    assert settings.spark_conf == {} and settings.spark_executor_memory is None


def test_engine_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "HVBUYER_ENGINE": "spark",
            "HVBUYER_SPARK_MASTER": "k8s://https://10.0.0.1:6443",
            "HVBUYER_SPARK_DRIVER_MEMORY": "8g",
            "HVBUYER_SPARK_EXECUTOR_MEMORY": "16G",
            "HVBUYER_SPARK_SHUFFLE_PARTITIONS": "400",
            "HVBUYER_SPARK_CONF": '{"spark.jars.packages": "org.apache.hadoop:hadoop-aws:3.5.0"}',
        }
    )
    options = spark.SparkOptions.from_settings(settings)
    assert options == spark.SparkOptions(
        "k8s://https://10.0.0.1:6443",
        "8g",
        "16G",
        400,
        (("spark.jars.packages", "org.apache.hadoop:hadoop-aws:3.5.0"),),
    )
    props = options.properties()
    assert props["spark.sql.shuffle.partitions"] == "400" and props["spark.executor.memory"] == "16G"
    assert "spark.ui.enabled" not in props and "spark.driver.host" not in props  # a cluster keeps its own


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("HVBUYER_ENGINE", "pandas", "Input should be 'embedded' or 'spark'"),
        ("HVBUYER_SPARK_MASTER", "mesos://m:5050", "expected local, local[N], local[*], spark://HOST:PORT"),
        ("HVBUYER_SPARK_MASTER", "local[two]", "expected local, local[N]"),
        ("HVBUYER_SPARK_DRIVER_MEMORY", "lots", "expected a JVM memory size such as 512m, 2g or 16g"),
        ("HVBUYER_SPARK_EXECUTOR_MEMORY", "2 GB", "expected a JVM memory size"),
        ("HVBUYER_SPARK_SHUFFLE_PARTITIONS", "0", "Input should be greater than 0"),
        ("HVBUYER_SPARK_CONF", "spark.a=1", "expected a JSON object of Spark properties"),
        ("HVBUYER_SPARK_CONF", '{"fs.s3a.endpoint": "x"}', "Spark properties start with 'spark.', got fs.s3a.endpoint"),
    ],
)
def test_a_bad_engine_setting_is_refused_naming_the_variable(name: str, value: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid configuration") as refused:
        load_settings({name: value})
    assert f"{name}={value!r}" in str(refused.value) and problem in str(refused.value)


@pytest.mark.parametrize(
    ("master", "partitions"), [("local", "2"), ("local[2]", "4"), ("local[3,2]", "6"), ("spark://h:7077", None)]
)
def test_local_sessions_get_two_shuffle_partitions_per_thread(master: str, partitions: str | None) -> None:
    props = spark.SparkOptions(master=master).properties()
    assert props.get("spark.sql.shuffle.partitions") == partitions
    assert props["spark.sql.session.timeZone"] == "UTC"
    assert props["spark.sql.legacy.parquet.nanosAsLong"] == "true"


@pytest.mark.parametrize("master", ["spark://127.0.0.1:7077", "spark://localhost:7177"])
def test_a_cluster_on_this_machine_gets_a_loopback_driver_and_keeps_its_ui(master: str) -> None:
    """``make spark-up``'s cluster listens on loopback only: its executors must reach the driver there too."""
    props = spark.SparkOptions(master=master).properties()
    assert props["spark.driver.host"] == props["spark.driver.bindAddress"] == "127.0.0.1"
    assert "spark.ui.enabled" not in props  # the application's REST API shows where its executors ran
    assert "spark.driver.host" not in spark.SparkOptions(master="spark://10.0.0.5:7077").properties()


def test_s3_data_is_read_by_spark_through_s3a_with_the_endpoint_override() -> None:
    assert spark.spark_path("s3://bucket/data/processed/clean_customers.parquet") == (
        "s3a://bucket/data/processed/clean_customers.parquet"
    )
    assert spark.spark_path("/data/processed/x.parquet") == "/data/processed/x.parquet"
    props = spark.SparkOptions(s3_endpoint_url="http://127.0.0.1:9000", conf=(("spark.driver.memory", "1g"),))
    assert props.properties()["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert props.properties()["spark.driver.memory"] == "1g"  # HVBUYER_SPARK_CONF has the last word


def test_the_definitions_hold_the_engine_the_settings_choose() -> None:
    """The engine is an object built once with the definitions: the input manager holds it, the assets call it."""
    settings = load_settings({"HVBUYER_ENGINE": "spark", "HVBUYER_SPARK_MASTER": "local[1]"})
    engine = build_resources(settings)[ENGINE_INPUTS].engine
    assert type(engine) is SparkEngine and engine.name == "spark"
    assert engine.options == spark.SparkOptions.from_settings(settings) and engine.options.master == "local[1]"
    endpoint = "http://127.0.0.1:9000"
    embedded = build_resources(load_settings({"AWS_ENDPOINT_URL_S3": endpoint}))[ENGINE_INPUTS].engine
    assert type(embedded) is EmbeddedEngine and embedded.s3_endpoint_url == endpoint


def test_spark_options_take_their_defaults_from_the_settings() -> None:
    assert spark.SparkOptions() == spark.SparkOptions.from_settings(load_settings({}))


def test_the_embedded_reader_reads_only_the_declared_columns(tmp_path: Path) -> None:
    path = tmp_path / "processed" / "clean_transactions" / "d1.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(TX, path)
    files = entry(TRANSACTIONS).drop_files(str(tmp_path), ["d0", "d1", "d2"])
    assert files == [str(path)]  # drops never stored (refused, not yet ingested) are left out
    engine = EmbeddedEngine()
    table = engine.read(input_asset(TRANSACTIONS), files).native
    assert table.column_names == ["customer_id", "timestamp", "amount", "status"]
    assert table.equals(TX.select(table.column_names))
    both = engine.read(input_asset(TRANSACTIONS), [str(path), str(path)]).native  # several files are one table
    assert both.num_rows == 2 * TX.num_rows
    pq.write_table(TX.drop_columns(["status"]), path)
    with pytest.raises(ValueError, match=r"d1.parquet: cannot read columns customer_id, timestamp, amount, status"):
        engine.read(input_asset(TRANSACTIONS), files)
    with pytest.raises(ValueError, match="clean_scores is not an engine input"):
        input_asset("clean_scores")


def test_the_embedded_reader_works_on_an_s3_data_dir(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    local = tmp_path / "clean_transactions.parquet"
    pq.write_table(TX, local)
    s3_server.create_bucket("lake")
    s3_server.upload(local, "lake", "data/processed/clean_transactions/d1.parquet")
    files = entry(TRANSACTIONS).drop_files("s3://lake/data", ["d1"], endpoint_url=s3_server.endpoint_url)
    assert files == ["s3://lake/data/processed/clean_transactions/d1.parquet"]
    table = EmbeddedEngine(s3_server.endpoint_url).read(input_asset(TRANSACTIONS), files)
    assert table.native.equals(TX.select(["customer_id", "timestamp", "amount", "status"]))


def test_a_missing_pyspark_is_reported_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError, as without the extra
    with pytest.raises(RuntimeError, match=r"HVBUYER_ENGINE=spark needs pyspark: install the 'spark' extra"):
        spark.session(spark.SparkOptions(master="local[1]", driver_memory="1g"))


def test_the_engines_and_the_feature_domain_import_no_pyspark() -> None:
    # (MLflow imports pyspark by itself when it is installed: the model domain does; it starts no JVM.)
    code = (
        "import sys, hvbuyer_assets.engines, hvbuyer_assets.engines.spark, "
        "hvbuyer_assets.defs.features.definitions; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_nothing_but_the_choice_reads_the_engine_name() -> None:
    """The engine is chosen once (``engines.engine_for``); no other code compares or reads the name to decide."""
    root = Path(__file__).resolve().parents[2]
    choice = root / "hvbuyer_assets" / "engines" / "__init__.py"
    dispatch = re.compile(r"""settings\.engine\b|==\s*["'](spark|embedded)["']|["'](spark|embedded)["']\s*==""")
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for folder in ("hvbuyer_assets", "hvbuyer_serving")
        for path in sorted((root / folder).rglob("*.py"))
        if path != choice
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if dispatch.search(line)
    ]
    assert not found, "dispatch on the engine's name outside engines.engine_for:\n" + "\n".join(found)


def test_tables_of_two_engines_do_not_make_frames(tmp_path: Path) -> None:
    path = tmp_path / "processed" / "clean_transactions" / "d1.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(TX, path)
    one, other = EmbeddedEngine(), EmbeddedEngine()
    transactions = one.read(input_asset(TRANSACTIONS), [str(path)])
    with pytest.raises(ValueError, match="expected clean_transactions and clean_customers"):
        one.frames(transactions, transactions)
    customers = StoredTable(CUSTOMERS, other, transactions.native)
    with pytest.raises(ValueError, match="inputs read by different engines"):
        one.frames(transactions, customers)
