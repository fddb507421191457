"""The whole loop in production mode, on real processes: a drop uploaded to the raw S3 prefix -> full_build launched
through the webserver (an operator's small first model) whose steps execute on the Celery workers -> model
registered and aliased ``champion`` in the MLflow tracking server (PostgreSQL store, artifacts proxied to S3) ->
scores on S3 -> the API serves that version and answers customer look-ups from the S3 scores; the same data as the
embedded default (in-process executor, local files, SQLite MLflow) on the same sample drop and the same hold-out
metrics as the in-process code. Then a drifted drop -> raw_drop_sensor -> ingest_drop -> drift verdict ->
retraining_after_pipeline_run (or the periodic retraining_sensor) -> retrain -> the retrained forest is promoted ->
the API switches to it."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.core import evaluation, model
from hvbuyer_tests.defs.test_loop_e2e import MODEST_FIRST_MODEL
from hvbuyer_tests.pipeline import Workspace
from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, Outcome, Runs, api_get, boot, wait_for
from hvbuyer_tests.prod.scenario import DRIFT_DROP, RAW_SENSOR, Drifted, read_json, read_table

pytestmark = PROD_MARKS


def served_version(prod: Deployment, version: str) -> dict:
    """``GET /model`` once the API serves ``version`` (told by champion_model's reload POST, or its own poll)."""
    return wait_for(
        lambda: (body := api_get(prod, "/model").json()).get("version") == version and body,
        f"the API serving version {version}",
        timeout=60,
    )


def test_drop_on_s3_becomes_the_served_champion_via_celery_workers(
    prod: Deployment, first_build: Outcome, built: Workspace
) -> None:
    runs, run = Runs(prod), first_build.run
    events = runs.step_events(run["runId"])
    failures = [e.get("message") for e in events if "Failure" in e["__typename"]]
    assert run["status"] == "SUCCESS", f"full_build failed: {failures}"

    # Every step ran on a Celery worker (as the worker recorded it in the event log), and both workers took some.
    succeeded = {e["stepKey"] for e in events if e["__typename"] == "ExecutionStepSuccessEvent"}
    per_step = runs.celery_workers(run["runId"])
    assert {"raw_customers", "registered_model", "champion_model", "customer_scores"} <= succeeded
    assert set(per_step) == succeeded
    assert set(per_step.values()) == set(prod.worker_names()), f"steps per worker: {per_step}"

    # The champion lives in the MLflow server, its artifacts in the S3 bucket behind it.
    client = registry.client(prod.env["MLFLOW_TRACKING_URI"])
    champion = registry.champion(client)
    assert champion is not None and champion.version == "1"
    assert client.get_experiment_by_name(registry.EXPERIMENT_NAME).artifact_location.startswith("mlflow-artifacts:")
    bucket, prefix = boot.split_s3(prod.env["MLFLOW_ARTIFACTS_DESTINATION"])
    artifacts = boot.s3_client(prod.env).list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    assert any(obj["Key"].endswith("onnx/model.onnx") for obj in artifacts)

    # The same training set as the embedded default on the same drop, and the hold-out metrics the in-process
    # code computes for the operator's small forest on it.
    training_set = read_table(prod, "features/training_set.parquet")
    embedded = pq.read_table(built.root / "features" / "training_set.parquet").to_pandas()
    pd.testing.assert_frame_equal(training_set, embedded)
    params = model.ModelParams(**MODEST_FIRST_MODEL["trained_model"]["config"])
    holdout = training_set[training_set["split"] == "holdout"]
    proba = model.predict_proba(model.train_model(training_set, params), holdout)
    expected = evaluation.scalar_metrics(evaluation.evaluate(holdout["label"].to_numpy(), proba))
    assert read_json(prod, "models/model_evaluation.json")["metrics"] == pytest.approx(expected, rel=1e-9)

    # Scores on S3; the API serves version 1 and answers customer look-ups from them.
    scores = read_table(prod, "scores/customer_scores.parquet")
    assert len(scores) > 0 and set(scores["model_version"].astype(str)) == {"1"}
    assert served_version(prod, "1")["runtime"] == "onnx"
    assert api_get(prod, "/health/ready").json() == {"status": "ready", "model_version": "1", "runtime": "onnx"}
    row = scores.iloc[0]
    answer = api_get(prod, f"/customers/{row['customer_id']}/prediction")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"
    assert answer.json()["large_purchase_probability"] == pytest.approx(float(row["large_purchase_probability"]))
    print(f"[prod] drop uploaded -> full_build finished in {first_build.seconds:.1f} s; steps per worker: {per_step}")


def test_drifted_drop_is_ingested_judged_drift_retrained_and_the_api_switches(
    prod: Deployment, drifted: Drifted
) -> None:
    """The embedded loop test's later drop (same customers, 148 days on, behaviour drift) through the daemon's
    sensors: ingest_drop -> drift verdict -> retraining sensor -> retrain on the workers -> the retrained default
    forest beats the small first champion -> promoted -> the API switches to version 2."""
    runs = Runs(prod)
    ingest, retrain = drifted.ingest.run, drifted.retrain.run
    assert ingest["status"] == "SUCCESS", ingest
    assert {"dagster/sensor_name": RAW_SENSOR, "hvbuyer/drop": DRIFT_DROP["drop"]}.items() <= tags_of(ingest).items()
    # The restarted raw sensor left the first drop (consumed by the operator's build) alone.
    assert [r["jobName"] for r in runs.all() if tags_of(r).get("dagster/sensor_name") == RAW_SENSOR] == ["ingest_drop"]
    report = drifted.drift_report
    assert report["verdict"] == "drift", report["reason"]
    assert report["champion_version"] == "1"

    assert retrain["status"] == "SUCCESS", retrain
    tags = tags_of(retrain)
    # requested by the run status sensor as the ingest run ended (or, if a periodic tick came first, by it)
    assert tags["dagster/sensor_name"] in ("retraining_after_pipeline_run", "retraining_sensor"), tags
    assert tags["hvbuyer/trigger"].startswith("data drift"), tags["hvbuyer/trigger"]
    decision = read_json(prod, "models/champion_model.json")
    assert (decision["candidate_version"], decision["decision"]) == ("2", "promoted"), decision
    assert str(registry.champion(registry.client(prod.env["MLFLOW_TRACKING_URI"])).version) == "2"
    assert served_version(prod, "2")["runtime"] == "onnx"
    assert api_get(prod, "/health/ready").json()["model_version"] == "2"
    print(
        f"[prod] drifted drop -> ingest_drop {drifted.ingest.seconds:.1f} s -> retrain, promoted v2 "
        f"({decision['reason']}) {drifted.retrain.seconds:.1f} s after the upload"
    )


def tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}
