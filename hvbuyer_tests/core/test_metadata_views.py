"""The pure parts of what the UI shows: the drift headline, table and plot; comparison plots of the candidate
and the baselines; the score histogram; the checks on the scores; column descriptions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hvbuyer_assets.core import checks, drift_report, evaluation, features
from hvbuyer_assets.core.columns import COLUMN_DESCRIPTIONS

PNG = b"\x89PNG\r\n\x1a\n"


def _feature(name: str, psi: float, drifted: bool, **extra: object) -> dict:
    flagged = "PSI" if drifted else ""
    return {
        "feature": name,
        "kind": "numeric",
        "psi": psi,
        "drifted": drifted,
        "reason": "r",
        "flagged_by": flagged,
        **extra,
    }


def _report(verdict: str = "no_drift") -> dict:
    return {
        "verdict": verdict,
        "reason": "0/2 features drifted",
        "features": [_feature("age", 0.01, False), _feature("spend_90d", 0.3, True)],
        "time_indexed_features": [
            {**_feature("tenure_days", 2.3, True), "votes": False},
            {**_feature("n_failed", 0.01, False), "votes": False},
        ],
        "prediction": {**_feature("score", 0.15, True), "kind": "prediction", "votes": False},
        "thresholds": {"psi": 0.2, "major_psi": 0.25, "drifted_share": 0.5},
    }


def test_the_headline_counts_voting_features_and_names_the_grey_ones() -> None:
    assert drift_report.headline(_report("drift")) == (
        "drift: 1 of 2 voting features drifted (1 non-voting feature and the score drifted, shown grey)"
    )
    calm = _report()
    calm["time_indexed_features"][0]["drifted"] = False
    calm["prediction"]["drifted"] = False
    assert drift_report.headline(calm) == "no_drift: 1 of 2 voting features drifted"
    empty = {"verdict": "no_reference", "reason": "no reference snapshot", "features": []}
    assert drift_report.headline(empty) == "no_reference: no reference snapshot"


def test_the_display_table_marks_who_votes_and_what_counts() -> None:
    report = _report()
    _, table = drift_report.display(report)
    assert list(table.columns) == [*drift_report.DISPLAY_COLUMNS, "votes", "reason"]
    assert table["votes"].tolist() == [True, True, False, False, False]
    assert table["role"].tolist() == [drift_report.VOTING] * 2 + [drift_report.NOT_VOTING] * 2 + [
        drift_report.SCORE_ROLE
    ]
    assert table["counted"].tolist() == [False, True, False, False, False]  # a grey row never counts
    png = drift_report.plot(report, table)
    assert png.startswith(PNG) and len(png) > 10_000


def test_the_plot_names_the_flagging_test_and_scales_to_the_voting_features() -> None:
    """A bar red at PSI 0.078 says KS flagged it; a non-voting PSI of 2.3 sits in its own panel and does not
    set the voting panel's x-axis; the table keeps the short code, the full reason stays in ``reasons``."""
    report = _report()
    report["features"][0] = _feature("age", 0.078, True, flagged_by="KS", reason="KS 0.13 (p=4.3e-68) >= 0.1")
    _, table = drift_report.display(report)
    fig = drift_report.figure(report, table)
    voting, others = fig.axes[:2]
    labels = [text.get_text() for text in voting.texts]
    assert labels == ["0.078  flagged by KS", "0.300  flagged by PSI"]
    assert voting.get_xlim()[1] < 1.0 < others.get_xlim()[1]  # 2.3 (tenure_days) scales the grey panel only
    assert [t.get_text() for t in voting.get_yticklabels()] == ["age", "spend_90d"]
    assert table.loc[0, "flagged_by"] == "KS" and drift_report.reasons(table)["age"].startswith("KS 0.13 (p=4.3e-68)")


def test_comparison_plots_take_several_models() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    models = {"candidate": np.clip(y * 0.4 + rng.random(400) * 0.6, 0, 1), "baseline": rng.random(400)}
    points = {name: evaluation.roc_points(y, p) for name, p in models.items()}
    assert points["candidate"]["auc"] > points["baseline"]["auc"]
    assert points["candidate"]["fpr"][0] == 0.0 and points["candidate"]["tpr"][-1] == 1.0
    assert math.isnan(evaluation.roc_points(np.zeros(5), np.full(5, 0.5))["auc"])
    few = evaluation.roc_points(y, models["candidate"], max_points=50)
    assert len(few["fpr"]) <= 50 and few["fpr"][0] == 0.0 and few["tpr"][-1] == 1.0
    assert few["auc"] == points["candidate"]["auc"]  # the AUC is the full curve's
    reports = {name: evaluation.evaluate(y, p) for name, p in models.items()}
    for png in (
        evaluation.plot_roc_curves(points),
        evaluation.plot_calibration({name: r["calibration"] for name, r in reports.items()}),
        evaluation.plot_lift({name: r["lift"] for name, r in reports.items()}),
        evaluation.plot_score_histogram(models["candidate"]),
    ):
        assert png.startswith(PNG) and len(png) > 5_000


def test_score_checks() -> None:
    good = checks.probabilities_in_range(pd.Series([0.0, 0.5, 1.0]))
    bad = checks.probabilities_in_range(pd.Series([0.2, 1.5, np.nan]))
    assert good.passed and not bad.passed and bad.metadata["rows_outside"] == 2
    assert checks.one_row_per_customer(pd.Series(["a", "b"]), 2).passed
    twice = checks.one_row_per_customer(pd.Series(["a", "a"]), 2)
    assert not twice.passed and twice.metadata["duplicates"] == 1
    assert not checks.one_row_per_customer(pd.Series(["a"]), 2).passed


def test_every_feature_and_drift_column_is_described() -> None:
    assert set(features.FEATURE_COLUMNS) <= set(COLUMN_DESCRIPTIONS)
    assert all(drift_report.DISPLAY_COLUMNS.values())
