import math

import numpy as np
import pytest
from sklearn import metrics

from hvbuyer_assets.core.evaluation import (
    SCALAR_METRICS,
    calibration_table,
    evaluate,
    is_better,
    lift_table,
    plot_calibration,
    plot_lift,
    plot_roc,
    scalar_metrics,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sample(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.uniform(0, 0.6, n)
    y = (rng.random(n) < proba).astype(np.int8)
    return y, proba


def test_evaluate_matches_sklearn_metrics():
    y, p = sample()
    result = evaluate(y, p)
    assert result["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, p))
    assert result["pr_auc"] == pytest.approx(metrics.average_precision_score(y, p))
    assert result["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert result["log_loss"] == pytest.approx(metrics.log_loss(y, p))
    assert result["prevalence"] == pytest.approx(y.mean())
    assert result["n"] == 1000
    assert set(scalar_metrics(result)) == set(SCALAR_METRICS)


def test_perfect_ranking_and_single_class():
    y = np.array([0, 0, 1, 1])
    assert evaluate(y, [0.1, 0.2, 0.8, 0.9])["roc_auc"] == 1.0
    single = evaluate([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(single["roc_auc"]) and math.isnan(single["pr_auc"])
    assert single["prevalence"] == 0.0


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        evaluate([0, 1], [0.5])
    with pytest.raises(ValueError):
        evaluate([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError):
        evaluate([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError):
        evaluate([], [])


def test_calibration_table_has_ten_equal_quantile_bins():
    y, p = sample()
    table = calibration_table(y, p)
    assert list(table.columns) == ["bin", "n", "mean_predicted", "observed_rate"]
    assert table["bin"].tolist() == list(range(1, 11))
    assert (table["n"] == 100).all()
    assert table["mean_predicted"].is_monotonic_increasing
    # well-calibrated sample: observed rates track predictions
    assert np.abs(table["observed_rate"] - table["mean_predicted"]).max() < 0.15
    # the per-bin means recompute the overall ones
    assert (table["observed_rate"] * table["n"]).sum() == y.sum()


def test_calibration_with_tied_scores_keeps_bins_filled():
    table = calibration_table([0, 1] * 10, [0.5] * 20)
    assert table["n"].sum() == 20 and (table["n"] == 2).all()


def test_lift_table_orders_deciles_by_score():
    y = np.array([1] * 10 + [0] * 90)
    p = np.linspace(1, 0, 100)  # the 10 positives have the top scores
    table = lift_table(y, p)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table.loc[0, "positives"] == 10 and table.loc[0, "lift"] == pytest.approx(10.0)
    assert (table.loc[1:, "positives"] == 0).all()
    assert table["cumulative_capture"].iloc[0] == 1.0 and table["cumulative_capture"].iloc[-1] == 1.0
    assert table["cumulative_lift"].iloc[-1] == pytest.approx(1.0)


def test_is_better_is_strict_with_margin_and_handles_missing_champion():
    assert not is_better({"roc_auc": 0.80}, {"roc_auc": 0.80})  # tie keeps the champion
    assert is_better({"roc_auc": 0.81}, {"roc_auc": 0.80})
    assert not is_better({"roc_auc": 0.805}, {"roc_auc": 0.80}, min_delta=0.01)
    assert is_better({"roc_auc": 0.82}, {"roc_auc": 0.80}, min_delta=0.01)
    assert is_better({"roc_auc": 0.6}, None)
    assert is_better({"roc_auc": 0.6}, {"roc_auc": float("nan")})
    assert not is_better({"roc_auc": float("nan")}, None)
    assert not is_better({}, {"roc_auc": 0.5})
    with pytest.raises(ValueError):
        is_better({"roc_auc": 0.9}, {"roc_auc": 0.5}, min_delta=-0.1)


def test_plots_are_png_bytes():
    y, p = sample(200)
    result = evaluate(y, p)
    for png in (
        plot_roc(y, p),
        plot_roc(y, {"candidate": p, "baseline": np.full_like(p, 0.3)}),
        plot_calibration(result["calibration"]),
        plot_lift(result["lift"]),
    ):
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
