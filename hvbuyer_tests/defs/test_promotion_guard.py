"""A broken drop must not crown a champion: a later drop whose export put every customer in one region is
retrained on, its model beats the champion on that drop's own (collapsed) hold-out, and the champion stays."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from hvbuyer_assets import registry
from hvbuyer_tests.pipeline import Workspace, arrive, write_drop, write_sample

pytestmark = pytest.mark.slow  # builds the graph itself (see the slow marker in pyproject.toml)

# Up to the champion, plus the champion's reference snapshot the guard compares with.
UP_TO_CHAMPION = ["*champion_model", "drift_reference", "quarantined_customers", "quarantined_transactions"]
WEAK = {"ops": {"trained_model": {"config": {"n_estimators": 3, "max_depth": 2, "min_samples_leaf": 200}}}}
LATER_AS_OF, LATER_DAYS = "2026-11-25", 148  # the same customers, the next 148 days (as test_loop_e2e's drop)


def _decision(workspace: Workspace) -> dict:
    return json.loads((workspace.root / "models" / "champion_model.json").read_text())


def _one_region(customers_csv: Path, region: str) -> None:
    """The export bug: every customer of the drop written with the same region (other columns untouched)."""
    with customers_csv.open() as fh:
        header = fh.readline().strip().split(",")
    as_text = pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False)
    table = pacsv.read_csv(customers_csv, convert_options=as_text)
    table = table.set_column(
        table.schema.get_field_index("region"), "region", pa.array([region] * table.num_rows, pa.string())
    )
    pacsv.write_csv(table, customers_csv, pacsv.WriteOptions(quoting_style="needed"))


def test_a_model_trained_on_a_collapsed_drop_does_not_replace_the_champion(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "data")
    write_sample(workspace.raw)
    assert workspace.materialize(WEAK, UP_TO_CHAMPION).success
    assert workspace.champion_version() == "1"
    assert (workspace.root / "monitoring" / "reference" / "v1.parquet").exists()

    customers, _ = write_drop(workspace.raw, LATER_AS_OF, drop="broken", days=LATER_DAYS)
    _one_region(customers, "North")
    arrive([customers], LATER_AS_OF)
    result = workspace.materialize(selection=UP_TO_CHAMPION)
    assert result.success

    decision = _decision(workspace)
    assert decision["candidate_version"] == "2" and decision["previous_champion"] == "1"
    # On the metrics alone the candidate would have won: the guard is what keeps v1.
    assert decision["candidate_metrics"]["roc_auc"] > decision["champion_metrics"]["roc_auc"]
    assert decision["decision"] == "kept" and decision["champion_version"] == "1"
    assert decision["reason"].startswith("candidate v2 was trained on degenerate data: region is 'North' in 100% of")
    assert decision["population_check"].startswith("degenerate: region is 'North'")
    assert workspace.champion_version() == "1"
    tag = workspace.client().get_model_version(registry.MODEL_NAME, "2").tags["hvbuyer.promotion"]
    assert tag.startswith("kept: candidate v2 was trained on degenerate data")
    metadata = result.asset_materializations_for_node("champion_model")[0].metadata
    assert metadata["decision"].value == "kept" and "degenerate data" in metadata["reason"].value
