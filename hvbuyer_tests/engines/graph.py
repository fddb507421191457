"""The graph both Spark tests compare with the embedded engine: two generated drops, each parsed and cleaned once in
its own drop partition (3,000 customers; then the same customers 90 days later, the ``RESENT`` ones with other
loyalty points), then features -> training set -> model -> evaluation run by Dagster on an engine, each engine in
its own copy of the data dir (and of the Dagster instance that holds the drop partitions).

``test_spark_engine.py`` runs Spark on ``local[2]``, ``test_spark_cluster.py`` on the standalone cluster of
``make spark-up``; both assert the same three things here: features, training rows and labels, hold-out metrics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pytest

from hvbuyer_assets.definitions import build_resources
from hvbuyer_assets.settings import load_settings
from hvbuyer_tests.pipeline import PER_DROP_ASSETS, Workspace, arrive, read_frame, write_drop, write_sample

TOLERANCE = 1e-9
GRAPH = ["customer_totals", "latest_customers", "customer_features", "training_set", "trained_model"]
GRAPH.append("model_evaluation")
LATER_AS_OF = "2026-09-28"  # the second drop: 90 more days of the same customers
RESENT = {f"C000000{i}": 4000.0 + i for i in range(1, 6)}  # customers whose second-drop record has other points


def clean_two_drops(root: Path) -> Workspace:
    """A workspace whose two drops are parsed and cleaned, each in its own partition."""
    base = Workspace(root)
    write_sample(base.raw)
    assert base.materialize(selection=PER_DROP_ASSETS).success  # the first drop's partition
    later = write_drop(base.raw, LATER_AS_OF, drop="q2", days=90)
    lines = later[0].read_text().splitlines()
    for i, line in enumerate(lines[1 : 1 + len(RESENT)], start=1):
        assert line.split(",")[0] == list(RESENT)[i - 1], line
        lines[i] = ",".join([*line.split(",")[:4], str(RESENT[line.split(",")[0]])])
    later[0].write_text("\n".join(lines) + "\n")
    arrive(later, LATER_AS_OF)
    assert base.materialize(selection=PER_DROP_ASSETS, partition="q2").success
    stored = sorted(p.name for p in (base.root / "processed" / "clean_customers").iterdir())
    assert stored == ["default.parquet", "q2.parquet"]
    return base


def run_graph(base: Workspace, dest: Path, env: Mapping[str, str], state_drops: Sequence[str] = ()) -> Workspace:
    """``GRAPH`` run by Dagster on a copy of ``base`` with the settings of ``env`` (``HVBUYER_ENGINE`` ...); first,
    each drop of ``state_drops`` has its ``customer_state`` computed again, by that engine."""
    workspace = base.copy_to(dest)
    settings = load_settings(
        {
            **env,
            "HVBUYER_DATA_DIR": str(workspace.root),
            "MLFLOW_TRACKING_URI": workspace.settings.mlflow_tracking_uri,
        }
    )
    for drop in state_drops:
        state = workspace.materialize(selection=["customer_state"], partition=drop, resources=build_resources(settings))
        assert state.success, f"customer_state of {drop} on {settings.engine}"
        metadata = state.asset_materializations_for_node("customer_state")[0].metadata
        assert metadata["engine"].value == settings.engine
    result = workspace.materialize(selection=GRAPH, resources=build_resources(settings))
    failures = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert result.success, f"{settings.engine} ({settings.spark_master}): {failures}"
    materializations = [e.materialization for e in result.get_asset_materialization_events()]
    engines = {
        m.asset_key.to_user_string(): m.metadata["engine"].value for m in materializations if "engine" in m.metadata
    }
    assert engines == {
        "customer_totals": settings.engine,
        "latest_customers": settings.engine,
        "customer_features": settings.engine,
        "training_set": settings.engine,
    }
    return workspace


def assert_same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Same rows, columns and dtypes; numbers within TOLERANCE, everything else equal."""
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=0, atol=TOLERANCE)


def assert_same_features(spark: Workspace, embedded: Workspace) -> None:
    on_spark, on_embedded = (read_frame(w.root / "features" / "customer_features.parquet") for w in (spark, embedded))
    assert len(on_spark) == 3000 and on_spark.index.is_unique
    assert (on_spark["n_transactions"] > 0).sum() > 2500
    resent = on_spark.loc[list(RESENT), "loyalty_points"]
    assert resent.tolist() == list(RESENT.values())  # the second drop's record of a re-sent customer
    assert_same(on_spark, on_embedded)


def assert_same_training_rows(spark: Workspace, embedded: Workspace) -> None:
    on_spark, on_embedded = (read_frame(w.root / "features" / "training_set.parquet") for w in (spark, embedded))
    assert set(on_spark["split"]) == {"train", "holdout"} and on_spark["label"].sum() > 50
    keys = ["customer_id", "cutoff", "split"]
    pd.testing.assert_frame_equal(on_spark[keys], on_embedded[keys])  # the same rows in the same order
    assert on_spark["label"].equals(on_embedded["label"])
    assert_same(on_spark, on_embedded)


def assert_same_holdout_metrics(spark: Workspace, embedded: Workspace) -> None:
    on_spark, on_embedded = (
        json.loads((w.root / "models" / "model_evaluation.json").read_text()) for w in (spark, embedded)
    )
    assert on_spark["holdout_rows"] == on_embedded["holdout_rows"]
    assert on_spark["holdout_cutoff"] == on_embedded["holdout_cutoff"]
    assert set(on_spark["metrics"]) == set(on_embedded["metrics"]) and "roc_auc" in on_spark["metrics"]
    assert set(on_spark["baselines"]) == set(on_embedded["baselines"])
    for model, metrics in {"candidate": on_embedded["metrics"], **on_embedded["baselines"]}.items():
        got = on_spark["metrics"] if model == "candidate" else on_spark["baselines"][model]
        assert got == pytest.approx(metrics, abs=TOLERANCE, rel=0), model


def assert_same_state(spark: Workspace, embedded: Workspace, drops: Sequence[str]) -> None:
    """Each drop's ``customer_state`` partition, the same on both engines: the same customers and values within
    TOLERANCE (a partition's row order is not part of it: compared by customer_id)."""
    for drop in drops:
        on_spark, on_embedded = (
            read_frame(w.root / "features" / "customer_state" / f"{drop}.parquet")
            .sort_values("customer_id")
            .reset_index(drop=True)
            for w in (spark, embedded)
        )
        assert len(on_spark) > 1000, drop
        assert_same(on_spark, on_embedded)
