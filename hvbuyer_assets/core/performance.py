"""Concept drift: realised performance of archived scores once their labels have matured.

A scoring made with features as of ``t`` predicts the window (t, t + H]. Its labels are known ("matured") once
the data's as-of time T has reached ``t + H``; they are computed with ``core.labels`` (the training label
definition) on any engine's ``Frames`` of the clean tables, so the realised ROC-AUC / Brier are directly
comparable with the model's hold-out figures.
Per model version the latest matured scoring is judged (:func:`latest_matured`, :func:`evaluate_scoring`);
the status and ``degraded`` refer to the current champion only (:func:`status`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics

from hvbuyer_assets.core import engine, labels
from hvbuyer_assets.core.features import to_utc

ARCHIVE_COLUMNS: tuple[str, ...] = ("customer_id", "large_purchase_probability", "model_version", "features_as_of")
_ARCHIVE_NAME = re.compile(r"^(?P<date>\d{8}T\d{6}Z)_v(?P<version>[0-9A-Za-z.-]+)$")
MIN_MATURED_ROWS = 200


@dataclass(frozen=True)
class ArchiveKey:
    """One archived scoring: the features' as-of time and the model version that scored them."""

    as_of: pd.Timestamp
    version: str

    @property
    def stem(self) -> str:
        """File stem ``<as_of as 20260630T000000Z>_v<version>`` (sortable by as-of)."""
        return f"{self.as_of:%Y%m%dT%H%M%SZ}_v{self.version}"


def archive_key(stem: str) -> ArchiveKey | None:
    """Parse an archive file stem written by :attr:`ArchiveKey.stem`; None for anything else."""
    match = _ARCHIVE_NAME.match(stem)
    if match is None:
        return None
    return ArchiveKey(pd.Timestamp(match["date"]).tz_convert("UTC"), match["version"])


def archive_frame(scores: pd.DataFrame) -> tuple[ArchiveKey, pd.DataFrame]:
    """The archive row set of one ``customer_scores`` output and its key.

    Raises ValueError if the scores mix feature as-of times or model versions (one scoring = one of each).
    """
    missing = [c for c in ARCHIVE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"customer_scores lacks column(s) {missing} needed for the score archive")
    as_of = pd.to_datetime(scores["features_as_of"], utc=True).unique()
    versions = scores["model_version"].astype(str).unique()
    if len(as_of) != 1 or len(versions) != 1:
        raise ValueError(
            f"one scoring must have one features_as_of and one model_version, got {len(as_of)} and {len(versions)}"
        )
    return ArchiveKey(to_utc(as_of[0]), str(versions[0])), scores[list(ARCHIVE_COLUMNS)].reset_index(drop=True)


def is_matured(as_of: Any, data_as_of: Any, horizon_days: int) -> bool:
    """True once the data covers the whole label window of a scoring made as of ``as_of``."""
    return to_utc(data_as_of) >= to_utc(as_of) + pd.Timedelta(days=horizon_days)


