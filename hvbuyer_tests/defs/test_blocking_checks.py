"""Every blocking check fails on purpose in a real run of the whole graph (on a copy of the built workspace), and
then its asset stores nothing (its stored file of the last accepted run stays byte for byte: `defs.checks_gate`),
nothing downstream of it is materialized, the champion stays and the scores are not rewritten.

Where real data or configuration can make a check fail, it does (quarantine share, label prevalence; contract and
quality floor: test_contract_failures.py and the hostile corpus). The invariant checks on cleaning and feature
outputs (unique ids, ranges, referential integrity, leakage, ONNX parity) guard against a *bug* in the code before
them: no input can make them fail, so the bug is injected into that code for the run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from hvbuyer_tests.pipeline import Workspace, arrive, check_results, digest

pytestmark = pytest.mark.slow


def _run(workspace: Workspace, resources: dict[str, Any] | None = None, run_config=None, selection=None):
    """A run for the workspace's latest drop (a new drop, or the sample's again)."""
    return workspace.materialize(run_config, selection, resources=resources)


def _downstream(asset: str) -> set[str]:
    """Every asset below ``asset`` in the graph."""
    from hvbuyer_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    found: set[dg.AssetKey] = set()
    todo = set(graph.get(dg.AssetKey(asset)).child_keys)
    while todo:
        key = todo.pop()
        if key not in found:
            found.add(key)
            todo |= set(graph.get(key).child_keys)
    return {key.to_user_string() for key in found}


def _assert_blocked(workspace: Workspace, result: dg.ExecuteInProcessResult, check: str, asset: str, before) -> str:
    """The check failed with ERROR severity; its asset was not materialized and its stored file(s) are the same
    bytes; nothing below it was materialized; the champion and the stored scores are the same."""
    champion, scores, stored = before
    assert not result.success
    evaluation = check_results(result)[check]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    below = _downstream(asset)
    assert "customer_scores" in below or "champion_model" in below
    assert asset not in materialized and not materialized & below, materialized & (below | {asset})
    own = _stored(workspace, asset)
    assert own and digest(own) == {str(p): stored[str(p)] for p in own}
    assert workspace.champion_version() == champion
    assert digest(_scores(workspace)) == scores
    return evaluation.description or ""


def _scores(workspace: Workspace) -> list:
    return sorted((workspace.root / "scores").glob("*.parquet"))


def _stored(workspace: Workspace, asset: str) -> list[Path]:
    """The files an asset stores (`<layer>/<asset>.<ext>`, per drop `<layer>/<asset>/<drop>.parquet`; a cleaning
    asset also stores its quarantine table)."""
    names = {asset, asset.replace("clean_", "quarantined_")} if asset.startswith("clean_") else {asset}
    return sorted(
        p for name in names for pattern in (f"*/{name}.*", f"*/{name}/*.parquet") for p in workspace.root.glob(pattern)
    )


def _before(workspace: Workspace) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """The champion, the scores' digests and every stored asset's digest."""
    stored = [p for p in workspace.root.glob("*/*.*") if p.is_file() and p.parent.name != "raw"]
    stored += list(workspace.root.glob("*/*/*.parquet"))  # per-drop assets
    return workspace.champion_version(), digest(_scores(workspace)), digest(stored)


# ------------------------------------------------------------------ real data and configuration


def _customers_without_ids(workspace: Workspace, rows: int, resent: int = 0) -> None:
    """A customers-only drop (its _SUCCESS marker completes it): ``rows`` rows without an id, after ``resent``
    good rows (the sample's first customers, sent again)."""
    path = workspace.raw / "customers_noids.csv"
    header, *good = (workspace.raw / "customers.csv").read_text().splitlines(keepends=True)
    body = "".join(f",{30 + i % 40},East,2024-01-01,{i}\n" for i in range(rows))
    path.write_text(header + "".join(good[:resent]) + body)
    arrive([path], "2026-06-30")
    (workspace.raw / "_SUCCESS_noids").write_bytes(b"")


def test_quarantine_share_above_30_percent_blocks(workspace_copy: Workspace) -> None:
    before = _before(workspace_copy)
    _customers_without_ids(workspace_copy, 2_000)  # the drop's 2,000 rows set aside
    result = _run(workspace_copy)
    message = _assert_blocked(workspace_copy, result, "customer_quarantine_share", "clean_customers", before)
    assert "quarantined" in message


def test_quarantine_share_above_5_percent_warns_without_blocking(workspace_copy: Workspace) -> None:
    _customers_without_ids(workspace_copy, 300, resent=2_500)  # ~11% of the drop's rows set aside
    selection = ["*customer_features", "quarantined_customers", "quarantined_transactions"]
    result = _run(workspace_copy, selection=selection)
    assert result.success
    evaluation = check_results(result)["customer_quarantine_share"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    share = evaluation.metadata["share"].value
    assert 0.05 < share <= 0.30, share
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"clean_transactions", "customer_features"} <= materialized  # downstream ran


def test_quality_floor_blocks_and_the_stored_evaluation_stays(workspace_copy: Workspace) -> None:
    before = _before(workspace_copy)
    run_config = {
        "ops": {
            "model_evaluation": {"config": {"quality_floor_roc_auc": 0.99}},
            "trained_model": {"config": {"n_estimators": 20}},  # another candidate: another evaluation
        }
    }
    result = _run(workspace_copy, run_config=run_config, selection=["trained_model", "model_evaluation"])
    message = _assert_blocked(workspace_copy, result, "model_quality_floor", "model_evaluation", before)
    assert "below the floor" in message


def test_label_prevalence_out_of_range_blocks(workspace_copy: Workspace) -> None:
    from hvbuyer_assets.definitions import build_resources

    before = _before(workspace_copy)
    problem = build_resources(workspace_copy.settings)["problem"]
    unreachable = type(problem)(**{**problem.model_dump(), "large_purchase_threshold": 1e9})  # no positive label
    result = _run(workspace_copy, resources={"problem": unreachable})
    _assert_blocked(workspace_copy, result, "label_prevalence_sane", "training_set", before)


# ------------------------------------------------------------------ a bug injected into the code the check guards


@contextmanager
def _cleaning_bug(kind: str, corrupt: Callable[[pd.DataFrame], pd.DataFrame]) -> Iterator[None]:
    """The source's cleaning function returns a corrupted clean table for the duration (SOURCES is frozen:
    the field is swapped and put back)."""
    from hvbuyer_assets.core.sources import BY_KIND

    source = BY_KIND[kind]
    original = source.clean

    def buggy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        return dataclasses.replace(result, clean=corrupt(result.clean.copy()))

    object.__setattr__(source, "clean", buggy)
    try:
        yield
    finally:
        object.__setattr__(source, "clean", original)


def _duplicate_first(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[:1]], ignore_index=True)


