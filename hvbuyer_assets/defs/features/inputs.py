"""The feature assets' clean inputs as engine tables: an input manager on their ``ins``.

``training_set`` keeps ``clean_customers`` and ``clean_transactions`` as real inputs (the asset graph, lineage and
staleness are unchanged), but loads them through ``engine_inputs`` instead of the pandas IO manager: it finds the stored
parquet files of the upstream asset (one per drop partition of the run's input, in the instance's drop order, where
``storage.catalog`` puts them) and has the deployment's engine read them (``engines.interface.Engine.read``: projected
Arrow tables on the embedded engine, Spark DataFrames on Spark; for ``clean_customers`` the latest drop's record of a
customer wins). The engine is chosen once, when the definitions are built (``engines.engine_for``). Nothing is stored
through it. ``customer_features`` and ``model_performance`` use the same resource's engine and paths to read what a drop
does not make grow instead (``defs.features.state``: the running total, ``latest_customers``, the window's drops only).
"""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.defs.partitions import stored_drop_files
from hvbuyer_assets.engines import Engine, engine_for
from hvbuyer_assets.engines.interface import CUSTOMERS, TRANSACTIONS, StoredTable, input_asset
from hvbuyer_assets.settings import Settings

ENGINE_INPUTS = "engine_inputs"  # the resource key
# The ins of an asset that computes features or labels: the clean tables, read by the engine.
ENGINE_INS = {asset: dg.AssetIn(input_manager_key=ENGINE_INPUTS) for asset in (CUSTOMERS, TRANSACTIONS)}


class EngineInputManager(dg.IOManager):
    """Loads a stored clean table with ``engine`` (a plain IO manager holding the engine object: Dagster wraps it as
    a hard-coded resource, so the engine is built once per process from the settings, never from run config)."""

    def __init__(self, engine: Engine, base_uri: str, s3_endpoint_url: str | None = None) -> None:
        self.engine = engine
        self.base_uri = base_uri
        self.s3_endpoint_url = s3_endpoint_url

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineInputManager:
        return cls(engine_for(settings), settings.data_dir, settings.s3_endpoint_url)

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        raise NotImplementedError(
            f"{ENGINE_INPUTS} only loads inputs; {context.asset_key.to_user_string()} is stored by the io_manager"
        )

    def load_input(self, context: dg.InputContext) -> StoredTable:
        asset = input_asset(context.asset_key.path[-1])
        files = stored_drop_files(context, asset, self.base_uri, self.s3_endpoint_url)
        table = self.engine.read(asset, files)
        context.log.debug(f"{asset.name}: {len(files)} drop(s) read by the {self.engine.name} engine")
        return table
