"""The retraining sensors: request the ``retrain`` job when drift, a realised or estimated performance drop or
model age says so, under the guards of ``core.retraining`` (cooldown, new data, nothing in flight, no repeat on the same
data). Every tick that requests nothing says why (a skip reason in the UI's tick history)."""

from dataclasses import asdict
from typing import Any

import dagster as dg
import pandas as pd

from hvbuyer_assets import registry
from hvbuyer_assets.core import retraining
from hvbuyer_assets.defs.jobs import (
    IN_FLIGHT_STATUSES,
    JOBS,
    full_build_job,
    ingest_job,
    retrain_job,
    with_quiet_console,
)
from hvbuyer_assets.defs.model.resources import ModelRegistryResource
from hvbuyer_assets.settings import Settings

FINGERPRINT_TAG = "hvbuyer/data_fingerprint"  # on every sensor-requested retrain run (core.retraining.decide)


class RetrainingPolicyResource(dg.ConfigurableResource):
    """Knobs of the retraining policy (``core.retraining.Policy``, whose defaults these are); a deployment sets
    them with ``HVBUYER_RETRAIN_COOLDOWN_HOURS``, ``HVBUYER_MAX_MODEL_AGE_DAYS`` and ``HVBUYER_MIN_NEW_DATA_DAYS``."""

    cooldown_hours: float = retraining.Policy.cooldown_hours
    max_model_age_days: float = retraining.Policy.max_model_age_days
    min_new_data_days: float = retraining.Policy.min_new_data_days

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetrainingPolicyResource":
        """The policy of a deployment (its settings' retraining knobs, validated by the core)."""
        return cls(**asdict(settings.retraining_policy()))

    def policy(self) -> retraining.Policy:
        """As the core's policy object (validated)."""
        return retraining.Policy(self.cooldown_hours, self.max_model_age_days, self.min_new_data_days)


def _metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, Any] | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return None
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def _in_flight(instance: dg.DagsterInstance) -> tuple[str, ...]:
    runs = []
    for job in JOBS:
        filters = dg.RunsFilter(job_name=job.name, statuses=list(IN_FLIGHT_STATUSES))
        for run in instance.get_runs(filters=filters, limit=5):
            runs.append(f"{job.name} {run.run_id[:8]} {run.status.value}")
    return tuple(runs)


def gather_facts(instance: dg.DagsterInstance, model_registry: ModelRegistryResource) -> retraining.Facts:
    """One tick's facts: the registry's champion, in-flight runs, the latest drift report and performance."""
    champion = registry.champion(model_registry.client())
    report = _metadata(instance, "drift_report") or {}
    perf = _metadata(instance, "model_performance") or {}
    estimate = _metadata(instance, "estimated_performance") or {}
    champion_version = None if champion is None else str(champion.version)
    perf_is_champion = perf.get("champion_version") == champion_version
    estimate_is_champion = estimate.get("champion_version") == champion_version
    # The champion's training data as-of: its reference snapshot's (in the drift report), else the registry's
    # tag on the version (the same label-window end), so a champion without a snapshot still ages.
    tags = {} if champion is None else dict(champion.tags or {})
    # (`model_data_as_of`; reports written before it existed had that date under `reference_as_of`).
    model_data_as_of = report.get("model_data_as_of", report.get("reference_as_of"))
    champion_data_as_of = model_data_as_of or tags.get(registry.DATA_AS_OF_TAG) or None
    return retraining.facts_from(
        now=pd.Timestamp.now(tz="UTC"),
        champion_version=champion_version,
        in_flight=_in_flight(instance),
        drift_verdict=report.get("verdict"),
        drift_reason=report.get("reason", ""),
        report_version=report.get("champion_version"),
        data_as_of=report.get("data_as_of") or None,
        champion_data_as_of=champion_data_as_of,
        data_fingerprint=report.get("data_fingerprint"),
        performance_degraded=bool(perf.get("degraded")) and perf_is_champion,
        performance_reason=perf.get("reason", "no matured scores yet") if perf_is_champion else "not evaluated yet",
        estimate_degraded=bool(estimate.get("degraded")) and estimate_is_champion,
        estimate_reason=estimate.get("reason", "no estimate yet") if estimate_is_champion else "no estimate yet",
    )


