"""The raw drop sensor's decisions as plain functions: completion rule, new files, run keys, retries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hvbuyer_assets.core import drops

BASE = {"customers.csv": "100-1", "transactions.json": "900-1"}


def test_file_kinds_and_drop_names() -> None:
    assert drops.file_kind("customers_q3.csv") == "customers"
    assert drops.file_kind("transactions_q3.jsonl") == "transactions"
    assert drops.file_kind("_SUCCESS_q3") == "marker"
    assert drops.file_kind(".customers_q3.csv.1234.tmp") is None  # datagen's atomic temp file
    assert drops.file_kind(".customers_q3.csv") is None  # hidden
    assert drops.file_kind("notes.txt") is None
    assert drops.file_kind("sub/customers.csv") is None  # only direct children of the raw location
    assert drops.drop_name("customers_q3.csv") == "q3"
    assert drops.drop_name("transactions_q3.json") == "q3"
    assert drops.drop_name("_SUCCESS_q3") == "q3"
    assert drops.drop_name("customers.csv") == ""
    assert drops.drop_name("_SUCCESS") == ""
    with pytest.raises(ValueError, match="notes.txt"):
        drops.drop_name("notes.txt")


def test_versions_change_with_size_mtime_and_etag() -> None:
    assert drops.local_version(10, 5) != drops.local_version(11, 5) != drops.local_version(11, 6)
    when = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert drops.s3_version('"abc"', when) == f"abc-{int(when.timestamp())}"


def test_a_declared_arrival_is_iso_8601_in_utc_and_anything_else_is_refused() -> None:
    assert drops.ARRIVAL_KEY == "arrived-at"  # what writers put in their S3 object metadata (data-contract.md)
    assert drops.declared_arrival("2026-07-01T00:00:00Z") == datetime(2026, 7, 1, tzinfo=UTC)
    assert drops.declared_arrival(" 2026-07-01T02:30:00+02:00 ") == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    assert drops.declared_arrival("2026-07-01") == datetime(2026, 7, 1, tzinfo=UTC)  # no offset: UTC
    assert drops.declared_arrival("2099-07-01T00:00:00Z").year == 2099  # any date: the writer's word
    for bad in ("next tuesday", "07/01/2026", "", "1719792000"):
        with pytest.raises(ValueError, match=r"metadata arrived-at=.* is not an ISO 8601 timestamp"):
            drops.declared_arrival(bad)


def _files(drops_: list[drops.Drop]) -> dict[str, str]:
    return {name: v for d in drops_ for name, v in d.files.items()}


def _labels(drops_: list[drops.Drop]) -> list[str]:
    return [drops.label(d.name) for d in drops_]


def test_a_new_drop_is_requested_once_it_is_stable() -> None:
    first = drops.plan(BASE, previous={}, consumed={})
    assert not first.new and first.waiting == [
        "drop default: waiting for customers.csv, transactions.json to settle (new or changed since the last tick)"
    ]
    second = drops.plan(BASE, previous=BASE, consumed={})
    assert _files(second.new) == BASE and _files(second.ready) == BASE and _labels(second.new) == ["default"]
    decision = drops.decide(second, {})
    assert decision.run_key == drops.run_key(BASE) and decision.attempt == 0 and decision.drop == second.new[0]


def test_files_read_by_a_successful_run_are_consumed_and_stable() -> None:
    # `make run` materialized once from the CLI: the sensor's first tick (no cursor) must not rebuild.
    the_plan = drops.plan(BASE, previous={}, consumed=BASE)
    assert _files(the_plan.ready) == BASE and not the_plan.new
    assert drops.decide(the_plan, {}).skip_reason == "no new raw files (2 files, all read by a successful run)"
    assert drops.decide(drops.plan({}, {}, {}), {}).skip_reason == "no raw drop files yet"


def test_a_growing_file_is_never_consumed() -> None:
    observed = {**BASE, "customers_q1.csv": "50-2", "transactions_q1.json": "70-2"}
    growing = {**observed, "transactions_q1.json": "90-3"}
    the_plan = drops.plan(growing, previous=observed, consumed=BASE)
    assert not the_plan.new
    assert "transactions_q1.json to settle" in drops.decide(the_plan, {}).skip_reason
    settled = drops.plan(growing, previous=growing, consumed=BASE)
    assert _files(settled.new) == {"customers_q1.csv": "50-2", "transactions_q1.json": "90-3"}
    assert _files(settled.ready) == growing  # every complete drop is a partition ...
    decision = drops.decide(settled, {})  # ... but the run reads the new drop only
    assert decision.drop is not None and decision.run_key == drops.run_key(decision.drop.files)
    assert decision.drop.files == {"customers_q1.csv": "50-2", "transactions_q1.json": "90-3"}


def test_a_drop_in_two_parts_waits_for_its_second_half() -> None:
    half = {**BASE, "customers_q2.csv": "50-2"}
    for previous in ({}, half):
        the_plan = drops.plan(half, previous=previous, consumed=BASE)
        assert not the_plan.new
        assert _files(the_plan.ready) == BASE  # the half drop is not read
        reason = drops.decide(the_plan, {}).skip_reason
        assert "drop q2: waiting for transactions_q2.json(l) (or a _SUCCESS_q2 marker)" in reason
    whole = {**half, "transactions_q2.json": "70-3"}
    assert not drops.plan(whole, previous=half, consumed=BASE).new  # the second half has to settle
    done = drops.plan(whole, previous=whole, consumed=BASE)
    assert _labels(done.new) == ["q2"] and set(_files(done.new)) == {"customers_q2.csv", "transactions_q2.json"}


def test_a_marker_completes_a_drop_at_once_even_with_one_half() -> None:
    observed = {**BASE, "transactions_q3.jsonl": "70-3", "_SUCCESS_q3": "0-3"}
    the_plan = drops.plan(observed, previous={}, consumed=BASE)
    assert _files(the_plan.new) == {"transactions_q3.jsonl": "70-3"} and _labels(the_plan.new) == ["q3"]
    assert "_SUCCESS_q3" not in _files(the_plan.ready)  # markers are not data
    assert not drops.plan({"_SUCCESS_q4": "0-1", **BASE}, BASE, BASE).new  # a marker without data


def test_run_keys_depend_on_names_and_versions_only() -> None:
    assert drops.run_key(BASE) == drops.run_key(dict(reversed(list(BASE.items()))))
    assert drops.run_key(BASE) != drops.run_key({**BASE, "customers.csv": "101-1"})
    assert drops.run_key(BASE, 1) == drops.run_key(BASE) + "-retry1"


def test_in_flight_and_succeeded_runs_are_not_requested_again() -> None:
    the_plan = drops.plan(BASE, previous=BASE, consumed={})
    key = drops.run_key(BASE)
    in_flight = drops.decide(the_plan, {key: drops.PastRun(drops.IN_PROGRESS, "r1")})
    assert in_flight.run_key is None and "run r1" in in_flight.skip_reason and "in progress" in in_flight.skip_reason
    done = drops.decide(the_plan, {key: drops.PastRun(drops.SUCCEEDED, "r1")})
    assert done.run_key is None and "already processed by run r1" in done.skip_reason


def test_a_failed_drop_is_retried_then_waits_for_new_files_and_lets_the_next_drop_go() -> None:
    the_plan = drops.plan(BASE, previous=BASE, consumed={})
    keys = the_plan.keys(max_retries=2)
    past: dict[str, drops.PastRun] = {}
    for attempt, key in enumerate(keys):
        decision = drops.decide(the_plan, past, max_retries=2)
        assert (decision.run_key, decision.attempt) == (key, attempt)
        past[key] = drops.PastRun(drops.FAILED, f"r{attempt}")
    gave_up = drops.decide(the_plan, past, max_retries=2)
    assert gave_up.run_key is None
    assert "3 runs failed (last r2)" in gave_up.skip_reason and "new version" in gave_up.skip_reason
    # A failed drop fails only itself: the next drop gets its own run, reading its own files.
    more = {**BASE, "customers_q5.csv": "1-9", "transactions_q5.json": "2-9"}
    again = drops.decide(drops.plan(more, previous=more, consumed={}, arrivals={"customers_q5.csv": 9}), past, 2)
    q5 = {"customers_q5.csv": "1-9", "transactions_q5.json": "2-9"}
    assert again.run_key == drops.run_key(q5) and again.drop is not None and again.drop.name == "q5"
    # A new version of the failed drop's file: a new key, a run for that drop again.
    fixed = {**BASE, "customers.csv": "101-7"}
    assert drops.decide(drops.plan(fixed, fixed, {}), past).run_key == drops.run_key(fixed)


def test_drops_are_ingested_one_at_a_time_in_arrival_order() -> None:
    observed = {
        **BASE,
        "customers_b.csv": "1-2",
        "transactions_b.json": "1-2",
        "customers_a.csv": "1-3",
        "transactions_a.json": "1-3",
    }
    arrivals = {"customers.csv": 1, "transactions.json": 1, "customers_b.csv": 2, "transactions_b.json": 5}
    arrivals |= {"customers_a.csv": 3, "transactions_a.json": 4}  # a landed before b's last file: a first
    the_plan = drops.plan(observed, observed, consumed=BASE, arrivals=arrivals)
    assert _labels(the_plan.ready) == ["default", "a", "b"] and _labels(the_plan.new) == ["a", "b"]
    first = drops.decide(the_plan, {})
    assert first.drop is not None and first.drop.name == "a"
    # While a's run is queued or going, b waits (its cleaning reads a's ids).
    running = {first.run_key: drops.PastRun(drops.IN_PROGRESS, "ra")}
    waiting = drops.decide(the_plan, running)
    assert waiting.run_key is None and waiting.skip_reason == (
        f"drop a: run ra ({first.run_key}) is in progress; drop b waits for it"
    )
    # a done (its files consumed): b's turn.
    consumed = {**BASE, "customers_a.csv": "1-3", "transactions_a.json": "1-3"}
    second = drops.decide(drops.plan(observed, observed, consumed, arrivals), {})
    assert second.drop is not None and second.drop.name == "b"
    assert second.run_key == drops.run_key({"customers_b.csv": "1-2", "transactions_b.json": "1-2"})
    assert drops.drop_of_partition(drops.label("")) == "" and drops.drop_of_partition("b") == "b"


def test_job_choice_and_files_per_raw_asset() -> None:
    assert drops.choose_job(champion_exists=False, champion_materialized=False) == "full_build"
    assert drops.choose_job(champion_exists=True, champion_materialized=False) == "full_build"
    assert drops.choose_job(champion_exists=True, champion_materialized=True) == "ingest_drop"
    split = drops.split_by_kind(["transactions_q1.jsonl", "customers.csv", "_SUCCESS", "transactions.json"])
    assert split == {"customers": ["customers.csv"], "transactions": ["transactions.json", "transactions_q1.jsonl"]}


def test_a_rebuild_may_not_empty_a_stored_file() -> None:
    stored = {"customers.csv": 300, "customers_extra.csv": 0}
    problems = drops.emptied_files(stored, {"customers.csv": 0, "customers_extra.csv": 0, "customers_new.csv": 0}, "q3")
    assert problems == [
        "customers.csv: has no rows, but drop q3 is stored with 300 rows of it; a rebuild with this file would "
        "empty them, so it is refused (send the file again with its rows)"
    ]
    assert drops.emptied_files(stored, {"customers.csv": 1}, "q3") == []  # fewer rows is a re-export, not empty
    assert drops.emptied_files({}, {"customers.csv": 0}, "q3") == []  # a new drop: header-only is valid
