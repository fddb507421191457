"""The drop-to-scores flow with raw storage on S3: a moto server on loopback, real boto3 uploads, the sensor
listing through dagster-aws ``S3Resource`` + ``get_objects``, the raw assets reading through s3fs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.defs.sensors.raw import DROP_TAG
from hvbuyer_assets.settings import load_settings
from hvbuyer_tests.defs.test_raw_sensor import SensorHarness, later_drop
from hvbuyer_tests.pipeline import digest, read_frame, write_sample
from hvbuyer_tests.s3 import S3Server, s3_server  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.slow  # builds the graph itself (see the slow marker in pyproject.toml)

BUCKET = "hvbuyer-raw"


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
    data.mkdir()
    monkeypatch.setenv("HVBUYER_DATA_DIR", str(data))
    monkeypatch.setenv("HVBUYER_RAW_URI", f"s3://{BUCKET}/drops/raw")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{data}/mlflow.db")
    settings = load_settings()  # AWS_ENDPOINT_URL_S3 and fake credentials come from the s3_server fixture
    assert settings.s3_endpoint_url == s3_server.endpoint_url
    harness = SensorHarness(settings, instance)
    assert "raw location s3://hvbuyer-raw/drops/raw not readable" in harness.skip()  # no bucket yet
    s3_server.create_bucket(BUCKET)
    assert harness.skip() == "no raw drop files yet"

    first = tmp_path / "first"
    write_sample(first)
    for path in sorted(first.iterdir()):
        s3_server.upload(path, BUCKET, f"drops/raw/{path.name}")
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
    s3_server.upload(customers, BUCKET, f"drops/raw/{customers.name}")
    assert "drop q2: waiting for transactions_q2.json(l)" in harness.skip()
    assert "drop q2: waiting for transactions_q2.json(l)" in harness.skip()
    s3_server.upload(transactions, BUCKET, f"drops/raw/{transactions.name}")
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
    assert sorted(raw_meta) == ["transactions.json", "transactions_q2.json"]

    # Exactly once, also for a restarted daemon without its cursor.
    assert harness.skip().startswith("no new raw files (4 files")
    harness.cursor = None
    assert harness.skip(dg.DagsterInstance.from_ref(instance.get_ref())).startswith("no new raw files")
