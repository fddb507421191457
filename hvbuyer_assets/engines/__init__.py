"""Engines that run the feature declaration (``core.feature_defs``) on the stored clean tables, behind one interface
(``interface.Engine``): ``embedded.EmbeddedEngine`` (Arrow + polars in-process, the default) and
``spark.SparkEngine``. :func:`engine_for` picks one from ``Settings`` (``HVBUYER_ENGINE``) when the definitions are
built; pyspark is imported only when a Spark engine first reads. No Dagster import."""

from __future__ import annotations

from hvbuyer_assets.engines.embedded import EmbeddedEngine
from hvbuyer_assets.engines.interface import Engine
from hvbuyer_assets.engines.spark import SparkEngine
from hvbuyer_assets.settings import Settings

ENGINES: dict[str, type[EmbeddedEngine] | type[SparkEngine]] = {
    EmbeddedEngine.name: EmbeddedEngine,
    SparkEngine.name: SparkEngine,
}


def engine_for(settings: Settings) -> Engine:
    """The engine ``settings`` choose (``HVBUYER_ENGINE``), configured from them: the one place the name is read."""
    return ENGINES[settings.engine].from_settings(settings)


__all__ = ["ENGINES", "EmbeddedEngine", "Engine", "SparkEngine", "engine_for"]
