"""Confidence-based performance estimation: expected ROC-AUC, top-decile precision and positives from scores and
the champion's calibration."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hvbuyer_assets.core import estimation


def test_with_certain_probabilities_the_expected_auc_is_the_realised_one() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(2000), 2)  # ties included
    labels = (rng.random(2000) < scores).astype(float)
    assert estimation.expected_roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_the_expected_auc_is_the_mean_of_realised_aucs_when_labels_follow_the_probabilities() -> None:
    rng = np.random.default_rng(1)
    scores = rng.beta(2, 6, 3000)
    probabilities = np.clip(scores * 1.3, 0, 1)
    realised = [roc_auc_score(rng.random(3000) < probabilities, scores) for _ in range(200)]
    assert estimation.expected_roc_auc(scores, probabilities) == pytest.approx(np.mean(realised), abs=0.003)


def test_estimate_from_a_hold_out_calibration() -> None:
    rng = np.random.default_rng(2)
    holdout_scores = rng.random(5000)
    holdout_labels = rng.random(5000) < holdout_scores**2  # the model over-states: calibration corrects it
    calibration = estimation.fit_calibration(holdout_labels, holdout_scores)
    assert calibration.holdout_roc_auc == pytest.approx(roc_auc_score(holdout_labels, holdout_scores))
    again = estimation.Calibration.from_dict(calibration.to_dict())
    assert again == calibration
    scores = rng.random(4000)
    result = estimation.estimate(scores, again)
    truth = scores**2
    assert result["rows"] == 4000
    assert result["expected_positives"] == pytest.approx(truth.sum(), rel=0.05)
    top = np.sort(scores)[-400:]
    assert result["precision_top_decile"] == pytest.approx((top**2).mean(), abs=0.03)
    assert result["roc_auc"] == pytest.approx(estimation.expected_roc_auc(scores, truth), abs=0.01)
    assert estimation.estimate(scores[:10], again)["roc_auc"] is None


def test_the_rule_and_bad_input() -> None:
    rule = estimation.EstimateRule(max_auc_drop=0.05)
    assert estimation.judge(0.70, 0.79, rule)[0] and not estimation.judge(0.76, 0.79, rule)[0]
    assert estimation.judge(None, 0.79, rule) == (False, "not judged: no estimate (too few scores)")
    assert "drop 0.0900 > 0.05" in estimation.judge(0.70, 0.79, rule)[1]
    with pytest.raises(ValueError, match="max_auc_drop"):
        estimation.EstimateRule(max_auc_drop=-0.1)
    with pytest.raises(ValueError, match="at least 200 hold-out rows"):
        estimation.fit_calibration([0, 1], [0.1, 0.9])
    with pytest.raises(ValueError, match="equal length"):
        estimation.Calibration.from_dict({"scores": [0.1], "rates": []})
