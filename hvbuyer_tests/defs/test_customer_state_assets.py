"""The per-drop customer state in the asset graph, on a real Dagster instance: ``customer_state`` per drop,
``customer_totals`` (the previous total plus the new drop; rebuilt from every drop's state after a drop is
re-cleaned), and ``customer_features`` from the total and the longest window's drops only, equal bit for bit to
the from-scratch features of every clean drop (re-sent transaction, re-sent customer, an old backfill drop)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from upath import UPath

from hvbuyer_assets.engines import EmbeddedEngine
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_assets.storage.files import write_parquet
from hvbuyer_tests.defs.test_drop_partitions import _new_points, _resend
from hvbuyer_tests.pipeline import PER_DROP_ASSETS, Workspace, read_frame, write_drop

pytestmark = pytest.mark.slow

CUSTOMERS = 300
LARGE = 300.0
STATE = [*PER_DROP_ASSETS, "customer_totals", "latest_customers", "customer_features"]


def _from_scratch(workspace: Workspace, tmp_path: Path) -> pd.DataFrame:
    """The reference: features of every stored clean drop read together, stored and read back as the asset is."""
    instance = workspace.instance()
    try:
        drops = workspace.register_drops(instance)
    finally:
        instance.dispose()
    root = str(workspace.root)
    engine = EmbeddedEngine()
    frames = engine.load(
        entry("clean_transactions").drop_files(root, drops), entry("clean_customers").drop_files(root, drops)
    )
    frame = engine.features(frames, engine.data_as_of(frames), LARGE)
    path = UPath(str(tmp_path / "reference.parquet"))
    write_parquet(path, frame, None, preserve_index=True)
    return read_frame(Path(path.path))


def _stored_features(workspace: Workspace) -> pd.DataFrame:
    return read_frame(workspace.root / "features" / "customer_features.parquet")


def _totals(result, asset: str = "customer_totals") -> dict[str, object]:  # noqa: ANN001
    meta = result.asset_materializations_for_node(asset)[0].metadata
    return {key: meta[key].value for key in ("mode", "drops", "drops_combined")}


def _features_read(result) -> tuple[int, int, int]:  # noqa: ANN001
    meta = result.asset_materializations_for_node("customer_features")[0].metadata
    return meta["drops"].value, meta["drops_read_for_windows"].value, meta["customer_files_read"].value


def test_features_from_the_running_total_equal_features_from_scratch(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "data")
    write_drop(workspace.raw, "2026-03-31", customers=CUSTOMERS, seed=5, days=400, drop="q1")
    first = workspace.materialize(selection=STATE)
    assert first.success
    assert _totals(first) == {"mode": "rebuild", "drops": 1, "drops_combined": 1}
    assert _totals(first, "latest_customers") == {"mode": "rebuild", "drops": 1, "drops_combined": 1}

    write_drop(workspace.raw, "2026-06-30", customers=CUSTOMERS, seed=5, days=90, drop="q2")
    _resend(workspace, "q1", "q2")
    _new_points(workspace, "q2", "C0000001", 424242)
    second = workspace.materialize(selection=STATE)
    assert second.success
    assert _totals(second) == {"mode": "incremental", "drops": 2, "drops_combined": 1}
    assert _totals(second, "latest_customers") == {"mode": "incremental", "drops": 2, "drops_combined": 1}
    assert _features_read(second)[2] == 1  # the latest customers table, not every drop's customers
    pd.testing.assert_frame_equal(_stored_features(workspace), _from_scratch(workspace, tmp_path), check_exact=True)
    assert _stored_features(workspace).loc["C0000001", "loyalty_points"] == 424242

    # an old drop arriving late (a backfill of 2024): combined by drop; its rows are outside every window
    write_drop(workspace.raw, "2024-12-31", customers=CUSTOMERS, seed=9, days=200, drop="old")
    third = workspace.materialize(selection=STATE, partition="old")
    assert third.success
    assert _totals(third) == {"mode": "incremental", "drops": 3, "drops_combined": 1}
    assert _totals(third, "latest_customers") == {"mode": "incremental", "drops": 3, "drops_combined": 1}
    assert _features_read(third) == (3, 2, 1)  # "old" is not read for the windows; one customers table
    pd.testing.assert_frame_equal(_stored_features(workspace), _from_scratch(workspace, tmp_path), check_exact=True)

    # q1 cleaned again (a backfill of its partition): only its state is recomputed, the total is then rebuilt from
    # every drop's state; until it is, customer_features refuses a total that no longer holds q1's current state
    assert workspace.materialize(selection=PER_DROP_ASSETS, partition="q1").success
    stale = workspace.materialize(selection=["customer_features"])
    assert not stale.success
    assert "customer_totals does not hold every drop's current customer_state" in str(
        stale.get_step_failure_events()[0].event_specific_data.error
    )
    totals = workspace.materialize(selection=["customer_totals"])
    assert totals.success and _totals(totals)["mode"] == "rebuild"
    assert "q1" in str(totals.asset_materializations_for_node("customer_totals")[0].metadata["why"].value)
    stale = workspace.materialize(selection=["customer_features"])  # nor a latest table without q1's new file
    assert not stale.success
    assert "latest_customers does not hold every drop's current clean_customers" in str(
        stale.get_step_failure_events()[0].event_specific_data.error
    )
    rebuilt = workspace.materialize(selection=["latest_customers", "customer_features"])
    assert rebuilt.success
    assert _totals(rebuilt, "latest_customers") == {"mode": "rebuild", "drops": 3, "drops_combined": 3}
    assert "q1" in str(rebuilt.asset_materializations_for_node("latest_customers")[0].metadata["why"].value)
    pd.testing.assert_frame_equal(_stored_features(workspace), _from_scratch(workspace, tmp_path), check_exact=True)
