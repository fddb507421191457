"""The S3 endpoint down while a drop lands: the ingest run fails, the drop is not consumed (no run succeeds and the
sensor requests nothing while the endpoint is down), and once the endpoint is back the raw sensor's retry
processes it. "Down" = the loopback switch in front of the S3 server refuses connections (moto keeps its objects
in memory, so stopping it would lose them)."""

from __future__ import annotations

from pathlib import Path

from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, Runs, Switch, boot, wait_for
from hvbuyer_tests.prod.scenario import RAW_SENSOR, DropCalendar

pytestmark = PROD_MARKS
DROP = "late"
TICKS_WHILE_DOWN = 2  # raw sensor ticks that must request nothing while the endpoint is down


def drop_runs(runs: Runs) -> list[dict]:
    return runs.all(tags=[{"key": "hvbuyer/drop", "value": DROP}])


def test_s3_down_while_a_drop_lands_run_fails_drop_waits_then_is_processed(
    prod: Deployment, later_drops: DropCalendar, s3_switch: Switch, tmp_path: Path
) -> None:
    runs = Runs(prod)
    later_drops.write(tmp_path, DROP)
    boot.upload_drop(prod.env, tmp_path, name=DROP)

    wait_for(lambda: drop_runs(runs), "the raw sensor requested a run for the drop", timeout=300)
    s3_switch.off()
    try:
        first = runs.wait_run(drop_runs(runs)[0]["runId"])
        assert first["status"] == "FAILURE"
        # Several sensor ticks with the endpoint down (each finished after the run failed) request nothing.
        failed_at = first["endTime"]

        def ticks_since_failure() -> list[dict]:
            ticks = runs.sensor_state(RAW_SENSOR, ticks=10)["ticks"]
            done = [t for t in ticks if t["timestamp"] > failed_at and t["status"] in ("SKIPPED", "SUCCESS", "FAILURE")]
            return done if len(done) >= TICKS_WHILE_DOWN else []

        ticks = wait_for(ticks_since_failure, f"{TICKS_WHILE_DOWN} raw sensor ticks with S3 down", timeout=120)
        assert [r["status"] for r in drop_runs(runs)] == ["FAILURE"], "the drop was retried while S3 was down"
        assert all(t["status"] != "SUCCESS" for t in ticks), ticks
    finally:
        s3_switch.on()

    def settled() -> list[dict] | None:
        found = drop_runs(runs)
        statuses = [r["status"] for r in found]
        return found if "SUCCESS" in statuses or statuses.count("FAILURE") > 1 else None

    retried = wait_for(settled, "the drop's retry finished", timeout=600)
    assert [r["status"] for r in retried] == ["FAILURE", "SUCCESS"], retried
    tags = {t["key"]: t["value"] for t in retried[1]["tags"]}
    assert tags["dagster/run_key"].endswith("-retry1") and tags["hvbuyer/attempt"] == "1"
