"""The feature assets' clean inputs as engine frames: an input manager on their ``ins``.

``customer_features``, ``training_set`` and ``model_performance`` (T and realised labels) keep ``clean_customers``
and ``clean_transactions`` as real inputs (the asset graph, lineage and staleness are unchanged), but load them
through ``engine_inputs`` instead of the pandas IO manager: it finds the stored parquet files of the upstream asset
(one per drop partition of the run's input, in the instance's drop order; its data layer from the asset's metadata)
and has the configured engine read them (``engines.inputs``: projected Arrow tables for the embedded engine, Spark
DataFrames for ``HVBUYER_ENGINE=spark``; for ``clean_customers`` the latest drop's record of a customer wins).
Nothing is stored through it.
"""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.defs.metadata import LAYER_KEY
from hvbuyer_assets.defs.partitions import drop_order
from hvbuyer_assets.engines import inputs
from hvbuyer_assets.engines.spark import SparkOptions
from hvbuyer_assets.settings import Settings

ENGINE_INPUTS = "engine_inputs"  # the resource key
# The ins of an asset that computes features or labels: the clean tables, read by the engine.
ENGINE_INS = {asset: dg.AssetIn(input_manager_key=ENGINE_INPUTS) for asset in (inputs.CUSTOMERS, inputs.TRANSACTIONS)}


class EngineInputManager(dg.ConfigurableIOManager):
    """Loads a stored clean table for the configured engine (``HVBUYER_ENGINE``, ``HVBUYER_SPARK_*``)."""

    base_uri: str
    s3_endpoint_url: str | None = None
    engine: str = "embedded"
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_executor_memory: str | None = None
    spark_shuffle_partitions: int | None = None
    spark_conf: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineInputManager:
        return cls(
            base_uri=settings.data_dir,
            s3_endpoint_url=settings.s3_endpoint_url,
            engine=settings.engine,
            spark_master=settings.spark_master,
            spark_driver_memory=settings.spark_driver_memory,
            spark_executor_memory=settings.spark_executor_memory,
            spark_shuffle_partitions=settings.spark_shuffle_partitions,
            spark_conf=settings.spark_conf,
        )

    def options(self) -> inputs.EngineOptions:
        if self.engine not in ("embedded", "spark"):
            raise ValueError(f"engine {self.engine!r}: expected 'embedded' or 'spark'")
        spark = SparkOptions(
            master=self.spark_master,
            driver_memory=self.spark_driver_memory,
            executor_memory=self.spark_executor_memory,
            shuffle_partitions=self.spark_shuffle_partitions,
            conf=tuple(sorted(self.spark_conf.items())),
            s3_endpoint_url=self.s3_endpoint_url,
        )
        return inputs.EngineOptions(self.engine, self.s3_endpoint_url, spark)  # type: ignore[arg-type]

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        raise NotImplementedError(
            f"{ENGINE_INPUTS} only loads inputs; {context.asset_key.to_user_string()} is stored by the io_manager"
        )

    def load_input(self, context: dg.InputContext) -> inputs.StoredTable:
        asset = context.asset_key.path[-1]
        upstream = context.upstream_output
        layer = ((upstream.definition_metadata if upstream else None) or {}).get(LAYER_KEY, "processed")
        wanted = set(context.asset_partition_keys) if context.has_asset_partitions else set()
        drops = [key for key in drop_order(context.instance) if key in wanted]
        files = inputs.stored_files(self.base_uri, layer, asset, drops, self.s3_endpoint_url)
        if not files:
            raise FileNotFoundError(
                f"{asset}: no stored drop under {self.base_uri}/{layer}/{asset}/ among {', '.join(drops) or 'none'} "
                "(a new Dagster instance on existing data: `python -m hvbuyer_assets.register_drops`)"
            )
        table = inputs.read_table(asset, files, self.options())
        context.log.debug(f"{asset}: {len(files)} drop(s) read by the {self.engine} engine")
        return table
