"""The raw domain is built from the sources declaration: its assets and checks are exactly the declared ones, the
raw drop sensor configures every declared raw asset, and a source declared elsewhere (a products CSV, only in this
test) becomes working assets with no other code."""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg
import pandas as pd

from hvbuyer_assets.core import contract
from hvbuyer_assets.core.cleaning import QUARANTINE_COLUMNS, CleanResult
from hvbuyer_assets.core.cleaning.history import EarlierDrops
from hvbuyer_assets.core.sources import SOURCES, RawSource, ValueCheck
from hvbuyer_assets.defs.io_manager import LayeredStorageIOManager
from hvbuyer_assets.defs.partitions import DROPS
from hvbuyer_assets.defs.raw.assets import clean_asset, raw_asset
from hvbuyer_assets.defs.raw.definitions import ASSETS
from hvbuyer_assets.defs.raw.resources import IngestResource, RawStorageResource
from hvbuyer_assets.defs.sensors.raw import raw_run_config
from hvbuyer_tests.pipeline import read_frame


def _keys(assets: list[dg.AssetsDefinition]) -> set[str]:
    return {key.to_user_string() for asset in assets for key in asset.keys}


def _checks(assets: list[dg.AssetsDefinition]) -> set[tuple[str, str]]:
    return {(spec.asset_key.to_user_string(), spec.name) for asset in assets for spec in asset.check_specs}


def test_the_raw_domain_holds_exactly_the_declared_assets_and_checks() -> None:
    assets = list(ASSETS)
    assert _keys(assets) == {n for s in SOURCES for n in (s.raw_asset, s.clean_asset, s.quarantine_asset)}
    expected_checks = set()
    for source in SOURCES:
        expected_checks.add((source.raw_asset, source.contract_check))
        for name in (source.unique_check, *(c.name for c in source.checks), source.share_check):
            expected_checks.add((source.clean_asset, name))
    assert _checks(assets) == expected_checks
    graph = dg.Definitions(
        assets=assets, resources={"raw_storage": RawStorageResource(uri="/nowhere"), "ingest": IngestResource()}
    ).resolve_asset_graph()
    by_name = {s.kind: s for s in SOURCES}
    for source in SOURCES:
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(source.clean_asset)).parent_keys}
        # its raw table, the clean tables it needs, and every raw asset (each contract check gates every cleaning)
        assert parents == {*(s.raw_asset for s in SOURCES), *(by_name[kind].clean_asset for kind in source.needs)}
        assert graph.get(dg.AssetKey(source.raw_asset)).group_name == "raw"
        assert graph.get(dg.AssetKey(source.quarantine_asset)).group_name == "processed"


def test_the_raw_drop_sensor_configures_every_declared_raw_asset() -> None:
    files = {f"{p.replace('*', '_q3')}": "1-1" for s in SOURCES for p in s.patterns}
    ops = raw_run_config(files)["ops"]
    assert set(ops) == {s.raw_asset for s in SOURCES}
    for source in SOURCES:
        assert ops[source.raw_asset]["config"]["files"] == sorted(p.replace("*", "_q3") for p in source.patterns)


PRODUCT_COLUMNS = ("product_id", "name", "price")


def _clean_products(raw: pd.DataFrame, earlier: EarlierDrops) -> CleanResult:
    """A deliberately small cleaning rule for the example source: the latest row per product_id (within a drop;
    ``latest_wins`` across drops)."""
    clean = raw[list(PRODUCT_COLUMNS)].drop_duplicates("product_id", keep="last").reset_index(drop=True)
    quarantine = pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    stats = {"rows_read": len(raw), "rows_clean": len(clean), "rows_dropped": 0, "duplicates": len(raw) - len(clean)}
    return CleanResult(clean=clean, quarantine=quarantine, stats={**stats, "values_nulled": 0})


PRODUCTS = RawSource(
    kind="products",
    record="product",
    patterns=("products*.csv",),
    form="csv",
    columns=PRODUCT_COLUMNS,
    reader=functools.partial(contract.iter_csv_file, columns=PRODUCT_COLUMNS),
    clean=_clean_products,
    key="product_id",
    raw_description="Every products*.csv in the raw location.",
    contract_description="Every products*.csv parses and has the contract columns.",
    clean_description="One row per product.",
    latest_wins=True,
    checks=(ValueCheck("product_prices_present", "products without a price", lambda clean: clean["price"].isna()),),
)


def test_a_new_source_is_one_declaration(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "products_q3.csv").write_text("product_id,name,price,colour\nP1,mug,5,red\nP2,pen,1,\nP1,mug,6,blue\n")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(DROPS.name, ["q3"])  # what raw_drop_sensor does for a new drop
    result = dg.materialize(
        [raw_asset(PRODUCTS), clean_asset(PRODUCTS)],
        resources={
            "raw_storage": RawStorageResource(uri=str(raw)),
            "ingest": IngestResource(),
            "io_manager": LayeredStorageIOManager(base_uri=str(tmp_path)),
        },
        instance=instance,
        partition_key="q3",
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "products_contract": True,
        "product_ids_unique": True,
        "product_prices_present": True,
        "product_quarantine_share": True,
    }
    clean = read_frame(tmp_path / "processed" / "clean_products" / "q3.parquet")
    assert clean.values.tolist() == [["P2", "pen", "1"], ["P1", "mug", "6"]]
    meta = result.asset_materializations_for_node("raw_products")[0].metadata
    assert meta["files"].value == ["products_q3.csv"] and meta["rows"].value == 3
