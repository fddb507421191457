"""The promotion decision: no champion, same version, better / tied / worse candidate, a champion that fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


# The population guard: a training set whose population collapsed against the champion's reference.
REGIONS = ["North", "South", "East", "West", "Central"]


def _frame(n: int, regions: list[str], split: str | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "region": pd.Series(np.array(regions, dtype=object)[rng.integers(0, len(regions), n)], dtype="string"),
            "age": rng.normal(45.0, 12.0, n),
            "n_completed_30d": (rng.random(n) < 0.02).astype("float64"),  # 98 % zeros in the reference too
        }
    )
    if split is not None:
        frame["split"] = np.where(np.arange(n) < n * 3 // 4, "train", "holdout")
    return frame


COLUMNS = ("age", "n_completed_30d", "region")


def test_a_normal_training_set_passes_the_population_guard() -> None:
    reference = _frame(4000, REGIONS)
    candidate = _frame(4000, REGIONS[:3], split="train")  # shares moved (two regions gone): a shift, not a collapse
    assert promotion.population_problem(candidate, reference, COLUMNS) is None


def test_every_customer_in_one_region_is_degenerate() -> None:
    reference = _frame(4000, REGIONS)
    candidate = _frame(4000, ["North"], split="train")
    problem = promotion.population_problem(candidate, reference, COLUMNS)
    assert problem == (
        "region is 'North' in 100% of the train rows (the champion's reference: at most 21% for any value)"
    )
    outcome = promotion.decide("2", {"roc_auc": 0.95}, "1", {"roc_auc": 0.5}, degenerate=problem)
    assert not outcome.promote and outcome.decision == "kept" and outcome.champion_version == "1"
    assert outcome.reason == f"candidate v2 was trained on degenerate data: {problem}"


def test_a_column_exported_empty_in_the_holdout_only_is_degenerate() -> None:
    reference = _frame(4000, REGIONS)
    candidate = _frame(4000, REGIONS, split="train")
    candidate.loc[candidate["split"] == "holdout", "age"] = np.nan
    problem = promotion.population_problem(candidate, reference, COLUMNS)
    assert problem is not None and problem.startswith("age is missing in 100% of the holdout rows")


def test_a_feature_already_dominated_in_the_reference_is_not_a_collapse() -> None:
    reference = _frame(4000, REGIONS)
    candidate = _frame(4000, REGIONS, split="train")
    candidate["n_completed_30d"] = 0.0  # 100 % zeros, but the reference had 98 %
    assert promotion.population_problem(candidate, reference, COLUMNS) is None
    assert promotion.population_problem(candidate, reference, COLUMNS, collapse_share=0.99) is not None


def test_without_a_reference_the_guard_does_not_block() -> None:
    candidate = _frame(4000, ["North"], split="train")
    assert promotion.population_problem(candidate, None, COLUMNS) is None
    assert promotion.NOT_CHECKED == "not checked: the champion has no reference snapshot"


def test_the_guard_does_not_apply_to_the_first_model_or_the_champion_itself() -> None:
    assert promotion.decide("1", {"roc_auc": 0.7}, None, degenerate="region collapsed").promote
    assert promotion.decide("2", {"roc_auc": 0.7}, "2", degenerate="x").reason == "version 2 is already the champion"
