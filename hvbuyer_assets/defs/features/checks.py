"""Checks on features and the training set: the leakage guard and a sane label prevalence."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from hvbuyer_assets.core import checks as core_checks
from hvbuyer_assets.core.checks import PREVALENCE_MAX, PREVALENCE_MIN
from hvbuyer_assets.defs.metadata import rounded_metadata

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

TRAINING_SET_CHECKS = [TRAINING_FEATURES_NOT_AFTER_CUTOFF, LABEL_PREVALENCE]


def not_after_cutoff(
    check_name: str, last_event_at: pd.Series, cutoff: pd.Series | pd.Timestamp
) -> dg.AssetCheckResult:
    """``core.checks.not_after_cutoff``: every row's latest used event is at or before its cutoff."""
    return _result(check_name, core_checks.not_after_cutoff(last_event_at, cutoff))


def late_rows(check_name: str, late: int) -> dg.AssetCheckResult:
    """``core.checks.rows_after_cutoff``: the leakage guard from a count of late rows."""
    return _result(check_name, core_checks.rows_after_cutoff(late))


def label_prevalence(training_set: pd.DataFrame) -> dg.AssetCheckResult:
    """``core.checks.label_prevalence``: each split's positive share is in the sane range."""
    return _result(LABEL_PREVALENCE.name, core_checks.label_prevalence(training_set))


def _result(check_name: str, outcome: core_checks.Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=outcome.passed,
        description=outcome.description,
        metadata=rounded_metadata(outcome.metadata),
    )
