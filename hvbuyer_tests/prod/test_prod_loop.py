"""The whole loop in production mode, on real processes: a drop uploaded to the raw S3 prefix -> raw_drop_sensor
(daemon) -> full_build run (default launcher) whose steps execute on the Celery workers -> model registered and
aliased ``champion`` in the MLflow tracking server (PostgreSQL store, artifacts proxied to S3) -> scores on S3 ->
the API serves that version and answers customer look-ups from the S3 scores. Same hold-out metrics as the embedded
default (in-process executor, local files, SQLite MLflow) on the same sample drop."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets import datagen, registry
from hvbuyer_tests.pipeline import SAMPLE_CUSTOMERS, SAMPLE_SEED, Workspace
from hvbuyer_tests.prod.deployment import (
    PROD_MARKS,
    Deployment,
    FirstBuild,
    Runs,
    api_get,
    boot,
    step_start_pids,
    worker_of,
)

pytestmark = PROD_MARKS


def s3_filesystem(prod: Deployment) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=prod.env["AWS_ENDPOINT_URL_S3"],
        access_key=prod.env["AWS_ACCESS_KEY_ID"],
        secret_key=prod.env["AWS_SECRET_ACCESS_KEY"],
        region=prod.env["AWS_DEFAULT_REGION"],
    )


def data_path(prod: Deployment, relative: str) -> str:
    return f"{prod.env['HVBUYER_DATA_DIR'].removeprefix('s3://')}/{relative}"


def steps_per_worker(prod: Deployment, run_id: str) -> dict[str, set[str]]:
    """The steps of a run each Celery worker executed (the process of each STEP_START in the event log)."""
    found: dict[str, set[str]] = {name: set() for name in prod.worker_names()}
    for step, pid in step_start_pids(prod, run_id):
        found.setdefault(worker_of(prod, pid) or f"pid {pid} (no worker)", set()).add(step)
    return found


def test_drop_on_s3_becomes_the_served_champion_via_celery_workers(
    prod: Deployment, first_build: FirstBuild, built: Workspace
) -> None:
    runs, run = Runs(prod), first_build.run
    tags = {t["key"]: t["value"] for t in run["tags"]}
    events = runs.step_events(run["runId"])
    failures = [e.get("message") for e in events if "Failure" in e["__typename"]]
    assert run["status"] == "SUCCESS", f"full_build failed: {failures}"
    assert tags["dagster/sensor_name"] == "raw_drop_sensor"

    # Every step ran on a Celery worker, and both workers took some.
    succeeded = {e["stepKey"] for e in events if e["__typename"] == "ExecutionStepSuccessEvent"}
    per_worker = steps_per_worker(prod, run["runId"])
    assert {"raw_customers", "registered_model", "champion_model", "customer_scores"} <= succeeded
    assert set().union(*per_worker.values()) == succeeded
    assert all(per_worker.values()), f"steps per worker: {per_worker}"

    # The champion lives in the MLflow server, its artifacts in the S3 bucket behind it.
    client = registry.client(prod.env["MLFLOW_TRACKING_URI"])
    champion = registry.champion(client)
    assert champion is not None and champion.version == "1"
    assert client.get_experiment_by_name(registry.EXPERIMENT_NAME).artifact_location.startswith("mlflow-artifacts:")
    bucket, prefix = boot.split_s3(prod.env["MLFLOW_ARTIFACTS_DESTINATION"])
    artifacts = boot.s3_client(prod.env).list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    assert any(obj["Key"].endswith("onnx/model.onnx") for obj in artifacts)

    # Scores and the evaluation are on S3; the metrics equal the embedded default's on the same drop.
    fs = s3_filesystem(prod)
    scores = pq.read_table(data_path(prod, "scores/customer_scores.parquet"), filesystem=fs).to_pandas()
    assert len(scores) > 0 and set(scores["model_version"].astype(str)) == {"1"}
    with fs.open_input_stream(data_path(prod, "models/model_evaluation.json")) as stream:
        evaluation = json.loads(stream.read())
    embedded = json.loads((built.root / "models" / "model_evaluation.json").read_text())
    assert evaluation["metrics"] == pytest.approx(embedded["metrics"], rel=1e-9)

    # The API (told by champion_model's reload POST, or its own poll) serves version 1 and reads S3 scores.
    deadline = time.monotonic() + 60
    while api_get(prod, "/model").json().get("version") != "1" and time.monotonic() < deadline:
        time.sleep(1)
    model = api_get(prod, "/model").json()
    assert model["version"] == "1" and model["runtime"] == "onnx", model
    assert api_get(prod, "/health/ready").json() == {"status": "ready", "model_version": "1", "runtime": "onnx"}
    row = scores.iloc[0]
    answer = api_get(prod, f"/customers/{row['customer_id']}/prediction")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"
    assert answer.json()["large_purchase_probability"] == pytest.approx(float(row["large_purchase_probability"]))
    print(f"[prod] drop uploaded -> full_build finished in {first_build.seconds:.1f} s; per worker: {per_worker}")


def read_json(prod: Deployment, relative: str) -> dict:
    with s3_filesystem(prod).open_input_stream(data_path(prod, relative)) as stream:
        return json.loads(stream.read())


def test_drifted_drop_is_ingested_judged_drift_retrained_and_served(
    prod: Deployment, first_build: FirstBuild, tmp_path: Path
) -> None:
    """The embedded loop test's later drop (same customers, 148 days on, behaviour drift) through the daemon's
    sensors: ingest_drop -> drift verdict -> retraining sensor -> retrain on the workers -> the API follows."""
    assert first_build.run["status"] == "SUCCESS"
    runs = Runs(prod)
    datagen.write_drop(
        tmp_path, SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, drift="behaviour", drop="q4drift", as_of="2026-11-25", days=148
    )
    began = time.monotonic()
    boot.upload_drop(prod.env, tmp_path, name="q4drift")

    ingest = runs.wait_finished("ingest_drop")
    assert ingest["status"] == "SUCCESS"
    report = read_json(prod, "monitoring/drift_report.json")
    assert report["verdict"] == "drift", report["reason"]
    assert report["champion_version"] == "1"

    retrain = runs.wait_finished("retrain")
    assert retrain["status"] == "SUCCESS"
    tags = {t["key"]: t["value"] for t in retrain["tags"]}
    assert tags["dagster/sensor_name"] == "retraining_sensor"
    assert tags["hvbuyer/trigger"].startswith("data drift"), tags["hvbuyer/trigger"]
    decision = read_json(prod, "models/champion_model.json")
    assert decision["candidate_version"] == "2"
    expected = "2" if decision["decision"] == "promoted" else "1"
    assert str(registry.champion(registry.client(prod.env["MLFLOW_TRACKING_URI"])).version) == expected

    deadline = time.monotonic() + 60
    while api_get(prod, "/model").json().get("version") != expected and time.monotonic() < deadline:
        time.sleep(1)
    assert api_get(prod, "/model").json()["version"] == expected
    print(
        f"[prod] drifted drop -> {decision['decision']} v2 ({decision['reason']}) -> API v{expected} "
        f"{time.monotonic() - began:.1f} s after the upload"
    )
