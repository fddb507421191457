"""The drops as Dagster partitions: one dynamic partition per raw drop (key ``core.drops.label``: the drop's name,
``default`` for the unnamed one), added by ``raw_drop_sensor`` in arrival order. The raw and clean assets are
partitioned by drop; everything downstream is not, and reads every stored drop (``hvbuyer_assets.storage``)."""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.storage.catalog import StoredAsset

DROPS = dg.DynamicPartitionsDefinition(name="drops")


def drop_order(instance: dg.DagsterInstance) -> list[str]:
    """Every drop partition key, in the order the sensor added them (arrival order)."""
    return list(instance.get_dynamic_partitions(DROPS.name))


def earlier_drops(instance: dg.DagsterInstance, key: str) -> list[str]:
    """The drop partition keys added before ``key``."""
    order = drop_order(instance)
    return order[: order.index(key)] if key in order else order


def drops_read(context: dg.InputContext) -> list[str]:
    """The drop partitions an input reads, in arrival order (keys the instance does not list, by name, last)."""
    wanted = set(context.asset_partition_keys) if context.has_asset_partitions else set()
    known = drop_order(context.instance)
    return [key for key in known if key in wanted] + sorted(wanted - set(known))


def stored_drop_files(
    context: dg.InputContext, asset: StoredAsset, base_uri: str, endpoint_url: str | None = None
) -> list[str]:
    """The stored files of the drops an input reads (``StoredAsset.drop_files``); FileNotFoundError when none is
    stored."""
    drops = drops_read(context)
    files = asset.drop_files(base_uri, drops, endpoint_url)
    if not files:
        raise FileNotFoundError(
            f"asset {asset.name} has no stored partition among {', '.join(drops) or 'none'} under "
            f"{asset.stem(base_uri)}/ (a new Dagster instance on existing data: "
            "`python -m hvbuyer_assets.register_drops` adds the drops as partitions again)"
        )
    return files
