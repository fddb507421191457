"""The retraining sensor's triggers and statuses produced by the real assets (no hand-written metadata): real
``ingest_drop`` / ``retrain`` runs in a real instance, ticks of the real ``retraining_sensor`` with the default
policy (``core.retraining.Policy``: model age > 120 d of data).

The champion v1 is trained on the sample (data as of 2026-06-30) and scored the customers at that date."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
from hvbuyer_assets.defs.jobs import JOBS
from hvbuyer_assets.defs.sensors.retraining import (
    requested_retrains,
    retraining_after_pipeline_run,
    retraining_sensor,
)
from hvbuyer_tests.pipeline import Workspace, execute_job, write_drop, write_sample

pytestmark = pytest.mark.slow  # runs the graph (see the slow marker in pyproject.toml)

# A deliberately small first champion, so that the retrained default forest beats it and is promoted every time
# (as in test_loop_e2e; whether "kept" is decided right is test_promotion's business).
MODEST_FIRST_MODEL = {"ops": {"trained_model": {"config": {"n_estimators": 10, "max_depth": 3}}}}
WEAK = {"ops": {"trained_model": {"config": {"n_estimators": 3, "max_depth": 2, "min_samples_leaf": 200}}}}


class Loop:
    """The project's jobs and the real retraining sensor (default policy) on one instance."""

    def __init__(self, workspace: Workspace, instance: dg.DagsterInstance) -> None:
        self.workspace, self.instance = workspace, instance
        self.resources = build_resources(workspace.settings)
        self.defs = dg.Definitions(
            assets=ALL_ASSETS,
            jobs=JOBS,
            sensors=[retraining_sensor],
            resources=self.resources,
            executor=dg.in_process_executor,
        )
        self.cursor: str | None = None

    def run(self, job: str, run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> None:
        execute_job(self.defs, self.instance, job, run_config, tags)

    def ingest(self, name: str, as_of: str, days: int, drift: str = "none") -> None:
        write_drop(self.workspace.raw, as_of, drop=name, days=days, drift=drift)
        self.run("ingest_drop")

    def tick(self) -> dg.SensorExecutionData:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            sensor_name=retraining_sensor.name,
            resources={key: self.resources[key] for key in retraining_sensor.required_resource_keys},
        )
        result = retraining_sensor.evaluate_tick(context)
        if result.cursor is not None:
            self.cursor = result.cursor
        return result

    def after_run(self, job: str) -> dg.RunRequest | dg.SkipReason:
        """The run-status sensor on the newest successful run of ``job``, as the daemon calls it."""
        (record,) = self.instance.get_run_records(dg.RunsFilter(job_name=job), limit=1)
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        (success,) = self.instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
        context = dg.build_run_status_sensor_context(
            sensor_name=retraining_after_pipeline_run.name,
            dagster_instance=self.instance,
            dagster_run=record.dagster_run,
            dagster_event=success.get_dagster_event(),
            resources={key: self.resources[key] for key in retraining_after_pipeline_run.required_resource_keys},
        )
        return retraining_after_pipeline_run(context)

    def skip(self) -> str:
        result = self.tick()
        assert not result.run_requests, [r.tags for r in result.run_requests]
        assert result.skip_message
        return result.skip_message

    def stored(self, layer: str, asset: str) -> Any:
        return json.loads((self.workspace.root / layer / f"{asset}.json").read_text())


@pytest.fixture
def loop(workspace_copy: Workspace) -> Iterator[Loop]:
    """The built workspace's copy with its own instance (its drop partitions: what the data's history is)."""
    instance = workspace_copy.instance()
    try:
        yield Loop(workspace_copy, instance)
    finally:
        instance.dispose()


@pytest.fixture
def modest_loop(tmp_path: Path) -> Iterator[Loop]:
    """A full build of the sample with a small first champion, in the instance."""
    workspace = Workspace(tmp_path / "data")
    write_sample(workspace.raw)
    with dg.instance_for_test() as instance:
        loop = Loop(workspace, instance)
        loop.run("full_build", MODEST_FIRST_MODEL)
        assert workspace.champion_version() == "1"
        yield loop


def test_model_age_triggers_then_the_new_champion_has_no_matured_scores(modest_loop: Loop) -> None:
    loop = modest_loop
    # 148 more days of the same customers, no drift: only the champion's age (148 d of data > 120 d) is a trigger.
    loop.ingest("later", as_of="2026-11-25", days=148)
    report = loop.stored("monitoring", "drift_report")
    assert report["verdict"] == "no_drift", report["reason"]
    performance = loop.stored("monitoring", "model_performance")
    assert performance["status"] == "evaluated" and not performance["degraded"], performance["reason"]

    # The run-status sensor decides as soon as the ingest run succeeded: the request the next tick would make.
    at_once = loop.after_run("ingest_drop")
    assert isinstance(at_once, dg.RunRequest), at_once
    result = loop.tick()
    assert len(result.run_requests) == 1, result.skip_message
    request = result.run_requests[0]
    assert request.tags["hvbuyer/trigger"] == "model age 148 d of data > 120 d"
    assert request.run_key == f"retrain-{report['data_fingerprint']}"
    ours = {key: value for key, value in request.tags.items() if not key.startswith("dagster/")}
    assert (at_once.run_key, at_once.tags, at_once.run_config) == (request.run_key, ours, request.run_config)
    assert requested_retrains(loop.instance).retrained == ()

    # The retrain promotes v2 and scores with it; v1's scores have matured, v2's not yet: the status the sensor
    # then reports.
    loop.run("retrain", tags={**request.tags, "dagster/run_key": request.run_key or ""})
    decision = loop.stored("models", "champion_model")
    assert decision["decision"] == "promoted" and decision["champion_version"] == "2", decision["reason"]
    assert decision["population_check"] == "ok"
    performance = loop.stored("monitoring", "model_performance")
    assert performance["status"] == "no_matured_champion_scores" and not performance["degraded"]
    assert performance["reason"] == "no matured scores of champion v2 yet"
    reason = loop.skip()
    assert reason.startswith("no trigger: drift verdict no_drift"), reason
    assert "performance: no matured scores of champion v2 yet; model age 0 d of data <= 120 d" in reason
    # Both sensors remember that retrain through the instance (its run carries the data fingerprint).
    assert requested_retrains(loop.instance).retrained == (report["data_fingerprint"],)
    after = loop.after_run("ingest_drop")
    assert isinstance(after, dg.SkipReason) and "no trigger" in (after.skip_message or ""), after


