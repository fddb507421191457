"""The prediction problem, written once: P(a completed purchase >= threshold within H days after the cutoff).

Labels, features, the training set and the Dagster ``problem`` resource all take their defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemParams:
    """Horizon H, the large-purchase threshold and how many training snapshots the training set stacks."""

    horizon_days: int = 90  # the label window (cutoff, cutoff + H]
    large_purchase_threshold: float = 300.0  # a completed purchase of at least this amount is "large"
    train_snapshots: int = 1  # training snapshots, one every snapshot_step_days back from T - 2H
    snapshot_step_days: int = 30


DEFAULTS = ProblemParams()
HORIZON_DAYS = DEFAULTS.horizon_days
LARGE_PURCHASE_THRESHOLD = DEFAULTS.large_purchase_threshold
