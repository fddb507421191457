"""Checks on features and the training set: the leakage guard and a sane label prevalence."""

from __future__ import annotations

import dagster as dg
import pandas as pd

# A "large purchase within H days" rarer than this leaves too few positives to learn from; more common than
# this means the threshold or the horizon is misconfigured (or the labels leak).
PREVALENCE_MIN = 0.005
PREVALENCE_MAX = 0.60

FEATURES_NOT_AFTER_CUTOFF = dg.AssetCheckSpec(
    "features_not_after_cutoff",
    asset="customer_features",
    blocking=True,
    description="Leakage guard: no feature uses a transaction later than the feature as-of time.",
)
TRAINING_FEATURES_NOT_AFTER_CUTOFF = dg.AssetCheckSpec(
    "training_features_not_after_cutoff",
    asset="training_set",
    blocking=True,
    description="Leakage guard: every training row's features use only transactions at or before its cutoff.",
)
LABEL_PREVALENCE = dg.AssetCheckSpec(
    "label_prevalence_sane",
    asset="training_set",
    blocking=True,
    description=f"Share of positive labels per split within [{PREVALENCE_MIN:.1%}, {PREVALENCE_MAX:.0%}].",
)


def not_after_cutoff(
    check_name: str, last_event_at: pd.Series, cutoff: pd.Series | pd.Timestamp
) -> dg.AssetCheckResult:
    """Pass when every row's latest used event is at or before its cutoff."""
    late = (last_event_at > cutoff).fillna(False)
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not bool(late.any()),
        description=f"{int(late.sum())} rows use events after the cutoff" if late.any() else "no leakage",
        metadata={"rows_after_cutoff": int(late.sum())},
    )


def label_prevalence(training_set: pd.DataFrame) -> dg.AssetCheckResult:
    """Pass when each split's positive share is in the sane range."""
    by_split = training_set.groupby("split", observed=True)["label"].mean().astype(float)
    bad = {split: share for split, share in by_split.items() if not PREVALENCE_MIN <= share <= PREVALENCE_MAX}
    return dg.AssetCheckResult(
        check_name=LABEL_PREVALENCE.name,
        passed=not bad and len(by_split) > 0,
        description=", ".join(f"{s}: {p:.2%}" for s, p in by_split.items()),
        metadata={f"prevalence_{split}": float(share) for split, share in by_split.items()},
    )
