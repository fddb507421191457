"""Champion/challenger: does a registered candidate replace the current champion?

The candidate is promoted when there is no champion yet, when the champion cannot score today's features, or
when it beats the champion on the same hold-out (``core.evaluation.is_better``: strictly more ROC-AUC than the
champion's + ``min_improvement``; a tie keeps the champion). A candidate that already is the champion is kept.

Population guard (:func:`population_problem`): a drop whose population collapsed (an export bug putting every
customer in one region, a column exported empty) makes the champion look useless on that drop's hold-out and
would let a model trained on the broken data win. So before any metric comparison the candidate's training set is
compared with the champion's reference snapshot (its train rows' features, ``core.drift_report``): a feature that
was diverse in the reference (no single value, missing included, held ``collapse_share`` = 95 % of the rows) but
is dominated by one value in the candidate's train or hold-out rows marks the data as degenerate, and the
champion is kept with that reason. A genuine shift (the drift the retraining loop exists for) moves shares; it
does not put 95 % of customers on one value. Without a reference (a champion whose snapshot is missing) there is
nothing to compare with: the guard does not block and the metrics decide, the record saying it was not checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hvbuyer_assets.core import evaluation

PROMOTED, KEPT = "promoted", "kept"
COLLAPSE_SHARE = 0.95  # one value holding this share of a once-diverse feature's rows = a collapsed population
NOT_CHECKED = "not checked: the champion has no reference snapshot"


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome: ``decision`` is ``promoted`` or ``kept``; ``champion_version`` is the champion afterwards."""

    promote: bool
    reason: str
    candidate_version: str
    previous_champion: str | None

    @property
    def decision(self) -> str:
        return PROMOTED if self.promote else KEPT

    @property
    def champion_version(self) -> str:
        return self.candidate_version if self.promote or self.previous_champion is None else self.previous_champion


def needs_comparison(candidate_version: str, champion_version: str | None) -> bool:
    """True when the champion must be re-scored on the candidate's hold-out: there is one and it is another version."""
    return champion_version is not None and champion_version != candidate_version


def decide(
    candidate_version: str,
    candidate_metrics: Mapping[str, Any],
    champion_version: str | None,
    champion_metrics: Mapping[str, Any] | None = None,
    min_improvement: float = 0.0,
    champion_error: str | None = None,
    degenerate: str | None = None,
) -> PromotionDecision:
    """The promotion decision with its reason.

    ``champion_metrics`` are the champion's metrics on the candidate's hold-out; ``champion_error`` says why it
    could not be scored there (one of the two is required when :func:`needs_comparison`). ``degenerate`` is
    :func:`population_problem`'s finding: when set, an existing champion is kept whatever the metrics say.
    """
    if champion_version is None:
        return PromotionDecision(True, "first model to pass the quality floor", candidate_version, None)
    if not needs_comparison(candidate_version, champion_version):
        return PromotionDecision(
            False, f"version {candidate_version} is already the champion", candidate_version, champion_version
        )
    if degenerate is not None:
        reason = f"candidate v{candidate_version} was trained on degenerate data: {degenerate}"
        return PromotionDecision(False, reason, candidate_version, champion_version)
    if champion_error is not None:
        reason = f"champion v{champion_version} cannot score the current features ({champion_error})"
        return PromotionDecision(True, reason, candidate_version, champion_version)
    if champion_metrics is None:
        raise ValueError(f"champion v{champion_version}: its hold-out metrics or the error scoring it are required")
    promote = evaluation.is_better(candidate_metrics, champion_metrics, min_improvement)
    verb = "beats" if promote else "does not beat"
    reason = (
        f"candidate v{candidate_version} ROC-AUC {candidate_metrics['roc_auc']:.4f} {verb} champion "
        f"v{champion_version} {champion_metrics['roc_auc']:.4f} on the same hold-out"
    )
    return PromotionDecision(promote, reason, candidate_version, champion_version)


def _top_share(values: pd.Series) -> tuple[Any, float]:
    """The most frequent value of a column (missing included, as None) and its share of the rows."""
    counts = values.value_counts(normalize=True, dropna=False)
    if counts.empty:
        return None, 0.0
    top = counts.index[0]
    return (None if pd.isna(top) else top), float(counts.iloc[0])


def population_problem(
    candidate: pd.DataFrame,
    reference: pd.DataFrame | None,
    columns: Sequence[str],
    collapse_share: float = COLLAPSE_SHARE,
) -> str | None:
    """Why the candidate's training set is degenerate against the champion's reference, or None.

    ``candidate`` is the training set (``split`` = ``train`` / ``holdout``), ``reference`` the champion's reference
    snapshot (its train rows' features); ``columns`` the features compared (the drift-voting ones: time-indexed
    features differ by construction). A column collapsed when one value holds ``>= collapse_share`` of the
    candidate's train or hold-out rows while no value held that share of the reference. ``reference`` None: None
    (nothing to compare with; see the module docstring)."""
    if reference is None:
        return None
    problems = []
    for column in columns:
        _, ref_share = _top_share(reference[column])
        if ref_share >= collapse_share:
            continue  # already dominated by one value in the reference: not a collapse
        for part in ("train", "holdout"):
            value, share = _top_share(candidate.loc[candidate["split"] == part, column])
            if share >= collapse_share:
                shown = "missing" if value is None else repr(value)
                problems.append(
                    f"{column} is {shown} in {share:.0%} of the {part} rows "
                    f"(the champion's reference: at most {ref_share:.0%} for any value)"
                )
                break
    return "; ".join(problems) or None
