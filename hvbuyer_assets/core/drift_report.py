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
    """The reference sidecar: rows, train cutoffs, the reference rows' as-of (their latest cutoff: the features
    the snapshot holds are as of then), hold-out cutoff and the data as-of (the end of the hold-out's label
    window, cutoff + H: the model has seen data up to there)."""
    train = training_set[training_set["split"] == "train"]
    holdout_cutoff = pd.Timestamp(training_set.loc[training_set["split"] == "holdout", "cutoff"].max())
    cutoffs = sorted(pd.Timestamp(c).isoformat() for c in train["cutoff"].unique())
    return {
        "version": version,
        "rows": len(train),
        "train_cutoffs": cutoffs,
        "reference_as_of": cutoffs[-1] if cutoffs else None,
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
    (verdict ``no_reference``). ``reference_as_of`` is the reference rows' as-of (their latest train cutoff);
    ``model_data_as_of`` the end of the data the champion was trained on (its hold-out's label window), and
    ``model_age_days`` = current as-of - ``model_data_as_of``, in days: 0 right after a retrain on today's data.
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
    cutoffs = info.get("train_cutoffs") or [None]  # sidecars written before `reference_as_of` existed
    return {
        "champion_version": champion_version,
        "data_as_of": data_as_of,
        "data_fingerprint": fingerprint,
        "generated_at": generated_at.isoformat(),
        "reference_as_of": info.get("reference_as_of", max(c for c in cutoffs if c) if any(cutoffs) else None),
        "model_data_as_of": info.get("data_as_of"),
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
        "model_data_as_of": report.get("model_data_as_of") or "",
        "data_fingerprint": report["data_fingerprint"],
        "drifted_features": list(report.get("drifted_features", [])),
    }
    if report["model_age_days"] is not None:
        out["model_age_days"] = float(report["model_age_days"])
    if report.get("features"):
        out["drifted_share"] = float(report.get("drifted_share", 0.0))
    return out


# The role of a row of the table, as a short code (the plot's legend and DISPLAY_COLUMNS say what each means).
NOT_VOTING = "time-indexed"
SCORE_ROLE = "score"
VOTING = "votes"

# The drift table as the UI shows it: short values, one line per feature at 1600 px; the full reason of each
# feature is in the stored report (``monitoring/drift_report.json``) and in the ``reasons`` metadata.
DISPLAY_COLUMNS: dict[str, str] = {
    "feature": "Model input (or `score`, the model's output).",
    "role": "`votes`: counts towards the dataset verdict; `time-indexed`: grows with time by construction, "
    "reported only; `score`: the model's output, reported only.",
    "psi": "Population stability index, reference (champion's train rows) vs current features.",
    "drifted": "The feature's own rule: PSI >= the PSI threshold, or a significant test with a KS / JS effect "
    "of at least the minimum.",
    "flagged_by": "Which rule flagged it: PSI, KS (numeric) or JS (categorical, with the chi-square test); "
    "the full reason is in the `reasons` entry.",
    "counted": "Drifted and votes: counted in the verdict's share of drifted features.",
    "ks_statistic": "Kolmogorov-Smirnov statistic (numeric features).",
    "ks_pvalue": "Its p-value as computed: 3 significant digits, scientific below 1e-4, <1e-300 if it underflowed.",
    "js_distance": "Jensen-Shannon distance (categorical features).",
    "chi2_pvalue": "Chi-square test p-value (categorical features), as computed (as ks_pvalue).",
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
    table["flagged_by"] = table["flagged_by"].fillna("").astype(str)
    return shown, table[[*DISPLAY_COLUMNS, "votes", "reason"]]


P_VALUES = ("ks_pvalue", "chi2_pvalue")
# A KS or chi-square p-value is never 0; computed as 0 it underflowed the float range (below ~5e-324).
UNDERFLOW_TEXT = "<1e-300"


def p_value_text(value: Any) -> str | None:
    """A p-value as the UI table shows it: 3 significant digits, scientific below 1e-4 (`1.25e-05`, `4.3e-68`; a
    browser would print 1.25e-05 as 0.0000125), ``UNDERFLOW_TEXT`` when it underflowed to 0; None when undefined."""
    if value is None or pd.isna(value):
        return None
    return UNDERFLOW_TEXT if float(value) == 0.0 else f"{float(value):.3g}"


def ui_table(table: pd.DataFrame) -> pd.DataFrame:
    """The ``DISPLAY_COLUMNS`` of a :func:`display` table, p-values as :func:`p_value_text`."""
    shown = table[list(DISPLAY_COLUMNS)].copy()
    for column in P_VALUES:
        shown[column] = shown[column].map(p_value_text).astype(object)
    return shown


def reasons(table: pd.DataFrame) -> dict[str, str]:
    """Each row's full reason, by feature (the table shows only ``flagged_by``)."""
    return dict(zip(table["feature"].astype(str), table["reason"].astype(str), strict=True))


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


def _bar_label(value: float, flagged_by: str) -> str:
    """A bar's label: its PSI and, for a drifted row, the rule that flagged it."""
    return f"{value:.3f}" + (f"  flagged by {flagged_by}" if flagged_by and flagged_by != drift.NOT_JUDGED else "")


def plot(report: Mapping[str, Any], table: pd.DataFrame) -> bytes:
    """PNG bytes of the ``figure``."""
    buffer = io.BytesIO()
    figure(report, table).savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def figure(report: Mapping[str, Any], table: pd.DataFrame) -> Any:
    """A matplotlib Figure: PSI per row of the ``display`` table, in two panels with their own x-axes so that a large
    non-voting PSI cannot squeeze the voting bars: the voting features (red drifted, blue not) above, the
    non-voting ones (grey) below. Each drifted bar names the rule that flagged it (PSI, KS, JS); the threshold
    lines that decide are drawn in both; the title is the ``headline``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    thresholds = report.get("thresholds") or {}
    psi, major = float(thresholds.get("psi", 0.2)), float(thresholds.get("major_psi", 0.25))
    votes = table["votes"].astype(bool).to_numpy()
    panels = [part for part in (table[votes], table[~votes]) if len(part)]
    fig = Figure(figsize=(10, 0.34 * max(len(table), 4) + 1.2 * len(panels) + 1.6), dpi=100)
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=[max(len(p), 1) for p in panels])[:, 0]
    for ax, part in zip(axes, panels, strict=True):
        voting = bool(part["votes"].iloc[0])
        values = part["psi"].astype("float64").fillna(0.0).to_numpy()
        flagged = part["flagged_by"].fillna("").astype(str).to_numpy()
        drifted = part["drifted"].astype(bool).to_numpy()
        colours = [("#c0392b" if d else "#2e86c1") if voting else ("#8c8c8c" if d else "#d0d0d0") for d in drifted]
        positions = list(range(len(part)))
        ax.barh(positions, values, color=colours)
        for y, value, by in zip(positions, values, flagged, strict=True):
            ax.annotate(
                _bar_label(value, by), (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7
            )
        ax.set_yticks(positions, list(part["feature"]))
        for tick in ax.get_yticklabels():
            tick.set_color("black" if voting else "#808080")
        ax.invert_yaxis()
        ax.axvline(psi, color="black", linestyle="--", linewidth=1)
        ax.axvline(major, color="#c0392b", linestyle=":", linewidth=1.2)
        ax.set_xlim(0, max(float(values.max(initial=0.0)), major) * 1.45)  # room for the labels
        ax.set_title(
            "voting features: these decide the verdict"
            if voting
            else "reported, do not vote (time-indexed features, the score): own x-axis",
            fontsize="small",
            loc="left",
            color="black" if voting else "#606060",
        )
    share = float(thresholds.get("drifted_share", 0.5))
    axes[-1].set_xlabel(
        f"PSI, champion's train rows vs current features; the dataset also drifts when >= {share:.0%} of the "
        "voting features drift",
        fontsize="small",
    )
    axes[-1].legend(
        handles=[
            Patch(color="#c0392b", label="votes, drifted"),
            Patch(color="#2e86c1", label="votes, not drifted"),
            Patch(color="#8c8c8c", label="does not vote, drifted"),
            Patch(color="#d0d0d0", label="does not vote, not drifted"),
            Line2D([], [], color="black", linestyle="--", label=f"a feature drifts at PSI >= {psi:g} (or KS / JS)"),
            Line2D([], [], color="#c0392b", linestyle=":", label=f"dataset drifts: a voting feature PSI >= {major:g}"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 if len(panels) > 1 else -0.12),
        ncol=2,
        fontsize="small",
        title="flagged by: the rule that marked the bar drifted (PSI, KS test + effect, JS distance + chi-square)",
        title_fontsize="small",
    )
    fig.suptitle(textwrap.fill(headline(report), 90), fontsize="medium")
    return fig
