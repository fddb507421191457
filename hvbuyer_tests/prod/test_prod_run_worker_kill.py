"""The run worker of a run (the process the code server starts for it, DefaultRunLauncher; it sends the steps to
Celery) SIGKILLed in the middle of the run: the code server notices its child died and marks the run failed ("Run
execution process for <run> was terminated by signal 9 (SIGKILL)"; run monitoring has no health check for this
launcher: it would only time out a run stuck in STARTING), and the daemon's run retries (``run_retries``,
deploy/dagster.yaml; not a step failure) re-execute it from the failure; the retry succeeds and the scores equal
the undisturbed ones."""

from __future__ import annotations

import os

import dagster as dg
import psutil

from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, Runs, step_start_pids, wait_for
from hvbuyer_tests.prod.scenario import Drifted
from hvbuyer_tests.prod.test_prod_worker_kill import scores

pytestmark = PROD_MARKS
STEP = "trained_model"  # killed while this step of the retrain job runs on a Celery worker


def run_worker_pid(prod: Deployment, run_id: str) -> int | None:
    """The pid that recorded the run's RUN_START in the instance's event log: its run worker."""
    saved = os.environ.get("DAGSTER_PG_URL")
    os.environ["DAGSTER_PG_URL"] = prod.env["DAGSTER_PG_URL"]  # deploy/dagster.yaml reads it (env:)
    try:
        with dg.DagsterInstance.from_config(str(prod.dagster_home)) as instance:
            records = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
            return next((r.dagster_event.pid for r in records if r.dagster_event and r.dagster_event.pid), None)
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_PG_URL", None)
        else:
            os.environ["DAGSTER_PG_URL"] = saved


def test_run_worker_killed_mid_run_the_run_is_marked_failed_and_retried_to_success(
    prod: Deployment, drifted: Drifted
) -> None:
    assert drifted.retrain.run["status"] == "SUCCESS"
    runs = Runs(prod)
    runs.wait_idle()
    before = scores(prod)

    run_id = runs.launch("retrain")
    wait_for(lambda: any(s == STEP for s, _ in step_start_pids(prod, run_id)), f"{STEP} started", timeout=600)
    pid = run_worker_pid(prod, run_id)
    code_server = prod.running("code-server")
    assert pid is not None and code_server is not None
    assert pid in {p.pid for p in code_server.children(recursive=True)}, "the run worker is the code server's child"
    psutil.Process(pid).kill()

    failed = runs.wait_run(run_id)
    assert failed["status"] == "FAILURE", failed
    messages = [str(e.get("message")) for e in runs.step_events(run_id)]
    crash = f"Run execution process for {run_id}"  # the code server's report (dagster._grpc.server)
    assert any(crash in m and "SIGKILL" in m for m in messages), [m for m in messages if "process" in m]

    def retry() -> dict | None:
        children = [r for r in runs.all() if {"key": "dagster/parent_run_id", "value": run_id} in r["tags"]]
        return next((r for r in children if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")), None)

    retried = wait_for(retry, f"the instance's retry of run {run_id} finished", timeout=900)
    assert retried["status"] == "SUCCESS", [e.get("message") for e in runs.step_events(retried["runId"])][-20:]
    assert {"key": "dagster/retry_number", "value": "1"} in retried["tags"]
    runs.wait_idle()
    after = scores(prod)
    assert after.num_rows == before.num_rows > 0 and after.equals(before)