def realised_metrics(labels: np.ndarray, proba: np.ndarray) -> dict[str, float | int | None]:
    """rows, positives, prevalence, mean_probability, Brier and ROC-AUC (None with a single class)."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} probabilities")
    if y.size == 0:
        raise ValueError("no matured rows to evaluate")
    both = 0 < y.sum() < y.size
    return {
        "rows": int(y.size),
        "positives": int(y.sum()),
        "prevalence": float(y.mean()),
        "mean_probability": float(p.mean()),
        "brier": float(metrics.brier_score_loss(y, p)),
        "roc_auc": float(metrics.roc_auc_score(y, p)) if both else None,
    }


@dataclass(frozen=True)
class PerformanceRule:
    """When realised performance counts as a drop: ROC-AUC more than ``max_auc_drop`` below the hold-out
    figure, on at least ``min_rows`` matured scores with both classes present."""

    max_auc_drop: float = 0.05
    min_rows: int = MIN_MATURED_ROWS


def compare(
    realised: Mapping[str, Any], expected: Mapping[str, Any], rule: PerformanceRule = PerformanceRule()
) -> dict[str, Any]:
    """Realised vs. expected (hold-out) figures -> ``{"degraded": bool, "auc_drop", "brier_change", "reason"}``."""
    expected_auc = expected.get("roc_auc")
    realised_auc = realised.get("roc_auc")
    out: dict[str, Any] = {"auc_drop": None, "brier_change": None, "degraded": False}
    if expected.get("brier") is not None and realised.get("brier") is not None:
        out["brier_change"] = float(realised["brier"]) - float(expected["brier"])
    if realised.get("rows", 0) < rule.min_rows:
        out["reason"] = f"only {realised.get('rows', 0)} matured rows (< {rule.min_rows}): no judgement"
        return out
    if realised_auc is None or expected_auc is None or math.isnan(float(expected_auc)):
        out["reason"] = "ROC-AUC undefined (a single class in the realised labels, or no hold-out figure)"
        return out
    out["auc_drop"] = float(expected_auc) - float(realised_auc)
    out["degraded"] = out["auc_drop"] > rule.max_auc_drop
    verb = "dropped" if out["degraded"] else "held"
    out["reason"] = (
        f"realised ROC-AUC {float(realised_auc):.4f} vs hold-out {float(expected_auc):.4f}: {verb} "
        f"(drop {out['auc_drop']:+.4f}, limit {rule.max_auc_drop})"
    )
    return out


def archive_keys(stems: Iterable[str]) -> list[ArchiveKey]:
    """The archived scorings among file stems (anything else is ignored), in the given order."""
    return [k for k in map(archive_key, stems) if k is not None]


def latest_matured(keys: Iterable[ArchiveKey], data_as_of: Any, horizon_days: int) -> dict[str, ArchiveKey]:
    """Per model version (sorted by version), its latest scoring whose label window the data now covers."""
    latest: dict[str, ArchiveKey] = {}
    for key in sorted((k for k in keys if is_matured(k.as_of, data_as_of, horizon_days)), key=lambda k: k.as_of):
        latest[key.version] = key
    return dict(sorted(latest.items()))


def label_span(keys: Iterable[ArchiveKey], horizon_days: int) -> tuple[int, int]:
    """``(start, end)`` in ns such that every label window ``(as_of, as_of + H]`` of ``keys`` lies in
    ``(start, end]``: the only transactions their labels read (ValueError without a key)."""
    windows = [labels.label_window(key.as_of, horizon_days) for key in keys]
    if not windows:
        raise ValueError("no archived scoring: no label window")
    return min(start.value for start, _ in windows), max(end.value for _, end in windows)


def expected_metrics(holdout: Mapping[str, Any] | None, roc_auc_tag: str | None = None) -> dict[str, float | None]:
    """A version's hold-out ROC-AUC / Brier: its run's metrics, the ROC-AUC tag when the run lacks it; all None
    for a version that no longer exists (``holdout`` None)."""
    if holdout is None:
        return {"roc_auc": None, "brier": None}
    return {
        "roc_auc": holdout.get("roc_auc", None if roc_auc_tag is None else float(roc_auc_tag)),
        "brier": holdout.get("brier"),
    }


def evaluate_scoring(
    key: ArchiveKey,
    archived: pd.DataFrame,
    frames: engine.Frames,
    expected: Mapping[str, Any],
    rule: PerformanceRule,
    horizon_days: int,
    threshold: float,
) -> dict[str, Any]:
    """One archived scoring judged on its realised labels (the training label definition, computed by the engine
    of ``frames``, the clean tables; an archived customer unknown to them counts as 0) against ``expected``."""
    realised_labels = labels.labels_of(frames, archived["customer_id"], key.as_of, horizon_days, threshold)
    realised = realised_metrics(
        realised_labels.to_numpy(), archived["large_purchase_probability"].to_numpy(dtype=np.float64)
    )
    return {
        "model_version": key.version,
        "scored_as_of": key.as_of.isoformat(),
        "label_window_end": labels.label_window(key.as_of, horizon_days)[1].isoformat(),
        "realised": realised,
        "expected": dict(expected),
        **compare(realised, expected, rule),
    }


def status(
    evaluations: Sequence[Mapping[str, Any]],
    keys: Sequence[ArchiveKey],
    champion: str,
    data_as_of: pd.Timestamp,
    horizon_days: int,
) -> tuple[str, str, bool]:
    """(status, reason, degraded) of the champion: ``evaluated`` (degraded as its evaluation says),
    ``no_matured_champion_scores`` or ``no_matured_scores`` (with when the earliest scoring matures)."""
    own = next((e for e in evaluations if e["model_version"] == champion), None)
    if not evaluations:
        waiting = min((k.as_of for k in keys), default=None)
        reason = "no matured scores yet"
        if waiting is not None:
            reason += (
                f": the earliest archived scoring (as of {waiting:%Y-%m-%d %H:%M}) matures once the data reaches "
                f"{labels.label_window(waiting, horizon_days)[1]:%Y-%m-%d %H:%M} "
                f"(data as of {data_as_of:%Y-%m-%d %H:%M})"
            )
        return "no_matured_scores", reason, False
    if own is None:
        return "no_matured_champion_scores", f"no matured scores of champion v{champion} yet", False
    return "evaluated", own["reason"], bool(own["degraded"])


def performance_report(
    evaluations: Sequence[Mapping[str, Any]],
    keys: Sequence[ArchiveKey],
    champion: str,
    data_as_of: pd.Timestamp,
    horizon_days: int,
    rule: PerformanceRule,
) -> dict[str, Any]:
    """The stored ``model_performance`` value: the champion's status and every version's evaluation."""
    state, reason, degraded = status(evaluations, keys, champion, data_as_of, horizon_days)
    return {
        "status": state,
        "reason": reason,
        "degraded": degraded,
        "champion_version": champion,
        "data_as_of": data_as_of.isoformat(),
        "horizon_days": horizon_days,
        "rule": {"max_auc_drop": rule.max_auc_drop, "min_rows": rule.min_rows},
        "evaluations": list(evaluations),
    }


def evaluations_table(evaluations: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per evaluated version: realised vs hold-out ROC-AUC / Brier and the degraded flag."""
    return pd.DataFrame(
        [
            {
                "version": e["model_version"],
                "scored_as_of": e["scored_as_of"][:10],
                "rows": e["realised"]["rows"],
                "realised_roc_auc": e["realised"]["roc_auc"],
                "holdout_roc_auc": e["expected"]["roc_auc"],
                "realised_brier": e["realised"]["brier"],
                "holdout_brier": e["expected"]["brier"],
                "degraded": e["degraded"],
            }
            for e in evaluations
        ]
    )
