"""Holdout evaluation: metrics, calibration and lift tables, PNG plots, champion comparison."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn import metrics

if TYPE_CHECKING:  # matplotlib is imported where a plot is drawn, not by every process loading the definitions
    from matplotlib.figure import Figure

PRIMARY_METRIC = "roc_auc"
SCALAR_METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "brier", "log_loss", "prevalence", "n")
N_BINS = 10


def _arrays(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(proba, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but proba has {p.size}")
    if y.size == 0:
        raise ValueError("cannot evaluate on zero rows")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must be 0/1")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("proba must be probabilities in [0, 1]")
    return y, p


def calibration_table(y_true: Any, proba: Any, n_bins: int = N_BINS) -> pd.DataFrame:
    """Quantile bins of the predicted probability: bin (1 = lowest), n, mean_predicted, observed_rate.

    Rows are ranked by probability (stable order on ties) and cut into ``n_bins`` equal-count bins, so tied
    scores never leave bins empty; fewer rows than bins give one row per bin that has data.
    """
    y, p = _arrays(y_true, proba)
    order = np.argsort(p, kind="stable")
    bins = np.empty(y.size, dtype=np.int64)
    bins[order] = np.arange(y.size) * n_bins // y.size + 1
    frame = pd.DataFrame({"bin": bins, "y": y, "p": p})
    table = frame.groupby("bin").agg(n=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"))
    return table.reset_index()


def lift_table(y_true: Any, proba: Any, n_bins: int = N_BINS) -> pd.DataFrame:
    """Lift by decile of score (decile 1 = highest scores; stable order on ties).

    Columns: decile, n, positives, rate, lift (rate / prevalence), cumulative_capture (share of all positives
    in deciles 1..d), cumulative_lift (cumulative rate / prevalence). Lift is NaN when there are no positives.
    """
    y, p = _arrays(y_true, proba)
    order = np.argsort(-p, kind="stable")
    deciles = np.empty(y.size, dtype=np.int64)
    deciles[order] = np.arange(y.size) * n_bins // y.size + 1
    frame = pd.DataFrame({"decile": deciles, "y": y})
    table = frame.groupby("decile").agg(n=("y", "size"), positives=("y", "sum")).reset_index()
    prevalence = y.mean()
    table["rate"] = table["positives"] / table["n"]
    total_pos = y.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        table["lift"] = table["rate"] / prevalence if prevalence > 0 else np.nan
        cum_pos = table["positives"].cumsum()
        table["cumulative_capture"] = cum_pos / total_pos if total_pos > 0 else np.nan
        cum_rate = cum_pos / table["n"].cumsum()
        table["cumulative_lift"] = cum_rate / prevalence if prevalence > 0 else np.nan
    return table


def evaluate(y_true: Any, proba: Any) -> dict[str, Any]:
    """Holdout metrics via sklearn.metrics plus tables.

    Scalars: roc_auc, pr_auc (average precision), brier, log_loss, prevalence, n. roc_auc / pr_auc are NaN
    when y_true has a single class. Tables (DataFrames): ``calibration`` (see ``calibration_table``) and
    ``lift`` (see ``lift_table``). ``SCALAR_METRICS`` lists the scalar keys (e.g. for MLflow).
    """
    y, p = _arrays(y_true, proba)
    both = np.unique(y).size == 2
    return {
        "roc_auc": float(metrics.roc_auc_score(y, p)) if both else math.nan,
        "pr_auc": float(metrics.average_precision_score(y, p)) if both else math.nan,
        "brier": float(metrics.brier_score_loss(y, p)),
        "log_loss": float(metrics.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "prevalence": float(y.mean()),
        "n": int(y.size),
        "calibration": calibration_table(y, p),
        "lift": lift_table(y, p),
    }


def scalar_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Only the scalar metrics of an ``evaluate`` result (floats; n as float), e.g. for MLflow log_metrics."""
    return {name: float(result[name]) for name in SCALAR_METRICS}


