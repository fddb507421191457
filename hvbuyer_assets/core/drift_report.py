"""The monitoring drift report: which features vote, the champion's reference, and the report with its verdict.

``core.drift`` computes the statistics and the verdict over given columns; this module decides which columns
those are and assembles what the ``drift_reference`` / ``drift_report`` assets store.

Time-indexed features (``time_indexed=True`` in ``core.feature_spec``) depend on how long the observed history
is, for every customer alike: all-time counts and sums, ratios over the whole history (their spread narrows as
it grows), and ages measured from a fixed past date. The reference (the champion's train rows, features as of
T - 2H) and the current features (as of the latest T) differ in them by construction, so they are reported with
their statistics but do not vote in the dataset verdict. The model's score consumes them too, so prediction
drift is reported beside them; the realised performance (``core.performance``) judges the scores themselves.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from hvbuyer_assets.core import drift, features, labels, model

# Declared per feature (``core.feature_spec.Feature.time_indexed``); the voting split below derives from it.
TIME_INDEXED_FEATURES: tuple[str, ...] = features.TIME_INDEXED_FEATURES
SCORE = drift.SCORE  # the score column of the reference and current frames
NO_REFERENCE = "no_reference"


def voting_features() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric, categorical) model inputs that vote in the drift verdict."""
    numeric, categorical = model.model_columns()
    return tuple(c for c in numeric if c not in TIME_INDEXED_FEATURES), categorical


def informational_features() -> tuple[str, ...]:
    """Numeric model inputs reported but not voting (``TIME_INDEXED_FEATURES``)."""
    numeric, _ = model.model_columns()
    return tuple(c for c in numeric if c in TIME_INDEXED_FEATURES)


def reference_frame(training_set: pd.DataFrame, fitted: Pipeline) -> pd.DataFrame:
    """The reference snapshot of a model: its train rows' features and its scores on them."""
    train = training_set[training_set["split"] == "train"]
    frame = train[list(features.FEATURE_COLUMNS)].reset_index(drop=True)
    frame[SCORE] = model.predict_proba(fitted, train)
    return frame


def reference_info(
    training_set: pd.DataFrame, version: str, horizon_days: int, fingerprint: str | None, created_at: pd.Timestamp
) -> dict[str, Any]:
    """The reference sidecar: rows, train cutoffs, hold-out cutoff and the data as-of (the end of the hold-out's
    label window, cutoff + H: the model has seen data up to there)."""
    train = training_set[training_set["split"] == "train"]
    holdout_cutoff = pd.Timestamp(training_set.loc[training_set["split"] == "holdout", "cutoff"].max())
    return {
        "version": version,
        "rows": len(train),
        "train_cutoffs": sorted(pd.Timestamp(c).isoformat() for c in train["cutoff"].unique()),
        "holdout_cutoff": holdout_cutoff.isoformat(),
        "data_as_of": labels.label_window(holdout_cutoff, horizon_days)[1].isoformat(),
        "training_fingerprint": fingerprint,
        "created_at": created_at.isoformat(),
    }


def current_frame(customer_features: pd.DataFrame, customer_scores: pd.DataFrame) -> pd.DataFrame:
    """The current side: every customer's features and its score (aligned by customer id)."""
    scores = customer_scores.set_index("customer_id")["large_purchase_probability"]
    current = customer_features[list(features.FEATURE_COLUMNS)].copy()
    current[SCORE] = scores.reindex(current.index.astype(scores.index.dtype)).to_numpy()
    return current


def statistics_report(
    reference: pd.DataFrame, current: pd.DataFrame, thresholds: drift.DriftThresholds
) -> dict[str, Any]:
    """The voting report (demographics, region, windowed behaviour) plus, under ``time_indexed_features`` and
    ``prediction``, the statistics of the time-indexed features and of the score (reported, not voting)."""
    numeric, categorical = voting_features()
    report = drift.drift_report(reference, current, list(numeric), list(categorical), thresholds=thresholds)
    side = drift.drift_report(
        reference,
        current,
        list(informational_features()),
        [],
        reference_scores=reference[SCORE].to_numpy(),
        current_scores=current[SCORE].to_numpy(),
        thresholds=thresholds,
    )
    report["time_indexed_features"] = [{**f, "votes": False} for f in side["features"]]
    report["prediction"] = None if side["prediction"] is None else {**side["prediction"], "votes": False}
    report["voting_features"] = [*numeric, *categorical]
    return report