def requested_retrains(instance: dg.DagsterInstance) -> retraining.Cursor:
    """The policy's memory as the instance holds it: the sensor-requested ``retrain`` runs (those tagged with
    the data fingerprint they retrain on), the newest one's creation time as the last request. Both retraining
    sensors read it, so that neither requests what the other already did, nor inside the other's cooldown."""
    records = instance.get_run_records(dg.RunsFilter(job_name=retrain_job.name), limit=retraining.MAX_REMEMBERED)
    tagged = [r for r in records if FINGERPRINT_TAG in r.dagster_run.tags]  # newest first
    last = pd.Timestamp(tagged[0].create_timestamp).tz_convert("UTC") if tagged else None
    return retraining.Cursor(last, tuple(r.dagster_run.tags[FINGERPRINT_TAG] for r in reversed(tagged)))


def evaluate(
    instance: dg.DagsterInstance,
    model_registry: ModelRegistryResource,
    policy: retraining.Policy,
    cursor: retraining.Cursor,
    log: Any,
) -> tuple[retraining.Decision, retraining.Facts, retraining.Cursor]:
    """One evaluation of the policy (both sensors): the decision, the facts it was made on and the memory it
    used (``cursor`` merged with the instance's retrain runs); logged either way."""
    facts = gather_facts(instance, model_registry)
    memory = cursor.merge(requested_retrains(instance))
    decision = retraining.decide(facts, memory, policy)
    log.info(decision.reason if decision.retrain else f"skip: {decision.reason}")
    return decision, facts, memory


def _request(decision: retraining.Decision) -> dg.RunRequest:
    return dg.RunRequest(run_key=decision.run_key, run_config=with_quiet_console(), tags=decision.tags)


@dg.sensor(
    job=retrain_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Requests `retrain` on data drift, a realised performance drop or model age (data time); "
    "never within the cooldown, without new data, twice on the same data, or while a pipeline run is in flight. "
    "`retraining_after_pipeline_run` decides the same as soon as a drop's run ends; this tick catches the rest "
    "(a cooldown that has run out).",
)
def retraining_sensor(
    context: dg.SensorEvaluationContext,
    retraining_policy: RetrainingPolicyResource,
    model_registry: ModelRegistryResource,
) -> dg.SensorResult | dg.SkipReason:
    """Evaluate the retraining policy on the latest monitoring facts."""
    cursor = retraining.Cursor.parse(context.cursor)
    decision, facts, memory = evaluate(
        context.instance, model_registry, retraining_policy.policy(), cursor, context.log
    )
    if not decision.retrain:
        return dg.SkipReason(decision.reason)
    assert decision.run_key is not None and facts.data_fingerprint is not None
    return dg.SensorResult(
        run_requests=[_request(decision)],
        cursor=memory.after_request(facts.now, facts.data_fingerprint).dump(),
    )


@dg.run_status_sensor(
    name="retraining_after_pipeline_run",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_job, full_build_job],
    request_job=retrain_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="The retraining policy of `retraining_sensor`, evaluated as soon as an `ingest_drop` or "
    "`full_build` run succeeds (its drift report and performance are then fresh) instead of on the next 60 s tick.",
)
def retraining_after_pipeline_run(
    context: dg.RunStatusSensorContext,
    retraining_policy: RetrainingPolicyResource,
    model_registry: ModelRegistryResource,
) -> dg.RunRequest | dg.SkipReason:
    """Evaluate the retraining policy right after a drop's run (or a full build) succeeded."""
    decision, _, _ = evaluate(
        context.instance, model_registry, retraining_policy.policy(), retraining.Cursor(), context.log
    )
    if not decision.retrain:
        return dg.SkipReason(
            f"after {context.dagster_run.job_name} {context.dagster_run.run_id[:8]}: {decision.reason}"
        )
    return _request(decision)
