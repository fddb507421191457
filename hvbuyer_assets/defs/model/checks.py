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
