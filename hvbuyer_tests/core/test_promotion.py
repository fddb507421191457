"""The promotion decision: no champion, same version, better / tied / worse candidate, a champion that fails."""

from __future__ import annotations

import pytest

from hvbuyer_assets.core import promotion


def test_the_first_candidate_is_promoted() -> None:
    outcome = promotion.decide("1", {"roc_auc": 0.7}, None)
    assert outcome.promote and outcome.decision == "promoted" and outcome.champion_version == "1"
    assert outcome.reason == "first model to pass the quality floor" and outcome.previous_champion is None


def test_a_candidate_that_already_is_the_champion_is_kept_without_comparison() -> None:
    assert not promotion.needs_comparison("2", "2")
    outcome = promotion.decide("2", {"roc_auc": 0.9}, "2")
    assert not outcome.promote and outcome.decision == "kept" and outcome.champion_version == "2"
    assert outcome.reason == "version 2 is already the champion"


def test_a_better_candidate_replaces_the_champion() -> None:
    assert promotion.needs_comparison("3", "2") and not promotion.needs_comparison("3", None)
    outcome = promotion.decide("3", {"roc_auc": 0.81234}, "2", {"roc_auc": 0.8})
    assert outcome.promote and outcome.champion_version == "3" and outcome.previous_champion == "2"
    assert outcome.reason == "candidate v3 ROC-AUC 0.8123 beats champion v2 0.8000 on the same hold-out"


def test_a_tie_keeps_the_champion() -> None:
    outcome = promotion.decide("3", {"roc_auc": 0.8}, "2", {"roc_auc": 0.8})
    assert not outcome.promote and outcome.decision == "kept" and outcome.champion_version == "2"
    assert "does not beat champion v2" in outcome.reason


def test_an_improvement_within_the_margin_keeps_the_champion() -> None:
    assert not promotion.decide("3", {"roc_auc": 0.805}, "2", {"roc_auc": 0.8}, min_improvement=0.01).promote
    assert promotion.decide("3", {"roc_auc": 0.811}, "2", {"roc_auc": 0.8}, min_improvement=0.01).promote


def test_a_candidate_without_a_score_never_wins() -> None:
    assert not promotion.decide("3", {"roc_auc": float("nan")}, "2", {"roc_auc": 0.5}).promote


def test_a_champion_that_cannot_score_today_is_replaced() -> None:
    outcome = promotion.decide("3", {"roc_auc": 0.6}, "2", champion_error="missing column 'age'")
    assert outcome.promote and outcome.champion_version == "3"
    assert outcome.reason == "champion v2 cannot score the current features (missing column 'age')"


def test_a_comparison_needs_the_champion_metrics_or_its_error() -> None:
    with pytest.raises(ValueError, match="champion v2"):
        promotion.decide("3", {"roc_auc": 0.6}, "2")