def _set_first(column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame.index[0], column] = value
        return frame

    return corrupt


CLEANING_BUGS = [
    ("customers", _duplicate_first, "customer_ids_unique", "clean_customers"),
    ("customers", _set_first("age", 500.0), "customer_values_in_range", "clean_customers"),
    ("transactions", _duplicate_first, "transaction_ids_unique", "clean_transactions"),
    ("transactions", _set_first("amount", -5.0), "transaction_values_valid", "clean_transactions"),
    (
        "transactions",
        _set_first("customer_id", "C-NOBODY"),
        "transactions_reference_known_customers",
        "clean_transactions",
    ),
]


@pytest.mark.parametrize(("kind", "corrupt", "check", "asset"), CLEANING_BUGS, ids=[c[2] for c in CLEANING_BUGS])
def test_cleaning_invariant_checks_block_a_cleaning_bug(
    workspace_copy: Workspace, kind: str, corrupt: Callable, check: str, asset: str
) -> None:
    before = _before(workspace_copy)
    with _cleaning_bug(kind, corrupt):
        result = _run(workspace_copy)
    _assert_blocked(workspace_copy, result, check, asset, before)


def test_leakage_guard_blocks_features_that_use_a_later_event(
    workspace_copy: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvbuyer_assets.core import features

    real = features.state_features_frame  # what customer_features calls, on any engine

    def leaky(*args: Any, **kwargs: Any) -> pd.DataFrame:
        frame = real(*args, **kwargs)
        frame.loc[frame.index[0], "last_event_at"] = frame["feature_as_of"].iloc[0] + pd.Timedelta(days=1)
        return frame

    monkeypatch.setattr(features, "state_features_frame", leaky)
    before = _before(workspace_copy)
    result = _run(workspace_copy)
    _assert_blocked(workspace_copy, result, "features_not_after_cutoff", "customer_features", before)


def test_onnx_parity_blocks_a_graph_that_disagrees(workspace_copy: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    from hvbuyer_assets.core import model

    real = model.to_onnx

    def other_forest(fitted: Any) -> bytes:  # a converter bug: the graph of a different (3-tree) forest
        wrong = copy.deepcopy(fitted)
        forest = wrong.steps[-1][1]
        forest.estimators_, forest.n_estimators = forest.estimators_[:3], 3
        return real(wrong)

    monkeypatch.setattr(model, "to_onnx", other_forest)
    before = _before(workspace_copy)
    new_model = {"ops": {"trained_model": {"config": {"n_estimators": 20}}}}  # a new version: converted anew
    result = _run(workspace_copy, run_config=new_model)
    message = _assert_blocked(workspace_copy, result, "onnx_parity", "registered_model", before)
    assert "> 1e-04" in message
