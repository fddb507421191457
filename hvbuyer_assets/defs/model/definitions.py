"""The model domain: train, evaluate, register in MLflow, promote the champion; the registry and tracking."""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.defs.freshness import with_freshness
from hvbuyer_assets.defs.model import assets
from hvbuyer_assets.defs.model.resources import ModelRegistryResource, mlflow_tracking_resource
from hvbuyer_assets.settings import Settings

ASSETS = with_freshness(dg.load_assets_from_modules([assets]))


def build_defs(settings: Settings) -> dg.Definitions:
    """The domain's assets (with their checks), ``model_registry`` (also read by scoring, monitoring and the
    sensors) and dagster-mlflow's ``mlflow`` run tracking (``MLFLOW_TRACKING_URI``)."""
    return dg.Definitions(
        assets=ASSETS,
        resources={
            "model_registry": ModelRegistryResource(
                tracking_uri=settings.mlflow_tracking_uri, ui_url=settings.mlflow_ui_url
            ),
            "mlflow": mlflow_tracking_resource(settings),
        },
    )
