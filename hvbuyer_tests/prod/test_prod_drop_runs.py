"""Drop runs never overlap in production mode. A burst of drops uploaded at once: the raw sensor runs them one after
the other in arrival order, one run each, and all succeed. An operator's backfill from the UI
(``launchPartitionBackfill``: the customers' raw and clean assets over two drops at once) yields one run per drop,
which the run queue's tag concurrency limit (``dagster/partition``: 1, deploy/dagster.yaml) holds back while the
other runs. Their events show that they ran one after the other; so did every drop run of the session (the
sensor's, the operator's, the retries)."""

from __future__ import annotations

from pathlib import Path

from hvbuyer_tests.prod.deployment import FINISHED, PROD_MARKS, Deployment, Runs, boot, run_tags, wait_for
from hvbuyer_tests.prod.scenario import DRIFT_DROP, Drifted, DropCalendar

pytestmark = PROD_MARKS
ASSETS = ["raw_customers", "clean_customers", "quarantined_customers"]  # two steps per drop
BURST = ["burst1", "burst2", "burst3"]


def assert_one_after_another(runs: Runs, finished: list[dict]) -> list[tuple[tuple[float, float], str, str]]:
    """(span, run id, drop) of the runs, by start; fails naming two that were in flight at the same time."""
    spans = sorted((runs.span(r["runId"]), r["runId"], run_tags(r)["dagster/partition"]) for r in finished)
    for ((_, end), before, _), ((start, _), after, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"drop runs overlapped: {before} ended after {after} started: {spans}"
    return spans


def test_a_burst_of_drops_runs_one_drop_at_a_time_in_arrival_order(
    prod: Deployment, later_drops: DropCalendar, tmp_path: Path
) -> None:
    runs = Runs(prod)
    runs.wait_idle()
    folders = {name: tmp_path / name for name in BURST}
    for name, folder in folders.items():
        folder.mkdir()
        later_drops.write(folder, name)
    for name, folder in folders.items():  # within a second: the same raw sensor tick sees them all
        boot.upload_drop(prod.env, folder, name=name)

    def burst_runs() -> list[dict] | None:
        found = [r for r in runs.all() if run_tags(r).get("hvbuyer/drop") in BURST]
        done = {run_tags(r)["hvbuyer/drop"] for r in found if r["status"] in FINISHED}
        return found if done == set(BURST) and all(r["status"] in FINISHED for r in found) else None

    found = wait_for(burst_runs, f"a finished run for each drop of {BURST}", timeout=900)
    assert sorted((run_tags(r)["hvbuyer/drop"], r["status"]) for r in found) == [(n, "SUCCESS") for n in BURST], found
    spans = assert_one_after_another(runs, found)
    assert [drop for _, _, drop in spans] == BURST, spans


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
    assert len(assert_one_after_another(runs, drop_runs)) >= 3, drop_runs
