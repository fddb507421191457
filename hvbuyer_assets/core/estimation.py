"""Performance estimated from the scores alone, before their labels mature (confidence-based performance
estimation, the idea of NannyML's CBPE).

The champion's hold-out tells how often a score came true: an isotonic map from score to observed rate
(``fit_calibration``). Applied to a new scoring, each customer's calibrated probability ``p`` is the expected value
of its label, so every confusion-matrix cell has an expectation: a customer ranked above a threshold is an expected
``p`` true positive and ``1 - p`` false positive. From those: the expected ROC-AUC (the area under the expected ROC
curve), the expected precision in the top decile and the expected number of positives.

What it sees and misses: a covariate shift (customers move to regions of the score where the model is weaker or
stronger) changes the estimate, as it changes the realised figure. A concept shift (the same features now mean
another outcome) leaves the scores' distribution, hence the estimate, where it was: only the realised performance
(``core.performance``, once labels mature) catches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from hvbuyer_assets.core import model

TOP_SHARE = 0.10  # "precision at the top decile"
MIN_ROWS = 200  # fewer scores (or hold-out rows to calibrate on) give no estimate


@dataclass(frozen=True)
class Calibration:
    """A monotone score -> probability map: ``np.interp`` over ``scores`` / ``rates`` (isotonic knots)."""

    scores: tuple[float, ...]
    rates: tuple[float, ...]
    holdout_roc_auc: float | None = None

    def apply(self, scores: Any) -> np.ndarray:
        """Calibrated probabilities of ``scores`` (clipped to the fitted range at both ends)."""
        return np.interp(np.asarray(scores, dtype="float64"), self.scores, self.rates)

    def to_dict(self) -> dict[str, Any]:
        """As stored (JSON)."""
        return {"scores": list(self.scores), "rates": list(self.rates), "holdout_roc_auc": self.holdout_roc_auc}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """From ``to_dict``'s JSON; a map without knots is refused."""
        scores, rates = tuple(map(float, data["scores"])), tuple(map(float, data["rates"]))
        if not scores or len(scores) != len(rates):
            raise ValueError("calibration: 'scores' and 'rates' must be non-empty and of equal length")
        auc = data.get("holdout_roc_auc")
        return cls(scores, rates, None if auc is None else float(auc))


def fit_calibration(labels: Any, scores: Any) -> Calibration:
    """The isotonic map from the model's hold-out scores to its hold-out outcomes (0/1), with the hold-out
    ROC-AUC the estimate is compared with."""
    y = np.asarray(labels, dtype="float64")
    s = np.asarray(scores, dtype="float64")
    if len(y) != len(s):
        raise ValueError(f"calibration: {len(y)} labels but {len(s)} scores")
    if len(y) < MIN_ROWS or np.unique(y).size < 2:
        raise ValueError(f"calibration: needs at least {MIN_ROWS} hold-out rows with both outcomes, got {len(y)}")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    knots, rates = tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_))
    return Calibration(knots, rates, float(roc_auc_score(y, s)))


def holdout_calibration(training_set: pd.DataFrame, fitted: Pipeline) -> Calibration:
    """``fit_calibration`` on a model's hold-out rows (``split == "holdout"``) and its scores on them."""
    holdout = training_set[training_set["split"] == "holdout"]
    return fit_calibration(holdout["label"].to_numpy(), model.predict_proba(fitted, holdout))


def expected_roc_auc(scores: Any, probabilities: Any) -> float | None:
    """The area under the expected ROC curve: pairs (i positive, j negative) weighted ``p_i (1 - p_j)``, counted
    when ``score_i > score_j`` and half when tied (the trapezoid over tied scores). None when no positive or no
    negative is expected."""
    s = np.asarray(scores, dtype="float64")
    p = np.asarray(probabilities, dtype="float64")
    order = np.argsort(s, kind="stable")
    s, p = s[order], p[order]
    q = 1.0 - p
    positives, negatives = float(p.sum()), float(q.sum())
    if positives <= 0 or negatives <= 0:
        return None
    _, start = np.unique(s, return_index=True)  # tie groups of the sorted scores
    group_p = np.add.reduceat(p, start)
    group_q = np.add.reduceat(q, start)
    below_q = np.cumsum(group_q) - group_q  # expected negatives strictly below each group
    return float((group_p * (below_q + 0.5 * group_q)).sum() / (positives * negatives))


def estimate(scores: Any, calibration: Calibration, top_share: float = TOP_SHARE) -> dict[str, float | int | None]:
    """Expected ROC-AUC, precision in the top ``top_share`` of scores and number of positives of one scoring."""
    s = np.asarray(scores, dtype="float64")
    s = s[np.isfinite(s)]
    if len(s) < MIN_ROWS:
        return {"rows": len(s), "roc_auc": None, "precision_top_decile": None, "expected_positives": None}
    p = calibration.apply(s)
    top = max(1, int(round(top_share * len(s))))
    top_idx = np.argpartition(-s, top - 1)[:top]
    return {
        "rows": len(s),
        "roc_auc": expected_roc_auc(s, p),
        "precision_top_decile": float(p[top_idx].mean()),
        "expected_positives": float(p.sum()),
    }


@dataclass(frozen=True)
class EstimateRule:
    """The estimated-performance trigger: degraded when the estimated ROC-AUC is more than ``max_auc_drop`` below
    the champion's hold-out ROC-AUC. 0.08 by default: the realised trigger's 0.05 plus the estimate's own error
    (within 0.03 of the realised figure on the validation drops, docs/drift-and-retraining.md)."""

    max_auc_drop: float = 0.08

    def __post_init__(self) -> None:
        if not 0 <= self.max_auc_drop < 1:
            raise ValueError(f"max_auc_drop must be in [0, 1), got {self.max_auc_drop}")


def judge(estimated_auc: float | None, holdout_auc: float | None, rule: EstimateRule) -> tuple[bool, str]:
    """(degraded, why) for one estimate against the champion's hold-out figure."""
    if estimated_auc is None or holdout_auc is None:
        missing = "no estimate (too few scores)" if estimated_auc is None else "no hold-out ROC-AUC"
        return False, f"not judged: {missing}"
    drop = holdout_auc - estimated_auc
    verdict = ">" if drop > rule.max_auc_drop else "<="
    text = (
        f"estimated ROC-AUC {estimated_auc:.4f} vs hold-out {holdout_auc:.4f}: drop {drop:.4f} {verdict} "
        f"{rule.max_auc_drop:g}"
    )
    return drop > rule.max_auc_drop, text
