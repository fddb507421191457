"""The drops as Dagster partitions: one dynamic partition per raw drop (key ``core.drops.label``: the drop's name,
``default`` for the unnamed one), added by ``raw_drop_sensor`` in arrival order. The raw and clean assets are
partitioned by drop; everything downstream is not, and reads every stored drop (``hvbuyer_assets.storage``)."""

from __future__ import annotations

import dagster as dg

DROPS = dg.DynamicPartitionsDefinition(name="drops")


def drop_order(instance: dg.DagsterInstance) -> list[str]:
    """Every drop partition key, in the order the sensor added them (arrival order)."""
    return list(instance.get_dynamic_partitions(DROPS.name))


def earlier_drops(instance: dg.DagsterInstance, key: str) -> list[str]:
    """The drop partition keys added before ``key``."""
    order = drop_order(instance)
    return order[: order.index(key)] if key in order else order