def test_a_concept_shift_fires_the_performance_trigger_alone(loop: Loop) -> None:
    # 100 days after v1 scored the customers (as of 2026-06-30; H = 90, so those scores have matured), each
    # customer now spends like another one (datagen --drift concept): every feature's distribution stays, what it
    # says about the next 90 days does not. Model age 100 d <= 120 d: realised performance is the only evidence.
    loop.ingest("concept", as_of="2026-10-08", days=100, drift="concept")
    report = loop.stored("monitoring", "drift_report")
    assert report["verdict"] == "no_drift", report["reason"]
    performance = loop.stored("monitoring", "model_performance")
    assert performance["status"] == "evaluated" and performance["degraded"], performance["reason"]
    (evaluation,) = performance["evaluations"]
    assert evaluation["model_version"] == "1" and evaluation["scored_as_of"] < "2026-07-01"
    assert evaluation["realised"]["rows"] >= 200
    assert evaluation["auc_drop"] > 0.05
    assert evaluation["realised"]["roc_auc"] < 0.6 < 0.7 < evaluation["expected"]["roc_auc"]
    assert performance["reason"].startswith("realised ROC-AUC")

    result = loop.tick()
    assert len(result.run_requests) == 1, result.skip_message
    request = result.run_requests[0]
    assert request.tags["hvbuyer/trigger"] == f"performance drop ({performance['reason']})"
    assert request.run_key == f"retrain-{report['data_fingerprint']}"
    reason = loop.skip()  # the same evidence is never requested twice
    assert "was already requested: waiting for new data" in reason, reason


def test_a_champion_without_reference_ages_from_its_registry_tag(loop: Loop) -> None:
    # The champion's reference snapshot is gone (e.g. a champion registered before monitoring existed), and the
    # latest retrain's candidate lost: `drift_reference` writes the candidate's snapshot, not the champion's.
    for path in (loop.workspace.root / "monitoring" / "reference").glob("v1.*"):
        path.unlink()
    loop.run("retrain", WEAK)
    decision = loop.stored("models", "champion_model")
    assert decision["candidate_version"] == "2" and decision["decision"] == "kept", decision["reason"]
    assert decision["population_check"] == "not checked: the champion has no reference snapshot"

    report = loop.stored("monitoring", "drift_report")
    assert report["verdict"] == "no_reference" and report["champion_version"] == "1"
    assert report["reason"].startswith("no reference snapshot for champion v1")
    reason = loop.skip()
    assert reason.startswith("no trigger: drift verdict no_reference (no reference snapshot for champion v1"), reason
    assert "model age 0 d of data <= 120 d" in reason  # from the version's hvbuyer.data_as_of tag

    # No drift can be measured for v1, but it still ages: 148 days of new data fire the model-age trigger.
    loop.ingest("later", as_of="2026-11-25", days=148)
    report = loop.stored("monitoring", "drift_report")
    assert report["verdict"] == "no_reference" and report["champion_version"] == "1"
    result = loop.tick()
    assert len(result.run_requests) == 1, result.skip_message
    assert result.run_requests[0].tags["hvbuyer/trigger"] == "model age 148 d of data > 120 d"


def test_an_estimated_performance_drop_fires_its_trigger_through_the_sensors(loop: Loop) -> None:
    # 90 days, no shift: v1's realised performance holds and it is 90 d old (<= 120). With no margin allowed,
    # the estimate (a little under the hold-out's, as on any new population) is the one trigger.
    write_drop(loop.workspace.raw, "2026-09-28", drop="calm", days=90)
    loop.run("ingest_drop", {"ops": {"estimated_performance": {"config": {"max_auc_drop": 0.0}}}})
    folder = loop.workspace.root / "monitoring" / "estimated_performance"
    (stored,) = [e for e in map(json.loads, map(Path.read_text, folder.glob("*_v1.json"))) if e["as_of"] > "2026-09"]
    assert stored["status"] == "estimated" and stored["degraded"], stored
    assert stored["roc_auc"] < stored["holdout_roc_auc"]
    at_once = loop.after_run("ingest_drop")
    assert isinstance(at_once, dg.RunRequest), at_once
    assert at_once.tags["hvbuyer/trigger"] == f"estimated performance drop ({stored['reason']})"
    result = loop.tick()
    assert [r.tags["hvbuyer/trigger"] for r in result.run_requests] == [at_once.tags["hvbuyer/trigger"]]