def is_better(
    candidate_metrics: Mapping[str, Any], champion_metrics: Mapping[str, Any] | None, min_delta: float = 0.0
) -> bool:
    """Does the candidate beat the champion on ``PRIMARY_METRIC`` (roc_auc, higher is better)?

    True iff candidate > champion + min_delta (strict). Ties (and improvements <= min_delta) are NOT better,
    so re-running on identical data keeps the champion. No champion (None, or a missing/NaN metric) -> True
    when the candidate's metric is a number; a NaN/missing candidate metric is never better.
    """
    if min_delta < 0:
        raise ValueError(f"min_delta must be >= 0, got {min_delta}")
    candidate = candidate_metrics.get(PRIMARY_METRIC)
    if candidate is None or math.isnan(float(candidate)):
        return False
    champion = None if champion_metrics is None else champion_metrics.get(PRIMARY_METRIC)
    if champion is None or math.isnan(float(champion)):
        return True
    return float(candidate) > float(champion) + min_delta


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def roc_points(y_true: Any, proba: Any, max_points: int = 1000) -> dict[str, Any]:
    """The ROC curve as plain lists (``fpr``, ``tpr``, rounded to 4 decimals, at most ``max_points`` of its
    points) and its ``auc``, e.g. to store with the evaluation and plot it again later; empty lists and a NaN AUC
    when y_true has a single class."""
    y, p = _arrays(y_true, proba)
    if np.unique(y).size < 2:
        return {"fpr": [], "tpr": [], "auc": math.nan}
    fpr, tpr, _ = metrics.roc_curve(y, p)
    if fpr.size > max_points:  # enough for a plot, whatever the hold-out's size; both ends kept
        keep = np.unique(np.linspace(0, fpr.size - 1, max_points).astype(np.int64))
        fpr, tpr = fpr[keep], tpr[keep]
    return {
        "fpr": np.round(fpr, 4).tolist(),
        "tpr": np.round(tpr, 4).tolist(),
        "auc": float(metrics.roc_auc_score(y, p)),
    }


def _style(index: int) -> dict[str, Any]:
    """The first model (the candidate) solid and thick, the ones it is compared with thinner and dashed."""
    return {"linewidth": 2.2} if index == 0 else {"linewidth": 1.3, "linestyle": (0, (5, 2))}


def plot_roc_curves(curves: Mapping[str, Mapping[str, Any]]) -> bytes:
    """ROC curves of several models on one chart ({label: ``roc_points``}, candidate first), as PNG bytes."""
    fig = _figure(figsize=(5.5, 5.5))
    ax = fig.add_subplot()
    for index, (label, curve) in enumerate(curves.items()):
        if curve["fpr"]:
            ax.plot(curve["fpr"], curve["tpr"], label=f"{label} (AUC {curve['auc']:.4f})", **_style(index))
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance (AUC 0.5)")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the hold-out")
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig)


def plot_roc(y_true: Any, proba: Any | Mapping[str, Any]) -> bytes:
    """ROC curve(s) as PNG bytes; ``proba`` is one score array or {label: scores} to compare models."""
    scores = proba if isinstance(proba, Mapping) else {"model": proba}
    return plot_roc_curves({label: roc_points(y_true, p) for label, p in scores.items()})


def _by_model(table: pd.DataFrame | Mapping[str, pd.DataFrame]) -> Mapping[str, pd.DataFrame]:
    return {"model": table} if isinstance(table, pd.DataFrame) else table


def plot_calibration(calibration: pd.DataFrame | Mapping[str, pd.DataFrame]) -> bytes:
    """Reliability diagram (mean predicted vs observed rate per bin) of one ``calibration_table`` or of
    {label: table} on one chart (candidate first), as PNG."""
    tables = _by_model(calibration)
    fig = _figure(figsize=(5.5, 5.5))
    ax = fig.add_subplot()
    top = max(max(float(t["mean_predicted"].max()), float(t["observed_rate"].max())) for t in tables.values())
    top = max(top, 0.01)
    ax.plot([0, top], [0, top], linestyle=":", color="grey", label="perfectly calibrated")
    for index, (label, table) in enumerate(tables.items()):
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=label, **_style(index))
    ax.set(
        xlabel="mean predicted probability (per score decile)",
        ylabel="observed rate",
        title="Calibration on the hold-out",
    )
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def plot_lift(lift: pd.DataFrame | Mapping[str, pd.DataFrame]) -> bytes:
    """Lift per score decile of one ``lift_table`` (bars) or of {label: table} (lines, candidate first), as PNG."""
    tables = _by_model(lift)
    fig = _figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    if isinstance(lift, pd.DataFrame):
        ax.bar(lift["decile"].astype(str), lift["lift"].fillna(0.0))
    else:
        for index, (label, table) in enumerate(tables.items()):
            ax.plot(table["decile"], table["lift"].fillna(0.0), marker="o", label=label, **_style(index))
        ax.set_xticks(list(next(iter(tables.values()))["decile"]))
        ax.legend(loc="upper right", fontsize="small")
    ax.axhline(1.0, linestyle=":", color="grey")
    ax.set(xlabel="score decile (1 = highest scores)", ylabel="lift (rate / prevalence)", title="Lift on the hold-out")
    return _png(fig)


def plot_score_histogram(probabilities: Any, bins: int = 40) -> bytes:
    """Distribution of the scores (P(large purchase)) with their mean, as PNG bytes."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    fig = _figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    ax.hist(p, bins=bins, range=(0.0, 1.0), color="#2e86c1")
    if p.size:
        ax.axvline(float(p.mean()), color="black", linestyle="--", linewidth=1, label=f"mean {p.mean():.4f}")
        ax.legend(loc="upper right", fontsize="small")
    ax.set(xlabel="P(large purchase within the horizon)", ylabel="customers", title=f"Scores of {p.size} customers")
    return _png(fig)
