"""The three retraining knobs, set as environment variables, change what the real retraining sensor decides on
real monitoring assets: HVBUYER_MAX_MODEL_AGE_DAYS (model-age trigger), HVBUYER_MIN_NEW_DATA_DAYS (new-data
guard) and HVBUYER_RETRAIN_COOLDOWN_HOURS (cooldown guard).

The built workspace's champion was trained on data as of 2026-06-30; two later no-drift drops of 30 days each
are ingested (real ``ingest_drop`` runs: drift report, performance, in a real instance), which makes the
champion 30 and then 60 days old in data time."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from hvbuyer_tests.pipeline import Workspace, execute_job, write_drop

KNOBS = ("HVBUYER_MAX_MODEL_AGE_DAYS", "HVBUYER_MIN_NEW_DATA_DAYS", "HVBUYER_RETRAIN_COOLDOWN_HOURS")


class Loop:
    """The project's jobs and the retraining sensor on one instance, resources read from the environment."""

    def __init__(self, workspace: Workspace, instance: dg.DagsterInstance) -> None:
        self.workspace, self.instance = workspace, instance
        self.cursor: str | None = None

    def _defs(self) -> tuple[dg.Definitions, dict]:
        from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
        from hvbuyer_assets.defs.jobs import JOBS
        from hvbuyer_assets.defs.sensors.retraining import retraining_sensor

        resources = build_resources(self.workspace.settings)  # reads the knobs from the environment now
        defs = dg.Definitions(
            assets=ALL_ASSETS,
            jobs=JOBS,
            sensors=[retraining_sensor],
            resources=resources,
            executor=dg.in_process_executor,
        )
        return defs, resources

    def ingest(self, name: str, as_of: str, days: int) -> None:
        write_drop(self.workspace.raw, as_of, drop=name, days=days)
        execute_job(self._defs()[0], self.instance, "ingest_drop")  # the new drop's partition (as the sensor adds)

    def tick(self, monkeypatch: pytest.MonkeyPatch, **knobs: str) -> dg.SensorExecutionData:
        """One tick of the real sensor with exactly these knobs in the environment (cursor carried over)."""
        for name in KNOBS:
            monkeypatch.delenv(name, raising=False)
        for name, value in knobs.items():
            monkeypatch.setenv(name, value)
        defs, resources = self._defs()
        sensor = defs.get_sensor_def("retraining_sensor")
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            sensor_name=sensor.name,
            resources={key: resources[key] for key in sensor.required_resource_keys},
        )
        result = sensor.evaluate_tick(context)
        if result.cursor is not None:
            self.cursor = result.cursor
        return result


@pytest.fixture
def loop(workspace_copy: Workspace) -> Iterator[Loop]:
    with dg.instance_for_test() as instance:
        yield Loop(workspace_copy, instance)


def _skip(result: dg.SensorExecutionData) -> str:
    assert not result.run_requests, [r.tags for r in result.run_requests]
    assert result.skip_message
    return result.skip_message


def test_each_retraining_knob_takes_effect_through_the_environment(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    loop.ingest("aug", as_of="2026-07-30", days=30)  # the champion is now 30 days old in data time

    # Defaults (120 d): no trigger, and the message quotes the default.
    assert "of data <= 120 d" in _skip(loop.tick(monkeypatch))

    # HVBUYER_MAX_MODEL_AGE_DAYS below the age: the model-age trigger fires...
    # ...unless HVBUYER_MIN_NEW_DATA_DAYS asks for more new data than these 30 days.
    reason = _skip(loop.tick(monkeypatch, HVBUYER_MAX_MODEL_AGE_DAYS="20", HVBUYER_MIN_NEW_DATA_DAYS="45"))
    assert "model age 30 d of data > 20 d" in reason and "not enough new data" in reason and "< 45 d" in reason

    request = loop.tick(monkeypatch, HVBUYER_MAX_MODEL_AGE_DAYS="20")
    assert len(request.run_requests) == 1
    assert request.run_requests[0].tags["hvbuyer/trigger"] == "model age 30 d of data > 20 d"

    # New data (another 30 days): the trigger holds again, but the request above was seconds ago.
    loop.ingest("sep", as_of="2026-08-29", days=30)
    reason = _skip(loop.tick(monkeypatch, HVBUYER_MAX_MODEL_AGE_DAYS="20"))
    assert "in cooldown" in reason and "(< 6 h)" in reason  # the default cooldown
    reason = _skip(loop.tick(monkeypatch, HVBUYER_MAX_MODEL_AGE_DAYS="20", HVBUYER_RETRAIN_COOLDOWN_HOURS="2"))
    assert "in cooldown" in reason and "(< 2 h)" in reason
    again = loop.tick(monkeypatch, HVBUYER_MAX_MODEL_AGE_DAYS="20", HVBUYER_RETRAIN_COOLDOWN_HOURS="0")
    assert len(again.run_requests) == 1
    assert again.run_requests[0].tags["hvbuyer/trigger"] == "model age 60 d of data > 20 d"
    assert again.run_requests[0].run_key != request.run_requests[0].run_key


def test_a_knob_that_is_not_a_number_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from hvbuyer_assets.definitions import build_resources

    monkeypatch.setenv("HVBUYER_RETRAIN_COOLDOWN_HOURS", "six")
    with pytest.raises(ValueError, match="HVBUYER_RETRAIN_COOLDOWN_HOURS"):
        build_resources()
