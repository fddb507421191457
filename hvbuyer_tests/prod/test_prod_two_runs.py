"""Two runs at once, their steps on both Celery workers: the run queue starts both (several runs at once are
allowed, deploy/dagster.yaml), their events show that each started before the other ended, and each worker (one
step at a time, prefetching one) takes one of the two steps.

The workers stop consuming the step queue until both runs have submitted their step, as an operator pausing the
workers would, so that both steps are waiting at the same moment whatever the box's load (otherwise the faster
run could finish before the slower one submits). Which worker executed a step is what the worker itself
recorded in the run's event log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery

from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, Runs, wait_for
from hvbuyer_tests.prod.scenario import Drifted

pytestmark = PROD_MARKS
# Two assets computed from the same cleaned tables, neither read by the other's run.
SELECTIONS = (["customer_features"], ["training_set"])


@contextmanager
def workers_paused(prod: Deployment) -> Iterator[None]:
    """The deployment's workers stop consuming the step queue inside the block, and consume again after it."""
    queue = prod.env.get("HVBUYER_CELERY_QUEUES", "dagster")
    app = Celery(broker=prod.env["HVBUYER_CELERY_BROKER"])
    try:
        names = [name for reply in app.control.ping(timeout=2.0) for name in reply]
        assert sorted(n.split("@", 1)[0] for n in names) == sorted(prod.worker_names()), names
        app.control.cancel_consumer(queue, destination=names, reply=True)
        try:
            yield
        finally:
            replies = app.control.add_consumer(queue, destination=names, reply=True)
            assert len(replies) == len(names), replies
    finally:
        app.close()


def submitted(runs: Runs, run_id: str) -> bool:
    return any("Submitting celery task" in str(e.get("message")) for e in runs.step_events(run_id))


def test_two_runs_at_once_execute_their_steps_on_both_workers(prod: Deployment, drifted: Drifted) -> None:
    assert drifted.retrain.run["status"] == "SUCCESS"
    runs = Runs(prod)
    with workers_paused(prod):
        run_ids = [runs.launch("full_build", assets=assets) for assets in SELECTIONS]
        wait_for(lambda: all(submitted(runs, r) for r in run_ids), "both runs submitted their step", timeout=300)
    finished = [runs.wait_run(r) for r in run_ids]
    assert [r["status"] for r in finished] == ["SUCCESS", "SUCCESS"], finished

    # The two runs overlapped in time: each started before the other ended.
    (start_a, end_a), (start_b, end_b) = (runs.span(r) for r in run_ids)
    assert start_a < end_b and start_b < end_a, {"a": (start_a, end_a), "b": (start_b, end_b)}

    executed = {run_id: runs.celery_workers(run_id) for run_id in run_ids}
    assert [set(steps) for steps in executed.values()] == [set(s) for s in SELECTIONS], executed
    workers = [next(iter(steps.values())) for steps in executed.values()]
    assert sorted(workers) == sorted(prod.worker_names()), f"steps per run and worker: {executed}"
