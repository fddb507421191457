"""The one Definitions object of hvbuyer: every domain's assets and checks, resources for this environment."""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.defs.features import assets as feature_assets
from hvbuyer_assets.defs.jobs import JOBS
from hvbuyer_assets.defs.model import assets as model_assets
from hvbuyer_assets.defs.monitoring import assets as monitoring_assets
from hvbuyer_assets.defs.monitoring.freshness import with_freshness
from hvbuyer_assets.defs.raw import assets as raw_assets
from hvbuyer_assets.defs.resources import build_resources
from hvbuyer_assets.defs.scoring import assets as scoring_assets
from hvbuyer_assets.defs.sensors.raw import raw_drop_sensor
from hvbuyer_assets.defs.sensors.retraining import retraining_sensor

ALL_ASSETS = with_freshness(
    dg.load_assets_from_modules([raw_assets, feature_assets, model_assets, scoring_assets, monitoring_assets])
)

# One process per run: the graph is a chain of heavy pandas steps, so forking a process per step would only
# add start-up time and a second copy of the data in memory.
defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=JOBS,
    sensors=[raw_drop_sensor, retraining_sensor],
    resources=build_resources(),
    executor=dg.in_process_executor,
)
