"""Checks on the batch scores (rules in ``core.checks``): non-blocking, they flag a bad scoring in the UI."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from hvbuyer_assets.core import checks as core_checks
from hvbuyer_assets.defs.metadata import rounded_metadata

SCORES_ARE_PROBABILITIES = dg.AssetCheckSpec(
    "scores_are_probabilities",
    asset="customer_scores",
    description="Every `large_purchase_probability` is a number in [0, 1], none missing.",
)
ONE_SCORE_PER_CUSTOMER = dg.AssetCheckSpec(
    "one_score_per_customer",
    asset="customer_scores",
    description="Exactly one row per customer, and every customer with features is scored.",
)


def scores_are_probabilities(scores: pd.DataFrame) -> dg.AssetCheckResult:
    """``core.checks.probabilities_in_range`` on the scores."""
    return _result(
        SCORES_ARE_PROBABILITIES.name, core_checks.probabilities_in_range(scores["large_purchase_probability"])
    )


def one_score_per_customer(scores: pd.DataFrame, customers: int) -> dg.AssetCheckResult:
    """``core.checks.one_row_per_customer`` on the scores."""
    return _result(ONE_SCORE_PER_CUSTOMER.name, core_checks.one_row_per_customer(scores["customer_id"], customers))


def _result(check_name: str, outcome: core_checks.Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata=rounded_metadata(outcome.metadata),
    )
