"""Wall-clock freshness of the served model and the scores (Dagster ``FreshnessPolicy``, shown in the UI).

These are signals for operators, not retraining triggers: retraining is decided in data time by the
retraining sensor (a stale model on unchanged data would only be retrained on identical data).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import dagster as dg

# champion_model is re-decided by every retrain: warn after two weeks without one, fail after a month.
CHAMPION_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=30), warn_window=timedelta(days=14))
# customer_scores are refreshed by every drop and retrain: warn after two days, fail after a week.
SCORES_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=7), warn_window=timedelta(days=2))

POLICIES = {"champion_model": CHAMPION_FRESHNESS, "customer_scores": SCORES_FRESHNESS}


def _with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    policy = POLICIES.get(spec.key.to_user_string())
    return spec if policy is None else spec.replace_attributes(freshness_policy=policy)


def with_freshness(assets: Iterable[dg.AssetsDefinition]) -> Sequence[dg.AssetsDefinition]:
    """The assets with the policies above attached (the others unchanged); every domain passes its assets here."""
    return dg.map_asset_specs(_with_policy, list(assets))
