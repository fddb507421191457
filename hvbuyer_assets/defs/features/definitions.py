"""The features domain: the per-drop customer state and its running total, point-in-time customer features as of T
and the temporal training set."""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.defs.features import assets, state
from hvbuyer_assets.defs.features.inputs import ENGINE_INPUTS, EngineInputManager
from hvbuyer_assets.defs.freshness import with_freshness
from hvbuyer_assets.settings import Settings

ASSETS = with_freshness(dg.load_assets_from_modules([state, assets]))


def build_defs(settings: Settings) -> dg.Definitions:
    """The domain's assets (with their checks) and ``engine_inputs``, which loads their clean inputs for the
    configured engine; they also use the shared ``problem`` resource."""
    return dg.Definitions(assets=ASSETS, resources={ENGINE_INPUTS: EngineInputManager.from_settings(settings)})
