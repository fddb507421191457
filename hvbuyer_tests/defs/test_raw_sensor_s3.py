"""The drop-to-scores flow with raw storage on S3: a moto server on loopback, real boto3 uploads, the sensor
listing through dagster-aws ``S3Resource`` + ``get_objects``, the raw assets reading through s3fs.

Every upload declares its arrival (metadata ``arrived-at``, a day after the data's as-of, as ``pipeline.arrive``
does for local files), so no result depends on moto's wall-clock ``LastModified``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest

from hvbuyer_assets import datagen, registry
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
from hvbuyer_assets.defs.sensors.raw import DROP_TAG
from hvbuyer_assets.settings import Settings, load_settings
from hvbuyer_tests.defs.test_raw_sensor import LATER_AS_OF, SensorHarness, later_drop
from hvbuyer_tests.pipeline import check_results, digest, read_frame, write_sample
from hvbuyer_tests.s3 import S3Server, s3_server  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.slow  # builds the graph itself (see the slow marker in pyproject.toml)

BUCKET = "hvbuyer-raw"
PREFIX = "drops/raw"


def day_after(as_of: str) -> str:
    """The declared arrival of a drop: midnight UTC the day after its data's as-of."""
    return (pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)).isoformat()


def s3_settings(data: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Derived data in ``data``, raw drops under s3://BUCKET/PREFIX (the s3_server fixture sets the endpoint)."""
    data.mkdir()
    monkeypatch.setenv("HVBUYER_DATA_DIR", str(data))
    monkeypatch.setenv("HVBUYER_RAW_URI", f"s3://{BUCKET}/{PREFIX}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{data}/mlflow.db")
    return load_settings()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_s3_drop_to_scores_then_a_two_part_drop_rescores_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
    s3_server: S3Server,  # noqa: F811
) -> None:
    data = tmp_path / "data"
    settings = s3_settings(data, monkeypatch)  # AWS_ENDPOINT_URL_S3 and fake credentials: the s3_server fixture
    assert settings.s3_endpoint_url == s3_server.endpoint_url
    harness = SensorHarness(settings, instance)
    assert "raw location s3://hvbuyer-raw/drops/raw not readable" in harness.skip()  # no bucket yet
    s3_server.create_bucket(BUCKET)
    assert harness.skip() == "no raw drop files yet"

    first = tmp_path / "first"
    write_sample(first)
    for path in sorted(first.iterdir()):
        s3_server.upload(path, BUCKET, f"drops/raw/{path.name}", arrived_at=day_after(datagen.DEFAULT_AS_OF))
    s3_server.put(BUCKET, "drops/raw/.customers.csv.part", b"half a file")  # hidden: ignored
    s3_server.put(BUCKET, "drops/other/customers_x.csv", b"not under the raw prefix")
    assert "customers.csv, transactions.json to settle" in harness.skip()

    request = harness.request()
    assert request.job_name == "full_build"  # no champion yet
    assert harness.execute(request).success
    client = registry.client(settings.mlflow_tracking_uri)
    champion = registry.champion(client)
    assert champion is not None
    scores_path = data / "scores" / "customer_scores.parquet"
    scores = read_frame(scores_path)
    assert len(scores) > 0 and set(scores["model_version"]) == {str(champion.version)}
    assert not (data / "raw").exists()  # raw lives in S3 only; derived data in the local data dir
    assert harness.skip().startswith("no new raw files (2 files")

    # A second drop in two parts: customers now, transactions a tick later.
    customers, transactions = later_drop(tmp_path / "second", "q2")
    s3_server.upload(customers, BUCKET, f"drops/raw/{customers.name}", arrived_at=day_after(LATER_AS_OF))
    assert "drop q2: waiting for transactions_q2.json(l)" in harness.skip()
    assert "drop q2: waiting for transactions_q2.json(l)" in harness.skip()
    s3_server.upload(transactions, BUCKET, f"drops/raw/{transactions.name}", arrived_at=day_after(LATER_AS_OF))
    assert "transactions_q2.json to settle" in harness.skip()
    before = digest([scores_path])

    request = harness.request()
    assert request.job_name == "ingest_drop" and request.tags[DROP_TAG] == "q2"
    result = harness.execute(request)
    assert result.success
    rescored = read_frame(scores_path)
    assert digest([scores_path]) != before
    assert set(rescored["model_version"]) == {str(champion.version)}  # re-scored by the same champion
    assert rescored["scored_at"].min() > scores["scored_at"].max()
    raw_meta = result.asset_materializations_for_node("raw_transactions")[0].metadata["file_versions"].value
    assert sorted(raw_meta) == ["transactions_q2.json"]  # the new drop only: the first one stays as cleaned
    assert request.partition_key == "q2" and instance.get_dynamic_partitions("drops") == ["default", "q2"]

    # Exactly once, also for a restarted daemon without its cursor.
    assert harness.skip().startswith("no new raw files (4 files")
    harness.cursor = None
    assert harness.skip(dg.DagsterInstance.from_ref(instance.get_ref())).startswith("no new raw files")


