"""The monitoring drift report: the voting policy, the reference snapshot and the assembled report and verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hvbuyer_assets.core import drift, drift_report, features, model

AS_OF = pd.Timestamp("2026-09-28", tz="UTC")
MODEL_DATA_AS_OF = "2026-06-30T00:00:00+00:00"  # the end of the champion's hold-out label window
REFERENCE_AS_OF = "2026-01-01T00:00:00+00:00"  # its train rows' latest cutoff: features as of then


def _frame(n: int, seed: int, **shift: float) -> pd.DataFrame:
    """Feature rows (plus the score) drawn from one distribution; ``shift`` moves named numeric columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.gamma(2.0, 10.0, n) for name in features.FEATURE_NUMERIC})
    for name, by in shift.items():
        frame[name] += by
    frame["region"] = pd.array(rng.choice(["North", "South", "East", "West"], n), dtype=features.STRING)
    frame[drift_report.SCORE] = rng.beta(2.0, 8.0, n)
    return frame


def _current(n: int, seed: int, **shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(customer_features, customer_scores) as the scoring assets hand them over."""
    frame = _frame(n, seed, **shift)
    ids = pd.Index([f"C{i}" for i in range(n)], dtype=features.STRING, name="customer_id")
    customer_features = frame[list(features.FEATURE_COLUMNS)].set_index(ids)
    customer_features["feature_as_of"] = AS_OF
    scores = pd.DataFrame({"customer_id": ids, "large_purchase_probability": frame[drift_report.SCORE].to_numpy()})
    return customer_features, scores.iloc[::-1].reset_index(drop=True)  # order of the scores does not matter


def _assemble(n_ref: int = 1000, n_cur: int = 1000, **shift: float) -> dict:
    customer_features, scores = _current(n_cur, seed=2, **shift)
    return drift_report.assemble(
        champion_version="3",
        customer_features=customer_features,
        customer_scores=scores,
        reference=_frame(n_ref, seed=1),
        reference_info={
            "data_as_of": MODEL_DATA_AS_OF,
            "rows": n_ref,
            "train_cutoffs": ["2025-12-02T00:00:00+00:00", REFERENCE_AS_OF],
        },
        thresholds=drift.DriftThresholds(),
        fingerprint="f" * 16,
        generated_at=pd.Timestamp("2026-11-30", tz="UTC"),
    )


def test_time_indexed_features_are_reported_but_do_not_vote() -> None:
    numeric, categorical = drift_report.voting_features()
    informational = drift_report.informational_features()
    assert set(numeric).isdisjoint(informational)
    assert sorted([*numeric, *informational]) == sorted(model.model_columns()[0])
    assert set(informational) == set(drift_report.TIME_INDEXED_FEATURES)
    assert categorical == features.FEATURE_CATEGORICAL
    assert "age" in numeric and "tenure_days" not in numeric


def test_a_drifted_time_indexed_feature_alone_gives_no_drift() -> None:
    report = _assemble(tenure_days=500.0, days_since_first_purchase=500.0)
    assert report["verdict"] == "no_drift", report["reason"]
    indexed = {f["feature"]: f for f in report["time_indexed_features"]}
    assert indexed["tenure_days"]["drifted"] and indexed["tenure_days"]["votes"] is False
    assert "tenure_days" not in report["drifted_features"]
    assert report["voting_features"] == [*drift_report.voting_features()[0], "region"]
    assert report["prediction"]["votes"] is False and not report["prediction"]["drifted"]


def test_a_major_shift_in_one_voting_feature_is_drift() -> None:
    report = _assemble(age=40.0)
    assert report["verdict"] == "drift" and report["drift"]
    assert report["drifted_features"] == ["age"] and "major shift in age" in report["reason"]


def test_too_few_rows_give_insufficient_data_never_drift() -> None:
    report = _assemble(n_cur=100, age=40.0)
    assert report["verdict"] == "insufficient_data" and not report["drift"]
    assert report["drifted_features"] == []


def test_the_assembled_report_carries_the_reference_and_model_age() -> None:
    """``reference_as_of`` is the reference rows' as-of (latest train cutoff, a sidecar without the key too), not
    the end of the champion's training data, which ``model_data_as_of`` and ``model_age_days`` are about."""
    report = _assemble()
    assert report["champion_version"] == "3" and report["data_fingerprint"] == "f" * 16
    assert report["data_as_of"] == AS_OF.isoformat() and report["reference_as_of"] == REFERENCE_AS_OF
    assert report["model_data_as_of"] == MODEL_DATA_AS_OF
    assert report["drifted_share"] == 0.0
    assert report["reference_rows"] == 1000 and report["model_age_days"] == pytest.approx(90.0)
    assert report["generated_at"] == "2026-11-30T00:00:00+00:00"
    summary = drift_report.summary(report)
    assert summary["model_age_days"] == pytest.approx(90.0) and summary["reference_as_of"] == REFERENCE_AS_OF
    assert list(summary) == [
        "verdict",
        "reason",
        "champion_version",
        "data_as_of",
        "reference_as_of",
        "model_data_as_of",
        "data_fingerprint",
        "drifted_features",
        "model_age_days",
        "drifted_share",
    ]


def test_display_lists_voting_features_first_then_the_reported_ones_and_the_score() -> None:
    report = _assemble()
    shown, table = drift_report.display(report)
    voting = len(report["features"])
    assert list(table.columns[:2]) == ["feature", "role"]
    assert table["votes"].tolist() == [True] * voting + [False] * (len(report["time_indexed_features"]) + 1)
    assert table["feature"].iloc[-1] == drift.SCORE
    assert len(shown["features"]) == voting + len(report["time_indexed_features"])


def test_without_a_reference_the_verdict_is_no_reference() -> None:
    customer_features, scores = _current(600, seed=2)
    report = drift_report.assemble(
        champion_version="7",
        customer_features=customer_features,
        customer_scores=scores,
        reference=None,
        reference_info=None,
        thresholds=drift.DriftThresholds(),
        fingerprint="abc",
        generated_at=AS_OF,
    )
    assert report["verdict"] == "no_reference" and report["drift"] is False
    assert "champion v7" in report["reason"] and report["features"] == []
    assert report["reference_as_of"] is None and report["model_age_days"] is None
    summary = drift_report.summary(report)
    assert summary["reference_as_of"] == "" and "model_age_days" not in summary
    assert summary["drifted_features"] == []
    assert drift_report.display(report) is None
    with pytest.raises(ValueError, match="come together"):
        drift_report.assemble(
            champion_version="7",
            customer_features=customer_features,
            customer_scores=scores,
            reference=_frame(600, seed=1),
            reference_info=None,
            thresholds=drift.DriftThresholds(),
            fingerprint="abc",
            generated_at=AS_OF,
        )


def test_current_frame_aligns_scores_by_customer() -> None:
    customer_features, scores = _current(5, seed=3)
    current = drift_report.current_frame(customer_features, scores.iloc[1:])  # C4's score is missing
    by_id = scores.set_index("customer_id")["large_purchase_probability"]
    assert current.loc["C0", drift_report.SCORE] == by_id["C0"]
    assert np.isnan(current.loc["C4", drift_report.SCORE])
    assert list(current.columns) == [*features.FEATURE_COLUMNS, drift_report.SCORE]


def _training_set() -> pd.DataFrame:
    train = _frame(300, seed=4)
    holdout = _frame(100, seed=5)
    rng = np.random.default_rng(6)
    train["cutoff"] = pd.Timestamp("2026-04-01", tz="UTC")
    train.loc[150:, "cutoff"] = pd.Timestamp("2026-03-02", tz="UTC")
    holdout["cutoff"] = pd.Timestamp("2026-06-30", tz="UTC")
    train["split"], holdout["split"] = "train", "holdout"
    frame = pd.concat([train, holdout], ignore_index=True).drop(columns=drift_report.SCORE)
    frame["label"] = rng.integers(0, 2, len(frame))
    return frame


def test_reference_snapshot_is_the_train_rows_and_their_scores() -> None:
    training_set = _training_set()
    fitted = model.train_model(training_set, model.ModelParams(n_estimators=3, max_depth=2))
    frame = drift_report.reference_frame(training_set, fitted)
    train = training_set[training_set["split"] == "train"]
    assert len(frame) == 300 and list(frame.columns) == [*features.FEATURE_COLUMNS, drift_report.SCORE]
    # The forest sums its trees in thread order: equal up to the last bits, not bit for bit.
    np.testing.assert_allclose(frame[drift_report.SCORE], model.predict_proba(fitted, train), rtol=1e-12, atol=0)
    info = drift_report.reference_info(training_set, "2", 90, "fp", pd.Timestamp("2026-11-30", tz="UTC"))
    assert info == {
        "version": "2",
        "rows": 300,
        "train_cutoffs": ["2026-03-02T00:00:00+00:00", "2026-04-01T00:00:00+00:00"],
        "reference_as_of": "2026-04-01T00:00:00+00:00",
        "holdout_cutoff": "2026-06-30T00:00:00+00:00",
        "data_as_of": "2026-09-28T00:00:00+00:00",
        "training_fingerprint": "fp",
        "created_at": "2026-11-30T00:00:00+00:00",
    }
