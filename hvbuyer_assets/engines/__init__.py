"""Engines that run the feature declaration (``core.feature_defs``): ``embedded`` (polars in-process,
``core.engine``, the default) or ``spark`` (``engines.spark``), chosen by ``HVBUYER_ENGINE``. ``inputs`` reads the
stored clean tables for the chosen engine; pyspark is imported only when the engine is spark."""
