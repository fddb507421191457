"""Champion/challenger: a candidate replaces the champion only if it beats it on the same hold-out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hvbuyer_assets import registry
from hvbuyer_tests.pipeline import Workspace

pytestmark = pytest.mark.slow  # builds the graph itself (see the slow marker in pyproject.toml)

# The decision needs nothing downstream of the champion: scoring and monitoring are left out to keep this quick.
# (the cleaning multi-assets cannot be split, so their quarantine outputs come along).
UP_TO_CHAMPION = ["*champion_model", "quarantined_customers", "quarantined_transactions"]
WEAK = {"ops": {"trained_model": {"config": {"n_estimators": 3, "max_depth": 2, "min_samples_leaf": 200}}}}


def _decision(workspace: Workspace) -> dict:
    return json.loads((workspace.root / "models" / "champion_model.json").read_text())


def test_better_candidate_is_promoted_and_worse_one_kept(built: Workspace, tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "data")
    shutil.copytree(built.raw, workspace.raw)

    assert workspace.materialize(WEAK, UP_TO_CHAMPION).success
    assert workspace.champion_version() == "1"
    weak_roc = _decision(workspace)["candidate_metrics"]["roc_auc"]

    assert workspace.materialize(selection=UP_TO_CHAMPION).success  # default forest: better on the same hold-out
    decision = _decision(workspace)
    assert decision["decision"] == "promoted" and workspace.champion_version() == "2"
    assert decision["champion_metrics"]["roc_auc"] == weak_roc  # the old champion re-scored on today's hold-out
    assert decision["candidate_metrics"]["roc_auc"] > weak_roc
    # v2's tags, champion_model's metadata and the API's /model say which comparison promoted it.
    v2 = registry.promotion_record(workspace.client().get_model_version(registry.MODEL_NAME, "2").tags)
    assert v2["compared_with"] == "1" and v2["decision"].startswith("promoted")
    assert v2["previous_roc_auc_same_holdout"] == pytest.approx(weak_roc, abs=1e-6)
    assert v2["candidate_roc_auc_same_holdout"] == pytest.approx(decision["candidate_metrics"]["roc_auc"], abs=1e-6)
    assert v2["roc_auc_at_registration"] == pytest.approx(decision["candidate_metrics"]["roc_auc"], abs=1e-6)
    assert decision["champion_promotion"] == v2

    # The weak model again: same fingerprint, so v1 is reused, and it stays out.
    assert workspace.materialize(WEAK, UP_TO_CHAMPION).success
    decision = _decision(workspace)
    assert decision["decision"] == "kept" and decision["candidate_version"] == "1"
    assert workspace.champion_version() == "2"
    tag = workspace.client().get_model_version(registry.MODEL_NAME, "1").tags["hvbuyer.promotion"]
    assert tag.startswith("kept") and "does not beat" in tag
    assert len(workspace.client().search_model_versions(f"name = '{registry.MODEL_NAME}'")) == 2
    # The kept candidate's decision does not rewrite which comparison promoted v1 (against no earlier champion).
    v1 = registry.promotion_record(workspace.client().get_model_version(registry.MODEL_NAME, "1").tags)
    assert v1["compared_with"] is None and v1["decision"].startswith("kept")
    assert _decision(workspace)["champion_promotion"]["compared_with"] == "1"
