"""PostgreSQL restarted while the platform is idle (the session's throwaway cluster, which holds the Dagster instance
and the MLflow store; ``pg_ctl restart -m fast`` closes every connection): the webserver answers at once (its first
query to each storage), the daemon heartbeats again, the MLflow server and the API follow the registry again, the
next drop is processed, and no run or event recorded before the restart is lost."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import psycopg2

from hvbuyer_assets import registry
from hvbuyer_tests.prod.deployment import (
    PROD_MARKS,
    Deployment,
    Runs,
    api_get,
    boot,
    step_start_pids,
    wait_for,
)
from hvbuyer_tests.prod.pg_cluster import PgCluster
from hvbuyer_tests.prod.scenario import RAW_SENSOR, DropCalendar

pytestmark = PROD_MARKS
DROP = "afterpg"
# How a step failure reads when its connection to the instance's PostgreSQL was lost in the outage.
DATABASE_LOST = re.compile(r"OperationalError|server closed the connection|too many retries for DB connection")


def recorded(prod: Deployment) -> tuple[dict[str, str], dict[str, int]]:
    """What the instance's database holds: status per run id and events per run id (straight from PostgreSQL)."""
    with psycopg2.connect(boot.libpq_dsn(prod.env["DAGSTER_PG_URL"]), connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, status FROM runs")
        runs = dict(cur.fetchall())
        cur.execute("SELECT run_id, count(*) FROM event_logs GROUP BY run_id")
        events = dict(cur.fetchall())
    conn.close()
    return runs, events


def webserver_answers_every_storage(prod: Deployment, run_id: str) -> None:
    """The webserver's first query to each storage after a restart answers (runs, schedules' sensor ticks, event
    log): no connection that the restart closed is reused (``--db-pool-recycle 0``, scripts/prod_stack.py); with
    the webserver's default pool, each of these queries answers 500 once ("server closed the connection
    unexpectedly")."""
    runs = Runs(prod)
    assert runs.all(runIds=[run_id])
    assert runs.sensor_state(RAW_SENSOR, ticks=1)["ticks"]
    assert runs.step_events(run_id)


def daemons_since(prod: Deployment, since: float) -> bool:
    """Every required daemon is healthy and has sent a heartbeat after ``since`` (epoch seconds)."""
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy lastHeartbeatTime } } } }"
    data = prod.graphql(query)
    required = [s for s in data["instance"]["daemonHealth"]["allDaemonStatuses"] if s["required"]]
    return bool(required) and all(s["healthy"] and (s["lastHeartbeatTime"] or 0) > since for s in required)


def test_postgres_restart_while_idle_loses_nothing_and_the_next_drop_is_processed(
    prod: Deployment, pg_cluster: PgCluster, later_drops: DropCalendar, tmp_path: Path
) -> None:
    runs = Runs(prod)
    runs.wait_idle()
    runs_before, events_before = recorded(prod)
    assert runs_before and sum(events_before.values()) > 0

    pg_cluster.restart()
    restarted = time.time()

    # The webserver answers from the instance database at once, the daemon (sensors, run queue, monitoring,
    # retries) heartbeats through it again, the MLflow server answers from its store, the API follows the registry.
    webserver_answers_every_storage(prod, next(iter(runs_before)))
    wait_for(lambda: daemons_since(prod, restarted), "every daemon heartbeating after the restart", timeout=180)
    assert {r["runId"] for r in runs.all()} == set(runs_before)
    champion = registry.champion(registry.client(prod.env["MLFLOW_TRACKING_URI"]))
    assert champion is not None
    wait_for(
        lambda: api_get(prod, "/health/ready").json().get("status") == "ready",
        "API readiness ready after the restart",
        timeout=60,
    )

    # The next drop: raw sensor -> ingest_drop on the workers, recorded in the restarted database.
    later_drops.write(tmp_path, DROP)
    boot.upload_drop(prod.env, tmp_path, name=DROP)
    ingest = runs.wait_finished("ingest_drop", tags=[{"key": "hvbuyer/drop", "value": DROP}])
    assert ingest["status"] == "SUCCESS", [e.get("message") for e in runs.step_events(ingest["runId"])][-20:]

    # Nothing recorded before the restart is lost: every run with its status, every event of every run.
    runs_after, events_after = recorded(prod)
    assert {run_id: runs_after.get(run_id) for run_id in runs_before} == runs_before
    assert {run_id: events_after.get(run_id) for run_id in events_before} == events_before
    assert ingest["runId"] in runs_after and events_after[ingest["runId"]] > 0


def test_postgres_stopped_immediately_mid_run_then_started_the_work_still_finishes(
    prod: Deployment, pg_cluster: PgCluster
) -> None:
    """PostgreSQL quits at once (``pg_ctl stop -m immediate``, as a crash) while a retraining runs, and is started
    again: the run does not hang, the daemon heartbeats again, and the retraining ends in success: the run itself,
    the instance's retry of it, or (when a step's own instance query hit the outage, a step failure that names the
    lost database) its re-execution from failure."""
    runs = Runs(prod)
    runs.wait_idle()
    run_id = runs.launch("retrain")
    wait_for(lambda: any(s == "trained_model" for s, _ in step_start_pids(prod, run_id)), "trained_model started")
    pg_cluster.stop(mode="immediate")
    try:
        time.sleep(3)  # down while the step runs and reports its events (not a timing assumption: any time will do)
    finally:
        pg_cluster.start()
    restarted = time.time()
    webserver_answers_every_storage(prod, run_id)
    wait_for(lambda: daemons_since(prod, restarted), "every daemon heartbeating after the restart", timeout=180)
    every = runs.wait_idle()
    family = [r for r in every if r["runId"] == run_id or {"key": "dagster/root_run_id", "value": run_id} in r["tags"]]
    outcome = {r["runId"]: (r["status"], [e.get("message") for e in runs.step_events(r["runId"])][-8:]) for r in family}
    print(f"[prod] the run and its retries after PostgreSQL quit mid-run: {outcome}")
    if not any(r["status"] == "SUCCESS" for r in family):
        # A step whose own instance query lands in the outage fails (dagster-postgres retries a connection for ~6 s;
        # run retries do not re-run a step failure, so that a data error is not retried): the failure must name the
        # lost database, and re-executing from failure, as a user would from the UI, finishes the work.
        failed = [r for r in family if r["status"] == "FAILURE"][-1]
        errors = [
            json.dumps(e["error"])
            for e in runs.step_events(failed["runId"])
            if e["__typename"] == "ExecutionStepFailureEvent" and e.get("error")
        ]
        assert errors and all(DATABASE_LOST.search(error) for error in errors), (outcome, errors)
        again = runs.wait_run(runs.reexecute_from_failure(failed["runId"]))
        assert again["status"] == "SUCCESS", (outcome, runs.step_events(again["runId"])[-8:])
