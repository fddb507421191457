"""A contract-breaking drop fails its blocking check with the file and problem named, and nothing downstream
(features, model, champion, scores) is replaced; raw files are never touched."""

from __future__ import annotations

import json

from hvbuyer_assets.core import drops
from hvbuyer_tests.pipeline import Workspace, check_results, digest, outputs


def _fail_with(workspace: Workspace, name: str, content: bytes, check: str) -> str:
    """``name`` arrives as a drop of its own (one kind; its _SUCCESS marker completes it) and is refused."""
    (workspace.raw / name).write_bytes(content)
    (workspace.raw / f"_SUCCESS_{drops.drop_name(name)}").write_bytes(b"")
    raw_before = digest(list(workspace.raw.iterdir()))
    outputs_before = digest(outputs(workspace.root))
    champion_before = workspace.champion_version()

    result = workspace.materialize()

    assert not result.success
    evaluation = check_results(result)[check]
    assert not evaluation.passed
    assert digest(outputs(workspace.root)) == outputs_before  # features, models, scores untouched
    assert workspace.champion_version() == champion_before
    assert digest(list(workspace.raw.iterdir())) == raw_before  # raw files are read-only to the pipeline
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not materialized & {
        "customer_features",
        "training_set",
        "trained_model",
        "champion_model",
        "customer_scores",
    }
    return evaluation.description or ""


def test_missing_column_fails_the_customers_contract(workspace_copy: Workspace) -> None:
    content = b"customer_id,age,region,signup_date\nC9000001,40,East,2024-01-01\n"
    message = _fail_with(workspace_copy, "customers_extra.csv", content, "customers_contract")
    assert "customers_extra.csv" in message and "loyalty_points" in message


def test_truncated_json_fails_the_transactions_contract(workspace_copy: Workspace) -> None:
    good = (workspace_copy.raw / "transactions.json").read_bytes()
    truncated = good[: good.index(b"\n", 5000) + 40]  # cut in the middle of a record
    message = _fail_with(workspace_copy, "transactions_late.json", truncated, "transactions_contract")
    assert "transactions_late.json" in message and "line" in message


def test_missing_transaction_column_is_named(workspace_copy: Workspace) -> None:
    rows = [
        {
            "transaction_id": "X1",
            "customer_id": "C0000001",
            "amount": "10",
            "timestamp": "2026-01-01T00:00:00Z",
            "payment_method": "card",
        }
    ]
    content = "\n".join(json.dumps(r) for r in rows).encode()
    message = _fail_with(workspace_copy, "transactions_nostatus.jsonl", content, "transactions_contract")
    assert "transactions_nostatus.jsonl" in message and "status" in message


def test_quality_floor_blocks_promotion(workspace_copy: Workspace) -> None:
    # a different candidate (fewer trees) evaluated against a floor out of reach
    champion_before = workspace_copy.champion_version()
    scores_before = digest(outputs(workspace_copy.root))
    run_config = {
        "ops": {
            "model_evaluation": {"config": {"quality_floor_roc_auc": 0.99}},
            "trained_model": {"config": {"n_estimators": 20}},
        }
    }
    result = workspace_copy.materialize(run_config)
    assert not result.success
    evaluation = check_results(result)["model_quality_floor"]
    assert not evaluation.passed and "below the floor" in (evaluation.description or "")
    assert workspace_copy.champion_version() == champion_before
    scores = [p for p in outputs(workspace_copy.root) if p.parent.name == "scores"]
    assert {str(p): scores_before[str(p)] for p in scores} == digest(scores)
