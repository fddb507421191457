"""The IO manager's per-drop assets read back by an unpartitioned consumer: every stored drop in drop order, and for
an asset declaring it, the latest drop's record of a key wins (``cleaning.history.latest_rows``, on Arrow)."""

from pathlib import Path

import dagster as dg
import pandas as pd

from hvbuyer_assets.defs.io_manager import LayeredStorageIOManager
from hvbuyer_assets.defs.metadata import metadata_of
from hvbuyer_assets.defs.partitions import DROPS
from hvbuyer_assets.storage.catalog import StoredAsset

DROP_ROWS = {
    "q1": pd.DataFrame({"customer_id": ["A", "B", "C"], "age": [30.0, 40.0, 50.0]}),
    "q2": pd.DataFrame({"customer_id": ["D", "A"], "age": [60.0, 31.0]}),  # A re-sent with a new age
}


@dg.asset(partitions_def=DROPS, metadata=metadata_of(StoredAsset("per_drop", "processed", True, "customer_id")))
def per_drop(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return DROP_ROWS[context.partition_key]


@dg.asset(partitions_def=DROPS, metadata=metadata_of(StoredAsset("appended", "processed", per_drop=True)))
def appended(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return DROP_ROWS[context.partition_key]


@dg.asset(metadata=metadata_of(StoredAsset("read_back", "features")))
def read_back(per_drop: pd.DataFrame, appended: pd.DataFrame) -> dict:
    return {"latest": per_drop.to_dict("list"), "index": list(per_drop.index), "all": appended.to_dict("list")}


def test_an_unpartitioned_consumer_reads_every_drop_and_the_latest_record_wins(tmp_path: Path) -> None:
    resources = {"io_manager": LayeredStorageIOManager(base_uri=str(tmp_path))}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DROPS.name, ["q2", "q1"])  # arrival order, not name order
        for drop in ("q1", "q2"):
            assert dg.materialize([per_drop, appended], partition_key=drop, resources=resources, instance=instance)
        result = dg.materialize(
            [per_drop, appended, read_back], selection=[read_back], resources=resources, instance=instance
        )
    seen = result.output_for_node("read_back")
    # q2 arrived first, so q1's record of A is the latest; rows keep their drop order, the index is new
    assert seen["latest"] == {"customer_id": ["D", "A", "B", "C"], "age": [60.0, 30.0, 40.0, 50.0]}
    assert seen["index"] == [0, 1, 2, 3]
    assert seen["all"] == {"customer_id": ["D", "A", "A", "B", "C"], "age": [60.0, 31.0, 30.0, 40.0, 50.0]}