def no_reference_report(version: str) -> dict[str, Any]:
    """The report when the champion has no reference snapshot: no verdict either way, no retraining trigger."""
    return {
        "verdict": NO_REFERENCE,
        "drift": False,
        "reason": f"no reference snapshot for champion v{version} (it predates monitoring); the next "
        "retrain writes one",
        "features": [],
    }


def assemble(
    *,
    champion_version: str,
    customer_features: pd.DataFrame,
    customer_scores: pd.DataFrame,
    reference: pd.DataFrame | None,
    reference_info: Mapping[str, Any] | None,
    thresholds: drift.DriftThresholds,
    fingerprint: str,
    generated_at: pd.Timestamp,
) -> dict[str, Any]:
    """The stored drift report of the latest scored features against the champion's reference.

    ``reference`` / ``reference_info`` are the champion's snapshot and sidecar, both None when it has none
    (verdict ``no_reference``). ``model_age_days`` = current as-of - the reference's data as-of, in days.
    """
    if (reference is None) != (reference_info is None):
        raise ValueError("the reference snapshot and its sidecar come together (both given or both None)")
    data_as_of = pd.Timestamp(customer_features["feature_as_of"].max()).isoformat()
    if reference is None or reference_info is None:
        report, info = no_reference_report(champion_version), {}
    else:
        report = statistics_report(reference, current_frame(customer_features, customer_scores), thresholds)
        info = dict(reference_info)
    age = None
    if info:
        age = (pd.Timestamp(data_as_of) - pd.Timestamp(info["data_as_of"])) / pd.Timedelta(days=1)
    return {
        "champion_version": champion_version,
        "data_as_of": data_as_of,
        "data_fingerprint": fingerprint,
        "generated_at": generated_at.isoformat(),
        "reference_as_of": info.get("data_as_of"),
        "reference_rows": info.get("rows"),
        "model_age_days": age,
        **report,
    }


def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's headline (verdict, reason, versions, as-of times, drifted features, model age) as plain values."""
    out: dict[str, Any] = {
        "verdict": report["verdict"],
        "reason": report["reason"],
        "champion_version": report["champion_version"],
        "data_as_of": report["data_as_of"],
        "reference_as_of": report["reference_as_of"] or "",
        "data_fingerprint": report["data_fingerprint"],
        "drifted_features": list(report.get("drifted_features", [])),
    }
    if report["model_age_days"] is not None:
        out["model_age_days"] = float(report["model_age_days"])
    return out


NOT_VOTING = "reported, does not vote: grows with time by construction"
SCORE_ROLE = "reported, does not vote: the model's score"
VOTING = "votes"

# The drift table as the UI shows it: its columns and what each one means.
DISPLAY_COLUMNS: dict[str, str] = {
    "feature": "Model input (or `score`, the model's output).",
    "votes": "Counts towards the dataset verdict. Time-indexed features and the score are reported only.",
    "role": "Why a row votes or not.",
    "psi": "Population stability index, reference (champion's train rows) vs current features.",
    "drifted": "The feature's own rule: PSI >= the PSI threshold, or a significant test with a KS / JS effect "
    "of at least the minimum.",
    "counted": "Drifted and votes: counted in the verdict's share of drifted features.",
    "reason": "What decided `drifted`.",
    "ks_statistic": "Kolmogorov-Smirnov statistic (numeric features).",
    "ks_pvalue": "Its p-value.",
    "js_distance": "Jensen-Shannon distance (categorical features).",
    "chi2_pvalue": "Chi-square test p-value (categorical features).",
    "missing_share_reference": "Share of missing values in the reference.",
    "missing_share_current": "Share of missing values now.",
}


