"""Realised performance of archived scores: archive keys, maturity, metrics and the drop rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from hvbuyer_assets.core import engine, labels, performance


def _scores(as_of: str = "2026-06-30", version: str = "3", n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "large_purchase_probability": np.linspace(0.1, 0.9, n),
            "model_version": version,
            "scored_at": pd.Timestamp("2026-11-26", tz="UTC"),
            "features_as_of": pd.Timestamp(as_of, tz="UTC"),
        }
    )


def test_archive_key_round_trips_through_the_file_stem() -> None:
    key, frame = performance.archive_frame(_scores("2026-06-30 12:34:56"))
    assert key.stem == "20260630T123456Z_v3"
    assert performance.archive_key(key.stem) == key
    assert list(frame.columns) == list(performance.ARCHIVE_COLUMNS)
    assert performance.archive_key("notes") is None


def test_archive_frame_rejects_mixed_versions_and_missing_columns() -> None:
    mixed = _scores()
    mixed.loc[0, "model_version"] = "4"
    with pytest.raises(ValueError, match="one model_version"):
        performance.archive_frame(mixed)
    with pytest.raises(ValueError, match="features_as_of"):
        performance.archive_frame(_scores().drop(columns="features_as_of"))


def test_scores_mature_when_the_data_covers_the_label_window() -> None:
    as_of = pd.Timestamp("2026-06-30", tz="UTC")
    assert not performance.is_matured(as_of, as_of + pd.Timedelta(days=89, hours=23), 90)
    assert performance.is_matured(as_of, as_of + pd.Timedelta(days=90), 90)


def test_realised_metrics_equal_sklearn_and_handle_a_single_class() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    p = np.clip(y * 0.3 + rng.random(1000) * 0.7, 0, 1)
    out = performance.realised_metrics(y, p)
    assert out["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, p), abs=1e-12)
    assert out["brier"] == pytest.approx(metrics.brier_score_loss(y, p), abs=1e-12)
    assert out["rows"] == 1000 and out["positives"] == int(y.sum())
    single = performance.realised_metrics(np.zeros(10), np.full(10, 0.2))
    assert single["roc_auc"] is None and single["brier"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="no matured rows"):
        performance.realised_metrics(np.zeros(0), np.zeros(0))


def test_compare_flags_a_drop_beyond_the_limit_only() -> None:
    rule = performance.PerformanceRule(max_auc_drop=0.05, min_rows=100)
    expected = {"roc_auc": 0.80, "brier": 0.08}
    held = performance.compare({"rows": 500, "roc_auc": 0.77, "brier": 0.085}, expected, rule)
    dropped = performance.compare({"rows": 500, "roc_auc": 0.70, "brier": 0.09}, expected, rule)
    assert not held["degraded"] and held["auc_drop"] == pytest.approx(0.03)
    assert dropped["degraded"] and "dropped" in dropped["reason"]
    assert dropped["brier_change"] == pytest.approx(0.01)
    few = performance.compare({"rows": 50, "roc_auc": 0.5, "brier": 0.2}, expected, rule)
    assert not few["degraded"] and "50 matured rows" in few["reason"]
    undefined = performance.compare({"rows": 500, "roc_auc": None, "brier": 0.1}, expected, rule)
    assert not undefined["degraded"] and "undefined" in undefined["reason"]


def _key(as_of: str, version: str) -> performance.ArchiveKey:
    return performance.ArchiveKey(pd.Timestamp(as_of, tz="UTC"), version)


def test_the_latest_matured_scoring_of_each_version_is_selected() -> None:
    keys = performance.archive_keys(
        [_key(d, v).stem for d, v in [("2026-03-01", "1"), ("2026-04-01", "1"), ("2026-05-01", "2")]]
        + [_key("2026-08-01", "1").stem, "notes", "20260101_v1"]
    )
    assert len(keys) == 4
    data_as_of = pd.Timestamp("2026-07-30", tz="UTC")  # 2026-05-01 + 90 days: just matured; 2026-08-01 is not
    latest = performance.latest_matured(keys, data_as_of, 90)
    assert latest == {"1": _key("2026-04-01", "1"), "2": _key("2026-05-01", "2")}
    assert list(latest) == ["1", "2"]
    assert performance.latest_matured(keys, data_as_of, 150) == {"1": _key("2026-03-01", "1")}
    assert performance.latest_matured(keys, pd.Timestamp("2026-05-01", tz="UTC"), 90) == {}


def test_expected_metrics_prefer_the_run_and_fall_back_to_the_tag() -> None:
    assert performance.expected_metrics(None, "0.7") == {"roc_auc": None, "brier": None}
    assert performance.expected_metrics({"roc_auc": 0.8, "brier": 0.1}, "0.7") == {"roc_auc": 0.8, "brier": 0.1}
    assert performance.expected_metrics({}, "0.700000") == {"roc_auc": 0.7, "brier": None}
    assert performance.expected_metrics({}) == {"roc_auc": None, "brier": None}


def _transactions(rows: list[tuple[str, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [f"T{i}" for i in range(len(rows))],
            "customer_id": [r[0] for r in rows],
            "amount": [r[1] for r in rows],
            "timestamp": pd.to_datetime([r[2] for r in rows], utc=True),
            "status": "completed",
        }
    )


def _frames(tx: pd.DataFrame, customer_ids: list[str]) -> engine.Frames:
    """The clean tables as the embedded engine's frames (customers' attributes do not matter to labels)."""
    customers = pd.DataFrame(
        {"customer_id": customer_ids, "signup_date": pd.NaT, "age": np.nan, "loyalty_points": np.nan, "region": None}
    )
    return engine.from_pandas(tx, customers)


def test_a_scoring_is_judged_on_its_realised_labels() -> None:
    key = _key("2026-06-30", "3")
    archived = pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "large_purchase_probability": [0.9, 0.2, 0.7, 0.1]})
    # A and C buy large inside (as_of, as_of + 90d]; B only after the window, D small.
    tx = _transactions(
        [("A", 500.0, "2026-07-10"), ("B", 500.0, "2026-10-01"), ("C", 300.0, "2026-09-28"), ("D", 20.0, "2026-07-02")]
    )
    rule = performance.PerformanceRule(max_auc_drop=0.05, min_rows=4)
    frames = _frames(tx, ["A", "B", "C", "D"])
    entry = performance.evaluate_scoring(key, archived, frames, {"roc_auc": 0.8, "brier": 0.2}, rule, 90, 300.0)
    assert entry["model_version"] == "3" and entry["scored_as_of"] == "2026-06-30T00:00:00+00:00"
    assert entry["label_window_end"] == "2026-09-28T00:00:00+00:00"
    assert entry["realised"]["positives"] == 2 and entry["realised"]["roc_auc"] == 1.0
    assert not entry["degraded"] and entry["auc_drop"] == pytest.approx(-0.2)
    assert entry["expected"] == {"roc_auc": 0.8, "brier": 0.2}


def test_status_refers_to_the_champion_only() -> None:
    data_as_of = pd.Timestamp("2026-07-30", tz="UTC")
    keys = [_key("2026-06-30", "1"), _key("2026-05-01", "1")]
    assert performance.status([], [], "1", data_as_of, 90) == ("no_matured_scores", "no matured scores yet", False)
    state, reason, degraded = performance.status([], keys, "1", data_as_of, 90)
    assert state == "no_matured_scores" and not degraded
    assert reason == (
        "no matured scores yet: the earliest archived scoring (as of 2026-05-01 00:00) matures once the data "
        "reaches 2026-07-30 00:00 (data as of 2026-07-30 00:00)"
    )
    other = {"model_version": "1", "degraded": True, "reason": "v1 dropped"}
    assert performance.status([other], keys, "2", data_as_of, 90) == (
        "no_matured_champion_scores",
        "no matured scores of champion v2 yet",
        False,
    )
    assert performance.status([other], keys, "1", data_as_of, 90) == ("evaluated", "v1 dropped", True)
    held = {**other, "degraded": False, "reason": "held"}
    assert performance.status([held], keys, "1", data_as_of, 90) == ("evaluated", "held", False)


def test_the_performance_report_and_its_table() -> None:
    entry = {
        "model_version": "1",
        "scored_as_of": "2026-05-01T00:00:00+00:00",
        "realised": {"rows": 300, "roc_auc": 0.7, "brier": 0.1},
        "expected": {"roc_auc": 0.8, "brier": 0.09},
        "degraded": True,
        "reason": "dropped",
    }
    rule = performance.PerformanceRule(max_auc_drop=0.05, min_rows=200)
    data_as_of = pd.Timestamp("2026-08-01", tz="UTC")
    report = performance.performance_report([entry], [_key("2026-05-01", "1")], "1", data_as_of, 90, rule)
    assert report == {
        "status": "evaluated",
        "reason": "dropped",
        "degraded": True,
        "champion_version": "1",
        "data_as_of": "2026-08-01T00:00:00+00:00",
        "horizon_days": 90,
        "rule": {"max_auc_drop": 0.05, "min_rows": 200},
        "evaluations": [entry],
    }
    table = performance.evaluations_table([entry])
    assert table.to_dict(orient="records") == [
        {
            "version": "1",
            "scored_as_of": "2026-05-01",
            "rows": 300,
            "realised_roc_auc": 0.7,
            "holdout_roc_auc": 0.8,
            "realised_brier": 0.1,
            "holdout_brier": 0.09,
            "degraded": True,
        }
    ]


def test_realised_labels_are_the_archived_customers_labels_from_the_clean_tables() -> None:
    """Labels of the archived customers only, in the archive's order, from frames of every clean customer: a
    customer not archived does not count, an archived one unknown to the clean tables (or without transactions)
    gets 0; for known customers they are ``build_labels``' labels."""
    key = _key("2026-06-30", "3")
    tx = _transactions(
        [("A", 500.0, "2026-07-10"), ("E", 900.0, "2026-07-11"), ("F", 900.0, "2026-07-12"), ("C", 20.0, "2026-07-02")]
    )
    frames = _frames(tx, ["A", "B", "C", "E", "F"])
    ids = ["C", "Z", "A", "B"]  # Z is no clean customer; E and F buy large but were not scored
    got = labels.labels_of(frames, ids, key.as_of, 90, 300.0)
    assert got.index.tolist() == ids and got.tolist() == [0, 0, 1, 0] and got.dtype == np.int8
    known = ["C", "A", "B"]
    pd.testing.assert_series_equal(
        labels.labels_of(frames, known, key.as_of, 90, 300.0), labels.build_labels(tx, known, key.as_of, 90, 300.0)
    )
    archived = pd.DataFrame({"customer_id": ids, "large_purchase_probability": [0.1, 0.2, 0.9, 0.3]})
    rule = performance.PerformanceRule(min_rows=1)
    entry = performance.evaluate_scoring(key, archived, frames, {"roc_auc": 0.8, "brier": 0.2}, rule, 90, 300.0)
    assert entry["realised"]["rows"] == 4 and entry["realised"]["positives"] == 1
    assert entry["realised"]["roc_auc"] == 1.0


def test_the_label_span_covers_every_matured_window_and_nothing_before() -> None:
    keys = [
        performance.ArchiveKey(pd.Timestamp("2026-03-01", tz="UTC"), "1"),
        performance.ArchiveKey(pd.Timestamp("2026-01-01", tz="UTC"), "2"),
    ]
    start, end = performance.label_span(keys, 90)
    assert start == pd.Timestamp("2026-01-01", tz="UTC").value  # excluded: the earliest window's (as_of, ...]
    assert end == pd.Timestamp("2026-05-30", tz="UTC").value  # included: 2026-03-01 + 90 days
    with pytest.raises(ValueError, match="no archived scoring"):
        performance.label_span([], 90)
