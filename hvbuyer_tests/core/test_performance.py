"""Realised performance of archived scores: archive keys, maturity, metrics and the drop rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from hvbuyer_assets.core import performance


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
