"""Monitoring assets and the retraining sensor on a real Dagster instance: a later drop WITHOUT drift, write-once
references and score archive, labels not yet matured, and the in-flight guard."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from hvbuyer_assets.core.drift_report import TIME_INDEXED_FEATURES
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
from hvbuyer_assets.defs.jobs import JOBS
from hvbuyer_assets.defs.sensors.retraining import retraining_sensor
from hvbuyer_tests.pipeline import Workspace, digest, execute_job, write_drop


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _tick(instance: dg.DagsterInstance, workspace: Workspace) -> dg.SensorExecutionData:
    resources = build_resources(workspace.settings)
    context = dg.build_sensor_context(
        instance=instance,
        sensor_name=retraining_sensor.name,
        resources={key: resources[key] for key in ("retraining_policy", "model_registry")},
    )
    return retraining_sensor.evaluate_tick(context)


def test_full_build_writes_the_reference_and_the_first_archive(built: Workspace) -> None:
    monitoring = built.root / "monitoring"
    reference = _json(monitoring / "reference" / "v1.json")
    assert reference["version"] == "1" and reference["rows"] > 1000
    assert reference["data_as_of"] > reference["holdout_cutoff"]
    report = _json(monitoring / "drift_report.json")
    assert report["champion_version"] == "1" and report["model_data_as_of"] == reference["data_as_of"]
    # The reference rows are the train rows: as of their latest cutoff, two horizons before the model's data end.
    assert report["reference_as_of"] == reference["reference_as_of"] == max(reference["train_cutoffs"])
    assert report["reference_as_of"] < reference["holdout_cutoff"] < report["model_data_as_of"]
    calibration = _json(monitoring / "calibration" / "v1.json")
    assert 0.5 < calibration["holdout_roc_auc"] < 1 and len(calibration["scores"]) == len(calibration["rates"])
    (estimate_file,) = (monitoring / "estimated_performance").glob("*_v1.json")
    estimate = _json(estimate_file)
    assert estimate["status"] == "estimated" and estimate["champion_version"] == "1"
    assert 0.5 < estimate["roc_auc"] < 1 and 0 < estimate["expected_positives"] < estimate["rows"]
    assert not estimate["degraded"], estimate["reason"]
    assert report["verdict"] == "no_drift", report["reason"]
    assert {f["feature"] for f in report["time_indexed_features"]} == set(TIME_INDEXED_FEATURES)
    assert all(not f["votes"] for f in report["time_indexed_features"])
    for feature in report["features"]:
        assert {"psi", "threshold", "drifted", "reason"} <= set(feature)
    assert [p.name for p in (monitoring / "score_history").iterdir()] == [
        f"{report['data_as_of'][:10].replace('-', '')}T{report['data_as_of'][11:19].replace(':', '')}Z_v1.parquet"
    ]
    performance = _json(monitoring / "model_performance.json")
    assert performance["status"] == "no_matured_scores" and not performance["degraded"]
    assert performance["reason"].startswith("no matured scores yet")


def test_a_later_drop_without_drift_does_not_trigger_retraining(workspace_copy: Workspace) -> None:
    monitoring = workspace_copy.root / "monitoring"
    kept = digest([*(monitoring / "reference").iterdir(), *(monitoring / "score_history").iterdir()])
    write_drop(workspace_copy.raw, "2026-09-28", drop="q3", days=90)
    defs = dg.Definitions(
        assets=ALL_ASSETS,
        jobs=JOBS,
        resources=build_resources(workspace_copy.settings),
        executor=dg.in_process_executor,
    )
    with dg.instance_for_test() as instance:
        # A pipeline run created but not finished holds the sensor back, whatever the monitoring says.
        queued = instance.create_run_for_job(defs.resolve_job_def("ingest_drop"))  # NOT_STARTED
        waiting = _tick(instance, workspace_copy)
        assert not waiting.run_requests and "in flight (ingest_drop" in (waiting.skip_message or "")
        instance.delete_run(queued.run_id)

        reference_asset = (monitoring / "drift_reference.json").read_text()
        ingest = execute_job(defs, instance, "ingest_drop")  # the new drop q3's partition, as the raw sensor adds it
        # An ingest registers no version, so it leaves the references alone (no training set read); the drift
        # report, judged against the champion's stored reference, and the realised performance are refreshed.
        materialized = {event.asset_key.to_user_string() for event in ingest.get_asset_materialization_events()}
        assert {"drift_report", "score_history", "model_performance"} <= materialized
        assert not materialized & {"drift_reference", "training_set"}
        assert (monitoring / "drift_reference.json").read_text() == reference_asset
        report = _json(monitoring / "drift_report.json")
        assert report["verdict"] == "no_drift", report["reason"]
        assert report["model_age_days"] > 89
        # The time-indexed features (and the score, which consumes them) move although nothing drifted;
        # they are reported but do not vote.
        time_indexed = {f["feature"]: f for f in report["time_indexed_features"]}
        assert time_indexed["days_since_first_purchase"]["drifted"]
        assert report["prediction"]["votes"] is False

        tick = _tick(instance, workspace_copy)
        assert not tick.run_requests
        assert (tick.skip_message or "").startswith("no trigger: drift verdict no_drift")

    # References and archived scorings are written once: the old files are untouched, a new archive was added.
    assert digest([p for p in map(Path, kept)]) == kept
    archives = sorted(p.name for p in (monitoring / "score_history").iterdir())
    assert len(archives) == 2 and archives[-1].startswith("20260927")
    assert _json(monitoring / "model_performance.json")["status"] == "no_matured_scores"


def test_sensor_takes_its_facts_from_materialization_metadata(built: Workspace) -> None:
    """Performance drop and report/champion mismatch as the sensor reads them from the instance (the champion
    comes from the registry: v1 in the built workspace)."""

    def record(asset: str, **metadata: object) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, metadata=metadata))

    report = {
        "verdict": "no_drift",
        "reason": "0/10 features drifted",
        "champion_version": "1",
        "data_as_of": "2026-09-27T23:38:00+00:00",
        "reference_as_of": "2026-06-29T23:52:00+00:00",
        "data_fingerprint": "f1",
    }
    with dg.instance_for_test() as instance:
        record("drift_report", **report)
        record(
            "model_performance", degraded=True, reason="realised ROC-AUC 0.70 vs 0.80: dropped", champion_version="0"
        )
        stale = _tick(instance, built)  # a judgement about another version is not the champion's
        assert not stale.run_requests and "performance: not evaluated yet" in (stale.skip_message or "")

        record(
            "model_performance", degraded=True, reason="realised ROC-AUC 0.70 vs 0.80: dropped", champion_version="1"
        )
        request = _tick(instance, built).run_requests[0]
        assert request.tags["hvbuyer/trigger"] == "performance drop (realised ROC-AUC 0.70 vs 0.80: dropped)"
        assert request.run_key == "retrain-f1"

        record("drift_report", **{**report, "champion_version": "0", "data_fingerprint": "f2"})
        mismatch = _tick(instance, built)
        assert not mismatch.run_requests and "compares with v0 but the champion is v1" in (mismatch.skip_message or "")
