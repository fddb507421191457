"""Each drop processed once, on a real Dagster instance: drops are partitions of the raw and clean assets, a new drop
is parsed and cleaned alone (earlier partitions' files are never rewritten), the cross-drop rules hold (a re-sent
transaction is quarantined naming the earlier drop; the latest customer record wins when drops are read together),
a bad drop fails only its own partition, a one-drop backfill works, and the raw sensor adds one partition per drop
and runs them one at a time in arrival order."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets import datagen
from hvbuyer_assets.storage import partition_paths
from hvbuyer_assets.storage.partitions import read_partitions_after
from hvbuyer_tests.defs.test_raw_sensor import SensorHarness
from hvbuyer_tests.pipeline import PER_DROP_ASSETS, Workspace, arrive, read_frame, write_drop

pytestmark = pytest.mark.slow

CUSTOMERS = 400
LAYERS = ("interim", "processed", "quarantine")


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every per-drop file: its bytes and mtime (ns)."""
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for layer in LAYERS
        for p in sorted((root / layer).rglob("*.parquet"))
    }


def _resend(workspace: Workspace, earlier: str, later: str) -> str:
    """Append the earlier drop's first transaction to the later drop's file; its transaction_id."""
    line = (workspace.raw / f"transactions_{earlier}.json").read_text().splitlines()[0]
    path = workspace.raw / f"transactions_{later}.json"
    path.write_text(path.read_text().rstrip("\n") + "\n" + line + "\n")
    return line.split('"transaction_id":')[1].split('"')[1].strip()


def _new_points(workspace: Workspace, drop: str, customer: str, points: int) -> None:
    """The drop's record of ``customer`` gets other loyalty points."""
    path = workspace.raw / f"customers_{drop}.csv"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(customer + ","):
            lines[i] = ",".join([*line.split(",")[:4], str(points)])
    path.write_text("\n".join(lines) + "\n")


def test_a_new_drop_is_cleaned_alone_and_the_cross_drop_rules_hold(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "data")
    write_drop(workspace.raw, "2026-03-31", customers=CUSTOMERS, seed=5, days=90, drop="q1")
    assert workspace.materialize(selection=PER_DROP_ASSETS).success
    q1_files = _files(workspace.root)
    assert sorted(Path(p).name for p in q1_files) == ["q1.parquet"] * 6

    later = write_drop(workspace.raw, "2026-06-30", customers=CUSTOMERS, seed=5, days=90, drop="q2")
    resent = _resend(workspace, "q1", "q2")
    _new_points(workspace, "q2", "C0000001", 424242)
    arrive(later, "2026-06-30")
    result = workspace.materialize(selection=PER_DROP_ASSETS)
    assert result.success

    # q1's files: same bytes, same mtime (never rewritten); q2 read only its own files
    assert {p: v for p, v in _files(workspace.root).items() if p in q1_files} == q1_files
    meta = result.asset_materializations_for_node("raw_transactions")[0].metadata
    assert meta["files"].value == ["transactions_q2.json"]
    clean_meta = result.asset_materializations_for_node("clean_transactions")[0].metadata
    assert clean_meta["earlier_drops"].value == 1

    # a transaction re-sent in q2 is a duplicate of q1's, which is kept
    quarantine = read_frame(workspace.root / "quarantine" / "quarantined_transactions" / "q2.parquet")
    reason = f"transaction_id {resent} was already received in drop q1; the earlier record was kept"
    assert reason in set(quarantine["reason"].astype(str))
    transactions = workspace.stored("processed", "clean_transactions")
    assert transactions["transaction_id"].is_unique and resent in set(transactions["transaction_id"])

    # the latest customer record wins when the drops are read together (by the IO manager, for features)
    customers = workspace.stored("processed", "clean_customers")
    assert customers["customer_id"].is_unique
    assert customers.set_index("customer_id").loc["C0000001", "loyalty_points"] == 424242
    assert workspace.materialize(selection=["customer_totals", "latest_customers", "customer_features"]).success
    features = read_frame(workspace.root / "features" / "customer_features.parquet")
    assert len(features) == len(customers)

    # a one-drop backfill (a run for partition q1, no file list, as the UI launches it) re-reads q1's files only
    before = read_frame(workspace.root / "processed" / "clean_transactions" / "q1.parquet")
    backfill = workspace.materialize(selection=PER_DROP_ASSETS, partition="q1")
    assert backfill.success
    assert backfill.asset_materializations_for_node("raw_customers")[0].metadata["files"].value == ["customers_q1.csv"]
    after = read_frame(workspace.root / "processed" / "clean_transactions" / "q1.parquet")
    assert after.equals(before)


