"""Champion/challenger: does a registered candidate replace the current champion?

The candidate is promoted when there is no champion yet, when the champion cannot score today's features, or
when it beats the champion on the same hold-out (``core.evaluation.is_better``: strictly more ROC-AUC than the
champion's + ``min_improvement``; a tie keeps the champion). A candidate that already is the champion is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hvbuyer_assets.core import evaluation

PROMOTED, KEPT = "promoted", "kept"


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome: ``decision`` is ``promoted`` or ``kept``; ``champion_version`` is the champion afterwards."""

    promote: bool
    reason: str
    candidate_version: str
    previous_champion: str | None

    @property
    def decision(self) -> str:
        return PROMOTED if self.promote else KEPT

    @property
    def champion_version(self) -> str:
        return self.candidate_version if self.promote or self.previous_champion is None else self.previous_champion


def needs_comparison(candidate_version: str, champion_version: str | None) -> bool:
    """True when the champion must be re-scored on the candidate's hold-out: there is one and it is another version."""
    return champion_version is not None and champion_version != candidate_version


def decide(
    candidate_version: str,
    candidate_metrics: Mapping[str, Any],
    champion_version: str | None,
    champion_metrics: Mapping[str, Any] | None = None,
    min_improvement: float = 0.0,
    champion_error: str | None = None,
) -> PromotionDecision:
    """The promotion decision with its reason.

    ``champion_metrics`` are the champion's metrics on the candidate's hold-out; ``champion_error`` says why it
    could not be scored there (one of the two is required when :func:`needs_comparison`).
    """
    if champion_version is None:
        return PromotionDecision(True, "first model to pass the quality floor", candidate_version, None)
    if not needs_comparison(candidate_version, champion_version):
        return PromotionDecision(
            False, f"version {candidate_version} is already the champion", candidate_version, champion_version
        )
    if champion_error is not None:
        reason = f"champion v{champion_version} cannot score the current features ({champion_error})"
        return PromotionDecision(True, reason, candidate_version, champion_version)
    if champion_metrics is None:
        raise ValueError(f"champion v{champion_version}: its hold-out metrics or the error scoring it are required")
    promote = evaluation.is_better(candidate_metrics, champion_metrics, min_improvement)
    verb = "beats" if promote else "does not beat"
    reason = (
        f"candidate v{candidate_version} ROC-AUC {candidate_metrics['roc_auc']:.4f} {verb} champion "
        f"v{champion_version} {champion_metrics['roc_auc']:.4f} on the same hold-out"
    )
    return PromotionDecision(promote, reason, candidate_version, champion_version)
