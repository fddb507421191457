"""Drop runs never overlap in production mode: the run queue's tag concurrency limit (``dagster/partition``: 1,
deploy/dagster.yaml) holds a run of a drop partition back while another runs. An operator's backfill from the UI
(``launchPartitionBackfill``: the customers' raw and clean assets over two drops at once) yields one run per drop,
and their events show that they ran one after the other; so did every drop run of the session (the sensor's, the
operator's, the retries)."""

from __future__ import annotations

from hvbuyer_tests.prod.deployment import FINISHED, PROD_MARKS, Deployment, Runs, run_tags, wait_for
from hvbuyer_tests.prod.scenario import DRIFT_DROP, Drifted

pytestmark = PROD_MARKS
ASSETS = ["raw_customers", "clean_customers", "quarantined_customers"]  # two steps per drop


def test_drop_runs_of_a_ui_backfill_and_of_the_whole_session_never_overlap(prod: Deployment, drifted: Drifted) -> None:
    assert drifted.ingest.run["status"] == "SUCCESS"
    runs = Runs(prod)
    runs.wait_idle()
    drops = ["default", DRIFT_DROP["drop"]]
    mutation = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
        __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
    params = {"assetSelection": [{"path": [name]} for name in ASSETS], "partitionNames": drops, "fromFailure": False}
    launched = prod.graphql(mutation, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched

    def backfilled() -> list[dict] | None:
        found = [r for r in runs.all() if run_tags(r).get("dagster/backfill") == launched["backfillId"]]
        return found if len(found) == len(drops) and all(r["status"] in FINISHED for r in found) else None

    done = wait_for(backfilled, f"backfill {launched['backfillId']}: one finished run per drop", timeout=900)
    assert sorted(run_tags(r)["dagster/partition"] for r in done) == sorted(drops)
    assert [r["status"] for r in done] == ["SUCCESS", "SUCCESS"], done

    # No two runs of drop partitions (this backfill's and every earlier one) were in flight at the same time.
    drop_runs = [r for r in runs.wait_idle() if "dagster/partition" in run_tags(r) and r["status"] in FINISHED]
    spans = sorted((runs.span(r["runId"]), r["runId"], run_tags(r)["dagster/partition"]) for r in drop_runs)
    assert len(spans) >= 3, spans
    for ((_, end), before, _), ((start, _), after, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"drop runs overlapped: {before} ended after {after} started: {spans}"
