"""A Celery worker killed (SIGKILL, the whole worker: main process and pool child) in the middle of a step: the
broker redelivers the unacknowledged step (task_acks_late + task_reject_on_worker_lost, deploy/celery_worker.yaml)
to the other worker, the run succeeds, its outputs equal an undisturbed run's, and ``up`` restarts exactly the
killed worker."""

from __future__ import annotations

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, Runs, step_start_pids, wait_for, worker_of
from hvbuyer_tests.prod.scenario import Drifted, data_path, s3_filesystem

pytestmark = PROD_MARKS
VICTIM_STEP = "trained_model"  # a step of the retrain job that runs for a few seconds


def scores(prod: Deployment) -> pa.Table:
    """The stored scores without ``scored_at`` (the time of scoring differs between any two runs)."""
    table = pq.read_table(data_path(prod, "scores/customer_scores.parquet"), filesystem=s3_filesystem(prod))
    return table.drop_columns(["scored_at"])


def worker_running(prod: Deployment, run_id: str, step: str, timeout: float = 600.0) -> tuple[str, int]:
    """The worker (and pid) executing ``step`` of ``run_id``, as soon as its STEP_START is in the event log."""

    def running() -> tuple[str, int] | None:
        for started, pid in step_start_pids(prod, run_id):
            if started == step and (name := worker_of(prod, pid)) is not None:
                return name, pid
        return None

    return wait_for(running, f"step {step} of run {run_id} started on a worker", timeout)


def test_worker_killed_mid_step_the_step_is_redelivered_and_the_run_succeeds(
    prod: Deployment, drifted: Drifted
) -> None:
    assert drifted.retrain.run["status"] == "SUCCESS"
    runs = Runs(prod)
    before = scores(prod)

    # On the data the drift retraining used (the tests adding data run later): the same model, the same scores.
    run_id = runs.launch("retrain")
    victim, _ = worker_running(prod, run_id, VICTIM_STEP)
    survivor = next(name for name in prod.worker_names() if name != victim)
    survivor_pids = {p.pid for p in [prod.running(survivor), *prod.running(survivor).children(recursive=True)]}
    proc = prod.running(victim)
    assert proc is not None
    tree = [proc, *proc.children(recursive=True)]
    for member in tree:
        member.kill()
    psutil.wait_procs(tree, timeout=10)

    run = runs.wait_run(run_id)
    events = runs.step_events(run_id)
    assert run["status"] == "SUCCESS", [e.get("message") for e in events if "Failure" in e["__typename"]]
    starts = [pid for step, pid in step_start_pids(prod, run_id) if step == VICTIM_STEP]
    assert len(starts) == 2 and starts[-1] in survivor_pids, f"{VICTIM_STEP} was not re-executed on {survivor}"
    after = scores(prod)
    assert after.num_rows == before.num_rows > 0 and after.equals(before)

    # `up` is idempotent: it starts only what is not running, here the killed worker.
    assert prod.running(victim) is None
    assert list(prod.up(say=lambda _: None)) == [victim]
