"""Pass/fail rules of the blocking checks, without Dagster: leakage, label prevalence, quality floor, ONNX parity,
quarantine share."""

from __future__ import annotations

import math

import pandas as pd

from hvbuyer_assets.core import checks

CUTOFF = pd.Timestamp("2026-06-30", tz="UTC")


def test_leakage_counts_rows_with_events_after_their_cutoff() -> None:
    events = pd.Series([CUTOFF, CUTOFF - pd.Timedelta(days=1), pd.NaT])
    clean = checks.not_after_cutoff(events, CUTOFF)
    assert clean.passed and clean.description == "no leakage" and clean.metadata == {"rows_after_cutoff": 0}
    late = checks.not_after_cutoff(events, pd.Series([CUTOFF - pd.Timedelta(seconds=1), CUTOFF, CUTOFF]))
    assert not late.passed and late.description == "1 rows use events after the cutoff"


def _training(train: list[int], holdout: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"split": ["train"] * len(train) + ["holdout"] * len(holdout), "label": train + holdout})


def test_label_prevalence_must_be_sane_in_every_split() -> None:
    ok = checks.label_prevalence(_training([0] * 9 + [1], [0] * 8 + [1] * 2))
    assert ok.passed and ok.metadata == {"prevalence_holdout": 0.2, "prevalence_train": 0.1}
    assert not checks.label_prevalence(_training([0] * 10, [0] * 9 + [1])).passed
    assert not checks.label_prevalence(_training([1] * 7 + [0] * 3, [0] * 9 + [1])).passed  # 70% > 60%
    assert not checks.label_prevalence(_training([], [])).passed  # no rows: nothing to learn from


def test_quality_floor_needs_the_floor_and_the_baseline() -> None:
    assert checks.quality_floor(0.6, 0.55, 0.6).passed  # at the floor passes
    tie = checks.quality_floor(0.7, 0.7, 0.6)
    assert not tie.passed and "not above the demographics-only 0.7000" in tie.description
    both = checks.quality_floor(0.5, 0.55, 0.6)
    assert not both.passed and both.description.count("hold-out ROC-AUC") == 2
    assert not checks.quality_floor(math.nan, 0.5, 0.6).passed
    assert checks.quality_floor(0.8, 0.65, 0.6).metadata == {
        "roc_auc": 0.8,
        "floor": 0.6,
        "demographics_only_roc_auc": 0.65,
    }


def test_onnx_parity_within_tolerance_only() -> None:
    assert checks.onnx_parity(1e-4, 1e-4, 10).passed  # at the tolerance passes
    far = checks.onnx_parity(2e-4, 1e-4, 10)
    assert not far.passed and "> 1e-04 over 10 hold-out rows" in far.description
    failed = checks.onnx_parity(None, 1e-4, 10, error="RuntimeError: no converter")
    assert not failed.passed and failed.metadata["max_abs_diff"] == -1.0
    assert "no converter" in failed.description
    assert not checks.onnx_parity(0.0, 1e-4, 10, error="boom").passed  # an error fails whatever was measured


def test_quarantine_share_blocks_only_a_large_enough_drop_and_names_the_reasons() -> None:
    from hvbuyer_assets.core.cleaning.quarantine import CommonReason

    reasons = [CommonReason("amount … is not a number", 300, "amount '12,50' is not a number", "t.jsonl")]
    broken = checks.quarantine_share(300, 300, reasons, min_rows=100)
    assert not broken.passed and broken.blocking
    assert "t.jsonl: 300 x amount … is not a number (e.g. amount '12,50' is not a number)" in broken.description
    assert broken.metadata["common_reasons"][0] == {
        "file": "t.jsonl",
        "reason": "amount … is not a number",
        "rows": 300,
        "example": "amount '12,50' is not a number",
    }
    tiny = checks.quarantine_share(1, 1, reasons, min_rows=100)  # one bad row is no evidence of a broken export
    assert not tiny.passed and not tiny.blocking and "fewer than 100 rows" in tiny.description
    warn = checks.quarantine_share(1000, 100, reasons, min_rows=100)
    assert not warn.passed and not warn.blocking
    fine = checks.quarantine_share(1000, 50, reasons, min_rows=100)
    assert fine.passed and "most common" not in fine.description
    assert checks.quarantine_share(0, 0, [], min_rows=100).passed  # an empty drop
