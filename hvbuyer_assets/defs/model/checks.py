"""The quality floor a model must pass before it may be promoted."""

from __future__ import annotations

import dagster as dg

MODEL_QUALITY_FLOOR = dg.AssetCheckSpec(
    "model_quality_floor",
    asset="model_evaluation",
    blocking=True,
    description="Hold-out ROC-AUC at or above the configured floor and above the demographics-only baseline; "
    "blocks registration and promotion otherwise.",
)


def quality_floor(metrics: dict[str, float], baseline_roc_auc: float, floor: float) -> dg.AssetCheckResult:
    """Pass when the candidate clears the absolute floor and beats the demographics-only baseline."""
    roc_auc = float(metrics["roc_auc"])
    problems = []
    if not roc_auc >= floor:
        problems.append(f"hold-out ROC-AUC {roc_auc:.4f} below the floor {floor:.2f}")
    if not roc_auc > baseline_roc_auc:
        problems.append(f"hold-out ROC-AUC {roc_auc:.4f} not above the demographics-only {baseline_roc_auc:.4f}")
    return dg.AssetCheckResult(
        check_name=MODEL_QUALITY_FLOOR.name,
        passed=not problems,
        description="; ".join(problems) or f"ROC-AUC {roc_auc:.4f} >= floor {floor:.2f}",
        metadata={"roc_auc": roc_auc, "floor": floor, "demographics_only_roc_auc": baseline_roc_auc},
    )


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
    """Pass when ONNX Runtime and sklearn agree on every hold-out row (max |diff| <= tolerance)."""
    if error is not None or max_abs_diff is None:
        description = f"ONNX conversion or scoring failed: {error}"
        passed = False
    else:
        passed = max_abs_diff <= tolerance
        verb = "<=" if passed else ">"
        description = f"max |ONNX - sklearn| = {max_abs_diff:.2e} {verb} {tolerance:.0e} over {rows} hold-out rows"
    return dg.AssetCheckResult(
        check_name=ONNX_PARITY.name,
        passed=passed,
        description=description,
        metadata={"max_abs_diff": -1.0 if max_abs_diff is None else max_abs_diff, "tolerance": tolerance, "rows": rows},
    )