FAR_AS_OF = "2099-06-30"  # data far later than any wall clock this suite runs on
CLEANING = ["raw_customers", "raw_transactions", "clean_customers", "quarantined_customers"]
CLEANING += ["clean_transactions", "quarantined_transactions"]


def _clean(settings: Settings, selection: list[str], drop: str) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("drops", [drop])
    try:
        return dg.materialize(
            ALL_ASSETS,
            resources=build_resources(settings),
            selection=selection,
            instance=instance,
            partition_key=drop,
            raise_on_error=False,
        )
    finally:
        mlflow.end_run()


def test_s3_arrival_is_declared_by_the_writer_not_the_upload_clock(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_server: S3Server,  # noqa: F811
) -> None:
    """A drop dated 2099 uploaded today: its declared arrival (2099-07-01) is its arrival, so no transaction is
    "after the drop arrived" (with LastModified, today, every one would be and the run would be blocked). An
    unreadable declaration refuses the file, naming it, and replaces nothing stored."""
    data = tmp_path / "data"
    settings = s3_settings(data, monkeypatch)
    s3_server.create_bucket(BUCKET)
    staging = tmp_path / "far"
    datagen.write_drop(staging, 400, seed=5, as_of=FAR_AS_OF, days=120, drop="far")
    for path in sorted(staging.iterdir()):
        s3_server.upload(path, BUCKET, f"{PREFIX}/{path.name}", arrived_at="2099-07-01T00:00:00Z")

    result = _clean(settings, CLEANING, "far")
    assert result.success, check_results(result)["transaction_quarantine_share"].description
    raw = read_frame(data / "interim" / "raw_transactions" / "far.parquet")
    assert set(raw["arrived_at"]) == {pd.Timestamp("2099-07-01", tz="UTC")}
    clean = read_frame(data / "processed" / "clean_transactions" / "far.parquet")
    assert clean["timestamp"].max() > pd.Timestamp("2099-06-01", tz="UTC")
    quarantine = read_frame(data / "quarantine" / "quarantined_transactions" / "far.parquet")
    assert not quarantine["reason"].str.contains("after the drop arrived").any()
    assert check_results(result)["transaction_quarantine_share"].passed

    stored = digest([data / "interim" / "raw_customers" / "far.parquet"])
    path = staging / "customers_far.csv"
    s3_server.upload(path, BUCKET, f"{PREFIX}/customers_late.csv", arrived_at="next tuesday")
    refused = _clean(settings, ["raw_customers"], "late")
    evaluation = check_results(refused)["customers_contract"]
    assert not evaluation.passed
    assert "customers_late.csv: metadata arrived-at='next tuesday' is not an ISO 8601 timestamp" in (
        evaluation.description or ""
    )
    assert digest([data / "interim" / "raw_customers" / "far.parquet"]) == stored
    assert not (data / "interim" / "raw_customers" / "late.parquet").exists()
