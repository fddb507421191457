"""The retraining policy as a pure function: every trigger, every guard, and the reason it gives."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from hvbuyer_assets.core import retraining

NOW = pd.Timestamp("2026-11-26 12:00", tz="UTC")
POLICY = retraining.Policy(cooldown_hours=6, max_model_age_days=120, min_new_data_days=7)


def _facts(**changes: object) -> retraining.Facts:
    base = retraining.facts_from(
        now=NOW,
        champion_version="1",
        drift_verdict="no_drift",
        drift_reason="0/10 features drifted",
        report_version="1",
        data_as_of="2026-09-27",
        champion_data_as_of="2026-06-29",
        data_fingerprint="abc",
    )
    return dataclasses.replace(base, **changes)


def test_drift_on_new_data_requests_a_retrain_keyed_by_the_data() -> None:
    decision = retraining.decide(_facts(drift_verdict="drift", drift_reason="age PSI 0.6"), retraining.Cursor(), POLICY)
    assert decision.retrain
    assert decision.run_key == "retrain-abc"
    assert "data drift (age PSI 0.6)" in decision.tags["hvbuyer/trigger"]
    assert decision.tags["hvbuyer/data_fingerprint"] == "abc"


def test_performance_drop_and_model_age_are_triggers_too() -> None:
    degraded = retraining.decide(
        _facts(performance_degraded=True, performance_reason="AUC dropped"), retraining.Cursor(), POLICY
    )
    assert degraded.retrain and "performance drop (AUC dropped)" in degraded.reason
    old = retraining.decide(
        _facts(champion_data_as_of=pd.Timestamp("2026-04-01", tz="UTC")), retraining.Cursor(), POLICY
    )
    assert old.retrain and "model age 179 d" in old.reason


def test_no_trigger_says_what_it_looked_at() -> None:
    decision = retraining.decide(_facts(), retraining.Cursor(), POLICY)
    assert not decision.retrain and decision.run_key is None
    assert decision.reason.startswith("no trigger: drift verdict no_drift")
    assert "model age 90 d of data <= 120 d" in decision.reason


@pytest.mark.parametrize(
    ("changes", "cursor", "expected"),
    [
        ({"champion_version": None}, retraining.Cursor(), "no champion yet"),
        ({"in_flight": ("ingest_drop 1234 STARTED",)}, retraining.Cursor(), "in flight (ingest_drop 1234"),
        ({"drift_verdict": None}, retraining.Cursor(), "no drift report yet"),
        ({"report_version": "0"}, retraining.Cursor(), "compares with v0 but the champion is v1"),
        ({}, retraining.Cursor(retrained=("abc",)), "already requested: waiting for new data"),
        ({"data_as_of": pd.Timestamp("2026-07-01", tz="UTC")}, retraining.Cursor(), "not enough new data"),
        ({}, retraining.Cursor(NOW - pd.Timedelta(hours=2)), "in cooldown: last retrain requested 2.0 h ago"),
    ],
)
def test_every_guard_blocks_a_drift_trigger_with_its_reason(
    changes: dict[str, object], cursor: retraining.Cursor, expected: str
) -> None:
    decision = retraining.decide(_facts(**{"drift_verdict": "drift", **changes}), cursor, POLICY)
    assert not decision.retrain and decision.run_key is None
    assert expected in decision.reason


def test_cooldown_expires() -> None:
    cursor = retraining.Cursor(NOW - pd.Timedelta(hours=7), ("older",))
    assert retraining.decide(_facts(drift_verdict="drift"), cursor, POLICY).retrain


def test_cursor_round_trips_and_remembers_a_bounded_set_of_fingerprints() -> None:
    cursor = retraining.Cursor()
    for i in range(retraining.MAX_REMEMBERED + 5):
        cursor = cursor.after_request(NOW, f"f{i}")
    parsed = retraining.Cursor.parse(cursor.dump())
    assert parsed == cursor
    assert (
        len(parsed.retrained) == retraining.MAX_REMEMBERED
        and parsed.retrained[-1] == f"f{retraining.MAX_REMEMBERED + 4}"
    )
    assert retraining.Cursor.parse("not json") == retraining.Cursor()
    assert retraining.Cursor.parse(None) == retraining.Cursor()


def test_policy_rejects_negative_knobs() -> None:
    with pytest.raises(ValueError, match="cooldown_hours"):
        retraining.Policy(cooldown_hours=-1)


def test_merged_cursors_keep_the_later_request_and_every_fingerprint() -> None:
    early, late = pd.Timestamp("2026-11-01", tz="UTC"), pd.Timestamp("2026-11-02", tz="UTC")
    own = retraining.Cursor(early, ("a", "b"))
    merged = own.merge(retraining.Cursor(late, ("b", "c")))
    assert merged == retraining.Cursor(late, ("a", "b", "c"))
    assert retraining.Cursor().merge(retraining.Cursor()) == retraining.Cursor()
    assert own.merge(retraining.Cursor()).last_requested_at == early
    # A fingerprint the other memory holds stops a request on that data, whichever sensor made it.
    facts = _facts(drift_verdict="drift", drift_reason="x", data_fingerprint="c")
    assert not retraining.decide(facts, own.merge(retraining.Cursor(None, ("c",))), POLICY).retrain
