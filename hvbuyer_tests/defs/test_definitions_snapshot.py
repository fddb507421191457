"""The Definitions graph (asset keys, groups, dependencies, checks, jobs, sensors, resource keys) against a
checked-in snapshot, so that an accidental change to the graph shows up in review.

After an intended change, regenerate the snapshot and review its diff:

    .venv/bin/python -m pytest hvbuyer_tests/defs/test_definitions_snapshot.py --snapshot-update
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from hvbuyer_assets.definitions import build_definitions, domains
from hvbuyer_assets.settings import load_settings


def graph_of(defs: dg.Definitions) -> dict[str, Any]:
    """What a reviewer must see change: the graph's keys and wiring, nothing environment-specific."""
    graph = defs.resolve_asset_graph()
    assets = {
        key.to_user_string(): {
            "group": graph.get(key).group_name,
            "deps": sorted(parent.to_user_string() for parent in graph.get(key).parent_keys),
            "freshness_policy": graph.get(key).freshness_policy is not None,
            "partitions": _partitions(graph.get(key).partitions_def),
        }
        for key in sorted(graph.get_all_asset_keys())
    }
    checks = {
        f"{key.asset_key.to_user_string()}:{key.name}": {"blocking": graph.get(key).blocking}
        for key in sorted(graph.asset_check_keys)
    }
    jobs = {
        job.name: {
            "assets": sorted(
                key.to_user_string() for key in defs.resolve_job_def(job.name).asset_layer.selected_asset_keys
            ),
            "partitions": _partitions(defs.resolve_job_def(job.name).partitions_def),
        }
        for job in defs.jobs or []
    }
    sensors = {
        sensor.name: {
            "jobs": sorted(target.job_name for target in sensor.targets),
            "default_status": sensor.default_status.value,
        }
        for sensor in defs.sensors or []
    }
    return {
        "domains": domains(),
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "sensors": sensors,
        "resources": sorted(defs.resources or {}),
    }


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    name = getattr(partitions_def, "name", None)
    return f"{type(partitions_def).__name__}:{name}" if name else type(partitions_def).__name__


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_definitions_match_the_snapshot(snapshot_json: SnapshotAssertion) -> None:
    defs = build_definitions(load_settings({}))  # the embedded defaults, whatever this shell's environment says
    assert graph_of(defs) == snapshot_json


def test_the_module_level_definitions_are_the_same_graph() -> None:
    """``dagster dev`` / ``dagster asset materialize -m hvbuyer_assets.definitions`` load ``defs``: the same
    graph as the one built for explicit settings."""
    from hvbuyer_assets.definitions import defs

    assert graph_of(defs) == graph_of(build_definitions(load_settings({})))


def test_the_command_line_console_config_is_the_jobs_default() -> None:
    """`scripts/run.sh` runs one drop with `-c scripts/quiet_console.yaml`: a partition tag on the command line
    drops the job's default run config, so the file must say the same."""
    from pathlib import Path

    import yaml

    from hvbuyer_assets.defs.jobs import QUIET_CONSOLE

    path = Path(__file__).resolve().parents[2] / "scripts" / "quiet_console.yaml"
    assert yaml.safe_load(path.read_text()) == QUIET_CONSOLE


def test_an_ingest_run_leaves_training_and_the_drift_reference_to_the_runs_that_register_versions() -> None:
    """A version's drift reference is written when it is registered (`full_build`, `retrain`): an ingest run
    would load the whole training set only to find it there. The drift report still runs in it."""
    defs = build_definitions(load_settings({}))

    def selected(job: str) -> set[str]:
        return {key.to_user_string() for key in defs.resolve_job_def(job).asset_layer.selected_asset_keys}

    ingest = selected("ingest_drop")
    assert {"clean_transactions", "customer_features", "customer_scores", "score_history"} <= ingest
    assert {"drift_report", "model_performance"} <= ingest
    assert not ingest & {"drift_reference", "training_set", "trained_model", "registered_model", "champion_model"}
    assert "drift_reference" in selected("full_build") & selected("retrain")
