"""The S3 endpoint down while a drop lands: the ingest run fails, the drop is not consumed (no run succeeds and the
sensor requests nothing while the endpoint is down), and once the endpoint is back the raw sensor's retry
processes it. "Down" = the loopback switch in front of the S3 server refuses connections (moto keeps its objects
in memory, so stopping it would lose them)."""

from __future__ import annotations

import time
from pathlib import Path

from hvbuyer_assets import datagen
from hvbuyer_tests.pipeline import SAMPLE_CUSTOMERS, SAMPLE_SEED
from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, FirstBuild, Runs, Switch, boot

pytestmark = PROD_MARKS
DROP = "late"


def drop_runs(runs: Runs) -> list[dict]:
    return sorted(runs.all(tags=[{"key": "hvbuyer/drop", "value": DROP}]), key=lambda r: r["startTime"] or float("inf"))


def test_s3_down_while_a_drop_lands_run_fails_drop_waits_then_is_processed(
    prod: Deployment, first_build: FirstBuild, s3_switch: Switch, tmp_path: Path
) -> None:
    assert first_build.run["status"] == "SUCCESS"
    runs = Runs(prod)
    # Two more months of the same customers after the drifted drop (to 2026-11-25), no drift.
    datagen.write_drop(tmp_path, SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, drop=DROP, as_of="2027-01-24", days=60)
    boot.upload_drop(prod.env, tmp_path, name=DROP)

    deadline = time.monotonic() + 300
    while not drop_runs(runs) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert drop_runs(runs), "the raw sensor requested no run for the drop"
    s3_switch.off()
    try:
        first = runs.wait_run(drop_runs(runs)[0]["runId"])
        assert first["status"] == "FAILURE"
        time.sleep(20)  # several sensor ticks (5 s) with the endpoint down
        assert [r["status"] for r in drop_runs(runs)] == ["FAILURE"], "the drop was retried while S3 was down"
    finally:
        s3_switch.on()

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        statuses = [r["status"] for r in drop_runs(runs)]
        if "SUCCESS" in statuses or statuses.count("FAILURE") > 1:
            break
        time.sleep(3)
    retried = drop_runs(runs)
    assert [r["status"] for r in retried] == ["FAILURE", "SUCCESS"], retried
    tags = {t["key"]: t["value"] for t in retried[1]["tags"]}
    assert tags["dagster/run_key"].endswith("-retry1") and tags["hvbuyer/attempt"] == "1"
