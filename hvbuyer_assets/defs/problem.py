"""The prediction problem as the `problem` resource of the features, model and monitoring assets.

Its defaults are `core.problem.ProblemParams`'s: a run launched by a sensor (no run config) and a run launched
with the defaults in the UI answer the same problem as the core functions called without arguments.
"""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.core.problem import DEFAULTS, ProblemParams

PROBLEM = "problem"  # the resource key


class PredictionProblem(dg.ConfigurableResource):
    """Horizon H, the large-purchase threshold and the training snapshots (`core.problem.ProblemParams`)."""

    horizon_days: int = DEFAULTS.horizon_days
    large_purchase_threshold: float = DEFAULTS.large_purchase_threshold
    train_snapshots: int = DEFAULTS.train_snapshots
    snapshot_step_days: int = DEFAULTS.snapshot_step_days

    def params(self) -> ProblemParams:
        """As the core's frozen parameter object."""
        return ProblemParams(**self.model_dump())