def display(report: Mapping[str, Any]) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """(report with every reported feature, table of ``DISPLAY_COLUMNS``): voting features first, then the
    time-indexed ones and the score (``votes`` False, ``role`` saying why); None when the report has no feature
    statistics."""
    if not report["features"]:
        return None
    shown = {**report, "features": [*report["features"], *report["time_indexed_features"]]}
    table = drift.report_table(shown)
    votes = pd.Series([True] * len(report["features"]) + [False] * (len(table) - len(report["features"])))
    table.insert(1, "votes", votes.to_numpy())
    table.insert(2, "role", [VOTING if v else NOT_VOTING for v in votes])
    table.loc[table["feature"] == SCORE, "role"] = SCORE_ROLE
    table["counted"] = table["drifted"] & table["votes"]
    return shown, table[list(DISPLAY_COLUMNS)]


def headline(report: Mapping[str, Any]) -> str:
    """The verdict in one line, as the text, the plot title and the table all say it, e.g. ``no_drift: 0 of 10
    voting features drifted (4 non-voting features over threshold shown grey)``."""
    if not report["features"]:
        return f"{report['verdict']}: {report['reason']}"
    voting = report["features"]
    drifted = sum(bool(f["drifted"]) for f in voting)
    line = f"{report['verdict']}: {drifted} of {len(voting)} voting features drifted"
    others = [*report["time_indexed_features"], *([report["prediction"]] if report.get("prediction") else [])]
    features_over = sum(bool(f["drifted"]) for f in report["time_indexed_features"])
    score_over = bool(report.get("prediction") and report["prediction"]["drifted"])
    parts = [f"{features_over} non-voting feature{'' if features_over == 1 else 's'}"] if features_over else []
    parts += ["the score"] if score_over else []
    if parts and len(others):
        line += f" ({' and '.join(parts)} drifted, shown grey)"
    return line


def plot(report: Mapping[str, Any], table: pd.DataFrame) -> bytes:
    """PNG bytes: PSI per row of the ``display`` table. Voting features red (drifted) or blue, the non-voting
    ones grey and labelled why, the threshold lines that decided; the title is the ``headline``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    thresholds = report.get("thresholds") or {}
    psi, major = float(thresholds.get("psi", 0.2)), float(thresholds.get("major_psi", 0.25))
    values = table["psi"].astype("float64").fillna(0.0).to_numpy()
    colours = [
        ("#c0392b" if d else "#2e86c1") if v else ("#8c8c8c" if d else "#d0d0d0")
        for d, v in zip(table["drifted"], table["votes"], strict=True)
    ]
    fig = Figure(figsize=(9, 0.34 * max(len(table), 4) + 2.2), dpi=100)
    ax = fig.subplots()
    positions = list(range(len(table)))
    ax.barh(positions, values, color=colours)
    for y, value in zip(positions, values, strict=True):
        ax.annotate(f"{value:.3f}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    labels = [f if v else f"{f} (does not vote)" for f, v in zip(table["feature"], table["votes"], strict=True)]
    ax.set_yticks(positions, labels)
    for tick, votes in zip(ax.get_yticklabels(), table["votes"], strict=True):
        tick.set_color("black" if votes else "#808080")
    ax.invert_yaxis()
    n_voting = int(table["votes"].sum())
    if 0 < n_voting < len(table):
        ax.axhline(n_voting - 0.5, color="#808080", linewidth=0.8)
    ax.axvline(psi, color="black", linestyle="--", linewidth=1)
    ax.axvline(major, color="#c0392b", linestyle=":", linewidth=1.2)
    ax.legend(
        handles=[
            Patch(color="#c0392b", label="votes, drifted"),
            Patch(color="#2e86c1", label="votes, not drifted"),
            Patch(color="#8c8c8c", label="does not vote, drifted"),
            Patch(color="#d0d0d0", label="does not vote, not drifted"),
            Line2D([], [], color="black", linestyle="--", label=f"a feature drifts at PSI >= {psi:g}"),
            Line2D([], [], color="#c0392b", linestyle=":", label=f"dataset drifts: a voting feature PSI >= {major:g}"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.09),
        ncol=2,
        fontsize="small",
        title="Grey rows are reported, do not vote: time-indexed features grow with time by construction",
        title_fontsize="small",
    )
    share = float(thresholds.get("drifted_share", 0.5))
    ax.set_xlabel(
        f"PSI, champion's train rows vs current features; the dataset also drifts when >= {share:.0%} of the "
        "voting features drift",
        fontsize="small",
    )
    ax.set_title(textwrap.fill(headline(report), 90), fontsize="medium")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