def test_a_bad_drop_fails_only_its_partition_and_the_next_drop_ingests(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "data")
    write_drop(workspace.raw, "2026-03-31", customers=CUSTOMERS, seed=5, days=90, drop="q1")
    assert workspace.materialize(selection=PER_DROP_ASSETS).success
    bad = write_drop(workspace.raw, "2026-06-30", customers=CUSTOMERS, seed=5, days=90, drop="q2")
    content = bad[1].read_bytes()
    bad[1].write_bytes(content[: content.index(b"\n", 2000) + 30])  # cut in the middle of a record
    arrive(bad, "2026-06-30")
    refused = workspace.materialize(selection=PER_DROP_ASSETS)
    assert not refused.success

    write_drop(workspace.raw, "2026-09-28", customers=CUSTOMERS, seed=5, days=90, drop="q3")
    result = workspace.materialize(selection=PER_DROP_ASSETS, partition="q3")
    assert result.success
    stored = partition_paths(str(workspace.root), "processed", "clean_transactions", ["q1", "q2", "q3"])
    assert [Path(p).name for p in stored] == ["q1.parquet", "q3.parquet"]  # q2 stored nothing
    instance = workspace.instance()
    try:
        materialized = instance.get_materialized_partitions(dg.AssetKey("clean_transactions"))
    finally:
        instance.dispose()
    assert materialized == {"q1", "q3"}


def test_the_sensor_adds_a_partition_per_drop_and_runs_them_one_at_a_time_in_order(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "data")
    staging = tmp_path / "staging"
    datagen.write_drop(staging, CUSTOMERS, seed=5, as_of="2026-03-31", drop="q1")  # 2 years: enough to train
    datagen.write_drop(staging, CUSTOMERS, seed=5, as_of="2026-06-30", days=90, drop="q2")
    workspace.raw.mkdir(parents=True)
    for name, as_of in (("q2", "2026-06-30"), ("q1", "2026-03-31")):  # q2 copied first, but q1 arrived first
        copied = [Path(shutil.copy(p, workspace.raw / p.name)) for p in datagen.drop_paths(staging, name)]
        arrive(copied, as_of)
    with dg.instance_for_test() as instance:
        harness = SensorHarness(workspace.settings, instance)
        assert "to settle" in harness.skip()
        first = harness.request()
        assert instance.get_dynamic_partitions("drops") == ["q1", "q2"]  # both added, in arrival order
        assert first.partition_key == "q1" and first.job_name == "full_build"
        assert first.run_config["ops"]["raw_transactions"]["config"]["files"] == ["transactions_q1.json"]

        # Production runs several runs at once: while q1's run is queued or going, q2 is not requested.
        queued = harness.queue(first)
        reason = harness.skip()
        assert reason == f"drop q1: run {queued.run_id} ({first.run_key}) is in progress; drop q2 waits for it"
        instance.delete_run(queued.run_id)

        assert harness.execute(first).success
        second = harness.request()
        assert second.partition_key == "q2" and second.job_name == "ingest_drop"
        assert second.run_config["ops"]["raw_transactions"]["config"]["files"] == ["transactions_q2.json"]
        assert harness.execute(second).success
        assert harness.skip().startswith("no new raw files (4 files")
        assert instance.get_dynamic_partitions("drops") == ["q1", "q2"]


def test_a_clean_transactions_partition_is_stored_a_month_a_row_group_in_time_order(tmp_path: Path) -> None:
    """Whatever order the export came in, parquet statistics prune a clean partition by time: each row group is
    one UTC month, its rows in time order (``storage.time_groups``), so a window read skips the earlier months."""
    workspace = Workspace(tmp_path / "data")
    paths = write_drop(workspace.raw, "2026-03-31", customers=CUSTOMERS, seed=5, days=90, drop="q1")
    transactions = paths[1]
    lines = transactions.read_text().splitlines()
    random.Random(3).shuffle(lines)  # an export out of time order
    transactions.write_text("\n".join(lines) + "\n")
    arrive(paths, "2026-03-31")
    assert workspace.materialize(selection=PER_DROP_ASSETS).success

    path = workspace.root / "processed" / "clean_transactions" / "q1.parquet"
    stored = pq.ParquetFile(path)
    months = []
    for group in range(stored.num_row_groups):
        stamps = stored.read_row_group(group, columns=["timestamp"]).column("timestamp").to_pandas()
        assert stamps.is_monotonic_increasing
        month = stamps.dt.year * 12 + stamps.dt.month
        assert month.nunique() == 1
        months.append(month.iloc[0])
    assert months == sorted(months) and len(set(months)) == len(months) >= 3
    assert stored.metadata.num_rows == len(read_frame(path))

    # a window starting in the last month reads only that month's row group
    start = pd.Timestamp("2026-03-01", tz="UTC")
    recent = read_partitions_after([str(path)], ["timestamp"], "timestamp", start.value)
    assert len(recent) == stored.read_row_group(stored.num_row_groups - 1).num_rows
