"""Blocking checks on the model: the quality floor before promotion and ONNX parity (rules in ``core.checks``)."""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.core import checks as core_checks
from hvbuyer_assets.defs.metadata import rounded_metadata

MODEL_QUALITY_FLOOR = dg.AssetCheckSpec(
    "model_quality_floor",
    asset="model_evaluation",
    blocking=True,
    description="Hold-out ROC-AUC at or above the configured floor and above the demographics-only baseline; "
    "blocks registration and promotion otherwise.",
)


def quality_floor(metrics: dict[str, float], baseline_roc_auc: float, floor: float) -> dg.AssetCheckResult:
    """``core.checks.quality_floor`` on the candidate's hold-out ROC-AUC."""
    return _result(MODEL_QUALITY_FLOOR.name, core_checks.quality_floor(metrics["roc_auc"], baseline_roc_auc, floor))


ONNX_PARITY = dg.AssetCheckSpec(
    "onnx_parity",
    asset="registered_model",
    blocking=True,
    description="The registered ONNX graph (what the API serves) gives the sklearn model's probabilities on the "
    "hold-out rows within the tolerance; blocks promotion otherwise.",
)


def onnx_parity(
    max_abs_diff: float | None, tolerance: float, rows: int, error: str | None = None
) -> dg.AssetCheckResult:
    """``core.checks.onnx_parity`` of the registered graph."""
    return _result(ONNX_PARITY.name, core_checks.onnx_parity(max_abs_diff, tolerance, rows, error))


def _result(check_name: str, outcome: core_checks.Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=outcome.passed,
        description=outcome.description,
        metadata=rounded_metadata(outcome.metadata),
    )
