"""The storage catalog (``storage.catalog``): where each asset lives, one file or one per drop, and which key's latest
record wins when drops are read together; the Definitions' assets carry exactly their catalog entry, so the IO
manager, the engines and the service all find the same files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets.core.sources import SOURCES
from hvbuyer_assets.definitions import defs
from hvbuyer_assets.defs.metadata import metadata_of, stored_asset
from hvbuyer_assets.storage.catalog import CATALOG, StoredAsset, entry


def test_every_asset_of_the_definitions_is_stored_where_the_catalog_says() -> None:
    graph = defs.resolve_asset_graph()
    names = set()
    for key in graph.get_all_asset_keys():
        node, name = graph.get(key), key.path[-1]
        names.add(name)
        declared = entry(name)
        assert metadata_of(declared) == {k: v for k, v in node.metadata.items() if k.startswith("hvbuyer/")}, name
        assert declared.per_drop == (node.partitions_def is not None), name
        assert stored_asset(name, node.metadata, declared.per_drop) == declared
    assert names == set(CATALOG)  # nothing declared that the graph does not store


def test_the_layout_of_whole_and_per_drop_assets() -> None:
    scores = entry("customer_scores")
    assert scores.path("s3://lake/data/") == "s3://lake/data/scores/customer_scores.parquet"
    assert scores.path("/d", ".json") == "/d/scores/customer_scores.json"
    assert entry("customer_features").relative() == "features/customer_features.parquet"
    clean = entry("clean_transactions")
    assert clean.drop_path("/d", "2026-05") == "/d/processed/clean_transactions/2026-05.parquet"
    with pytest.raises(ValueError, match="clean_transactions is stored per drop"):
        clean.path("/d")
    with pytest.raises(ValueError, match="partition key '../x'"):
        clean.drop_path("/d", "../x")


def test_only_re_sent_records_have_a_latest_wins_key() -> None:
    keys = {name: e.latest_wins_by for name, e in CATALOG.items() if e.latest_wins_by}
    assert keys == {s.clean_asset: s.key for s in SOURCES if s.latest_wins} == {"clean_customers": "customer_id"}
    with pytest.raises(ValueError, match="x: unknown data layer 'feature'; expected one of raw, interim"):
        StoredAsset("x", "feature")
    with pytest.raises(ValueError, match="a latest-wins key needs an asset stored per drop"):
        StoredAsset("x", "features", latest_wins_by="customer_id")
    with pytest.raises(ValueError, match=r"asset 'nope' is not in the storage catalog .*clean_customers"):
        entry("nope")


def _drops(root: Path, asset: StoredAsset, tables: dict[str, pa.Table]) -> None:
    for drop, table in tables.items():
        path = Path(asset.drop_path(str(root), drop))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)


def test_drops_read_together_in_the_given_order_and_the_latest_record_wins(tmp_path: Path) -> None:
    customers, transactions = entry("clean_customers"), entry("clean_transactions")
    _drops(
        tmp_path,
        customers,
        {
            "q2": pa.table({"customer_id": ["D", "A"], "age": [60.0, 31.0]}),
            "q1": pa.table({"customer_id": ["A", "B"], "age": [30.0, 40.0]}),
        },
    )
    _drops(
        tmp_path, transactions, {"q1": pa.table({"customer_id": ["A", "A"]}), "q2": pa.table({"customer_id": ["A"]})}
    )
    files = customers.drop_files(str(tmp_path), ["q1", "never", "q2"])  # a drop never stored is left out
    assert [Path(f).stem for f in files] == ["q1", "q2"]
    latest = customers.read_drops(files).to_pydict()
    assert latest == {"customer_id": ["B", "D", "A"], "age": [40.0, 60.0, 31.0]}  # q2 came last: its A wins
    first_last = customers.read_drops(files[::-1], ["customer_id", "age"]).to_pydict()
    assert first_last == {"customer_id": ["D", "A", "B"], "age": [60.0, 30.0, 40.0]}  # now q1's A is the latest
    every = transactions.read_drops(transactions.drop_files(str(tmp_path), ["q1", "q2"]))
    assert every.num_rows == 3  # no latest-wins key: every drop's rows
