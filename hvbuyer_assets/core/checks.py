"""Pass/fail rules of the blocking checks on features, the training set and the model (``defs/*/checks.py``
turn each :class:`Outcome` into a Dagster check result).

- leakage: no row's features use an event after its cutoff;
- label prevalence: each split's positive share within [``PREVALENCE_MIN``, ``PREVALENCE_MAX``];
- quality floor: hold-out ROC-AUC >= the floor and above the demographics-only baseline;
- ONNX parity: the served ONNX graph gives the sklearn probabilities within the tolerance;
- quarantine share: the share of a drop's rows that cleaning set aside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # the service reads settings (and so this module) without the cleaning kernels
    from hvbuyer_assets.core.cleaning.quarantine import CommonReason

# A "large purchase within H days" rarer than this leaves too few positives to learn from; more common than
# this means the threshold or the horizon is misconfigured (or the labels leak).
PREVALENCE_MIN = 0.005
PREVALENCE_MAX = 0.60
# Share of a drop's rows set aside (duplicates excluded): real exports lose a few percent; far more means a broken
# export. A share over a handful of rows is no evidence of that: below QUARANTINE_MIN_ROWS rows the rule only warns
# (the rows are quarantined like any others). Setting: HVBUYER_QUARANTINE_MIN_ROWS.
QUARANTINE_WARN_SHARE = 0.05
QUARANTINE_ERROR_SHARE = 0.30
QUARANTINE_MIN_ROWS = 100


@dataclass(frozen=True)
class Outcome:
    """A check's verdict, what it says and the figures behind it (plain values)."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    blocking: bool = True  # False: a failure only warns (severity WARN)


def not_after_cutoff(last_event_at: pd.Series, cutoff: pd.Series | pd.Timestamp) -> Outcome:
    """Pass when every row's latest used event is at or before its cutoff (missing = no event)."""
    return rows_after_cutoff(int((last_event_at > cutoff).fillna(False).sum()))


def rows_after_cutoff(late: int) -> Outcome:
    """``not_after_cutoff`` from the count of rows whose latest used event is after their cutoff (counted where
    the rows are: an engine's executors)."""
    return Outcome(
        passed=late == 0,
        description=f"{late} rows use events after the cutoff" if late else "no leakage",
        metadata={"rows_after_cutoff": late},
    )


def label_prevalence(training_set: pd.DataFrame) -> Outcome:
    """Pass when there are rows and each split's positive share is in the sane range."""
    by_split = training_set.groupby("split", observed=True)["label"].mean().astype(float)
    bad = {split: share for split, share in by_split.items() if not PREVALENCE_MIN <= share <= PREVALENCE_MAX}
    return Outcome(
        passed=not bad and len(by_split) > 0,
        description=", ".join(f"{s}: {p:.2%}" for s, p in by_split.items()),
        metadata={f"prevalence_{split}": float(share) for split, share in by_split.items()},
    )


def quality_floor(roc_auc: float, baseline_roc_auc: float, floor: float) -> Outcome:
    """Pass when the candidate's hold-out ROC-AUC clears the absolute floor and beats the demographics-only
    baseline (NaN passes neither)."""
    roc_auc = float(roc_auc)
    problems = []
    if not roc_auc >= floor:
        problems.append(f"hold-out ROC-AUC {roc_auc:.4f} below the floor {floor:.2f}")
    if not roc_auc > baseline_roc_auc:
        problems.append(f"hold-out ROC-AUC {roc_auc:.4f} not above the demographics-only {baseline_roc_auc:.4f}")
    return Outcome(
        passed=not problems,
        description="; ".join(problems) or f"ROC-AUC {roc_auc:.4f} >= floor {floor:.2f}",
        metadata={"roc_auc": roc_auc, "floor": floor, "demographics_only_roc_auc": baseline_roc_auc},
    )


def onnx_parity(max_abs_diff: float | None, tolerance: float, rows: int, error: str | None = None) -> Outcome:
    """Pass when ONNX Runtime and sklearn agree on every hold-out row (max |diff| <= tolerance); a failed
    conversion or scoring (``error``, or no difference measured) fails."""
    if error is not None or max_abs_diff is None:
        passed, description = False, f"ONNX conversion or scoring failed: {error}"
    else:
        passed = max_abs_diff <= tolerance
        verb = "<=" if passed else ">"
        description = f"max |ONNX - sklearn| = {max_abs_diff:.2e} {verb} {tolerance:.0e} over {rows} hold-out rows"
    return Outcome(
        passed=passed,
        description=description,
        metadata={"max_abs_diff": -1.0 if max_abs_diff is None else max_abs_diff, "tolerance": tolerance, "rows": rows},
    )


def probabilities_in_range(probabilities: pd.Series) -> Outcome:
    """Pass when every score is a probability: a number in [0, 1], none missing."""
    values = pd.to_numeric(probabilities, errors="coerce").astype("float64")
    bad = int((~values.between(0.0, 1.0)).sum())  # NaN is not between
    return Outcome(
        passed=bad == 0,
        description=f"{bad} scores missing or outside [0, 1]" if bad else f"all {len(values)} scores in [0, 1]",
        metadata={"rows_outside": bad, "min": float(values.min()), "max": float(values.max())},
    )


def one_row_per_customer(customer_ids: pd.Series, expected: int) -> Outcome:
    """Pass when every customer appears exactly once and as many customers as the features have are scored."""
    duplicates = int(customer_ids.duplicated().sum())
    problems = [f"{duplicates} duplicate customer ids"] if duplicates else []
    if len(customer_ids) != expected:
        problems.append(f"{len(customer_ids)} rows for {expected} customers with features")
    return Outcome(
        passed=not problems,
        description="; ".join(problems) or f"one row for each of the {expected} customers",
        metadata={"rows": len(customer_ids), "customers": expected, "duplicates": duplicates},
    )


def dropped_share(rows_read: int, rows_dropped: int) -> float:
    """The share of a drop's rows that cleaning quarantined (0 for an empty drop)."""
    return float(rows_dropped / max(rows_read, 1))


def quarantine_share(
    rows_read: int, rows_dropped: int, reasons: list[CommonReason], min_rows: int = QUARANTINE_MIN_ROWS
) -> Outcome:
    """Pass up to ``QUARANTINE_WARN_SHARE`` of the rows dropped; above ``QUARANTINE_ERROR_SHARE`` block, if the
    drop has at least ``min_rows`` rows (else warn). ``reasons``: the most common reasons of the dropped rows (per
    file), named in the description and the metadata, since a blocked drop stores no quarantine to look at."""
    share = dropped_share(rows_read, rows_dropped)
    enough = rows_read >= min_rows
    description = f"{share:.2%} of {rows_read} rows quarantined"
    if share > QUARANTINE_WARN_SHARE and reasons:
        description += "; most common: " + "; ".join(str(r) for r in reasons)
    if share > QUARANTINE_ERROR_SHARE and not enough:
        description += f" (fewer than {min_rows} rows: too few to call the export broken, so only a warning)"
    return Outcome(
        passed=share <= QUARANTINE_WARN_SHARE,
        description=description,
        metadata={
            "share": share,
            "rows_read": int(rows_read),
            "rows_dropped": int(rows_dropped),
            "min_rows": int(min_rows),
            "common_reasons": [
                {"file": r.file, "reason": r.reason, "rows": r.rows, "example": r.example} for r in reasons
            ],
        },
        blocking=share > QUARANTINE_ERROR_SHARE and enough,
    )
