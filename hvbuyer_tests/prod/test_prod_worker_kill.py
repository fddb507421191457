"""A Celery worker killed (SIGKILL, the whole worker: main process and pool child) in the middle of a step: the
broker redelivers the unacknowledged step (task_acks_late + task_reject_on_worker_lost, deploy/celery_worker.yaml)
to the other worker, the run succeeds, its outputs equal an undisturbed run's, and ``up`` restarts exactly the
killed worker."""

from __future__ import annotations

import time

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, FirstBuild, Runs
from hvbuyer_tests.prod.test_prod_loop import STEP_START, data_path, s3_filesystem

pytestmark = PROD_MARKS
VICTIM_STEP = "trained_model"  # a step of the retrain job that runs for a few seconds


def scores(prod: Deployment) -> pa.Table:
    """The stored scores without ``scored_at`` (the time of scoring differs between any two runs)."""
    table = pq.read_table(data_path(prod, "scores/customer_scores.parquet"), filesystem=s3_filesystem(prod))
    return table.drop_columns(["scored_at"])


def worker_running(prod: Deployment, run_id: str, step: str, timeout: float = 600.0) -> str:
    """The worker whose log shows ``step`` of ``run_id`` starting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in prod.worker_names():
            for line in (prod.logs / f"{name}.log").read_text().splitlines():
                match = STEP_START.search(line)
                if match and match.group(1) == step and run_id in line:
                    return name
        time.sleep(0.2)
    raise AssertionError(f"step {step} of run {run_id} did not start on any worker within {timeout:.0f} s")


def test_worker_killed_mid_step_the_step_is_redelivered_and_the_run_succeeds(
    prod: Deployment, first_build: FirstBuild
) -> None:
    assert first_build.run["status"] == "SUCCESS"
    runs = Runs(prod)
    before = scores(prod)

    run_id = runs.launch("retrain")  # on the data already ingested: the same model, the same scores
    victim = worker_running(prod, run_id, VICTIM_STEP)
    proc = prod.running(victim)
    assert proc is not None
    tree = [proc, *proc.children(recursive=True)]
    for member in tree:
        member.kill()
    psutil.wait_procs(tree, timeout=10)
    survivor = next(name for name in prod.worker_names() if name != victim)

    run = runs.wait_run(run_id)
    events = runs.step_events(run_id)
    assert run["status"] == "SUCCESS", [e.get("message") for e in events if "Failure" in e["__typename"]]
    survivor_log = (prod.logs / f"{survivor}.log").read_text()
    assert any(
        run_id in line and (m := STEP_START.search(line)) and m.group(1) == VICTIM_STEP
        for line in survivor_log.splitlines()
    ), f"{VICTIM_STEP} was not re-executed on {survivor}"
    after = scores(prod)
    assert after.num_rows == before.num_rows > 0 and after.equals(before)

    # `up` is idempotent: it starts only what is not running, here the killed worker.
    assert prod.running(victim) is None
    assert list(prod.up(say=lambda _: None)) == [victim]
