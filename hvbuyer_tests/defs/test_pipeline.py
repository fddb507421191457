"""The whole asset graph on the embedded default: raw drop -> champion -> scores, idempotent re-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hvbuyer_assets import registry
from hvbuyer_assets.core import features
from hvbuyer_tests.deadline import Deadline
from hvbuyer_tests.pipeline import Workspace, check_results, digest, read_frame

REPO = Path(__file__).resolve().parents[2]


def test_graph_builds_scores_and_promotes_a_champion(built: Workspace) -> None:
    scores = read_frame(built.root / "scores" / "customer_scores.parquet")
    clean = built.stored("processed", "clean_customers")
    assert list(scores.columns[:4]) == [
        "customer_id",
        "large_purchase_probability",
        "model_version",
        "scored_at",
    ]
    assert set(scores["customer_id"]) == set(clean["customer_id"])  # every known customer is scored
    assert scores["large_purchase_probability"].between(0, 1).all()
    assert (scores["model_version"] == built.champion_version()).all()
    assert built.champion_version() == "1"

    summary = read_frame(built.root / "scores" / "segment_summary.parquet")
    assert {
        "region",
        "age_band",
        "loyalty_tier",
        "customers",
        "mean_probability",
        "expected_large_buyers",
        "rank",
    } <= set(summary.columns)
    assert summary["customers"].sum() == len(scores)
    assert summary["expected_large_buyers"].is_monotonic_decreasing
    assert summary["rank"].tolist() == list(range(1, len(summary) + 1))

    for entity in ("customers", "transactions"):
        quarantine = read_frame(built.root / "quarantine" / f"quarantined_{entity}" / "default.parquet")
        assert len(quarantine) > 0 and quarantine["reason"].notna().all()


def test_champion_beats_baselines_and_decision_is_recorded(built: Workspace) -> None:
    evaluation = json.loads((built.root / "models" / "model_evaluation.json").read_text())
    roc = evaluation["metrics"]["roc_auc"]
    assert roc > evaluation["baselines"]["demographics_only"]["roc_auc"] + 0.05
    assert roc >= 0.7
    champion = json.loads((built.root / "models" / "champion_model.json").read_text())
    assert champion["decision"] == "promoted" and champion["champion_version"] == "1"
    version = built.client().get_model_version(registry.MODEL_NAME, "1")
    assert version.tags["hvbuyer.promotion"].startswith("promoted")
    run = built.client().get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert float(run.data.metrics["holdout_roc_auc"]) == roc


def test_scores_use_features_as_of_the_latest_transaction(built: Workspace) -> None:
    scores = read_frame(built.root / "scores" / "customer_scores.parquet")
    transactions = built.stored("processed", "clean_transactions")
    assert (scores["features_as_of"] == features.latest_event_time(transactions)).all()


def test_second_run_on_same_data_is_idempotent(workspace_copy: Workspace, deadline: Deadline) -> None:
    before = json.loads((workspace_copy.root / "models" / "model_evaluation.json").read_text())
    raw_before = digest(list(workspace_copy.raw.iterdir()))
    env = {
        **os.environ,
        "HVBUYER_DATA_DIR": str(workspace_copy.root),
        "DAGSTER_HOME": str(workspace_copy.root / "dh"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    (workspace_copy.root / "dh").mkdir()
    # `make materialize`: the drops become partitions, then every asset for the (one) drop
    register = [sys.executable, "-m", "hvbuyer_assets.register_drops"]
    listed = subprocess.run(register, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert listed.stdout.split() == ["default"], listed.stderr[-3000:]
    cli = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "hvbuyer_assets.definitions"]
    cli += ["--select", "*", "--partition", "default"]
    done = deadline.run(cli, "materialize on the same data", cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    after = json.loads((workspace_copy.root / "models" / "model_evaluation.json").read_text())
    # The forest predicts on all cores and adds its trees' votes in thread order: equal up to the last bits.
    assert after["metrics"] == pytest.approx(before["metrics"], rel=1e-12, abs=1e-15)
    registered = json.loads((workspace_copy.root / "models" / "registered_model.json").read_text())
    assert registered["reused"] is True and registered["version"] == "1"
    champion = json.loads((workspace_copy.root / "models" / "champion_model.json").read_text())
    assert champion["decision"] == "kept" and champion["champion_version"] == "1"
    versions = workspace_copy.client().search_model_versions(f"name = '{registry.MODEL_NAME}'")
    assert len(versions) == 1
    assert digest(list(workspace_copy.raw.iterdir())) == raw_before


def test_all_checks_pass_on_sample_data(workspace_copy: Workspace) -> None:
    result = workspace_copy.materialize()
    assert result.success
    evaluations = check_results(result)
    assert len(evaluations) == 16  # 13 data/model checks + onnx_parity + 2 non-blocking checks on the scores
    assert all(e.passed for e in evaluations.values()), {n: e.description for n, e in evaluations.items()}
