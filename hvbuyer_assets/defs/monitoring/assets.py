"""Monitoring: per-version drift references, the data drift report, the score archive, realised performance."""

import hashlib
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from hvbuyer_assets import registry
from hvbuyer_assets.core import drift, features, labels, model, performance
from hvbuyer_assets.defs.monitoring.storage import MonitoringStore
from hvbuyer_assets.defs.resources import ModelRegistryResource, PredictionProblem, layer, png_metadata

# Features whose distribution depends on how long the observed history is, for every customer alike: all-time
# counts and sums, ratios over the whole history (their spread narrows as it grows), and ages measured from a
# fixed past date. The reference (the champion's train rows, features as of T - 2H) and the current features
# (as of the latest T) differ in them by construction, so they are reported with their statistics but do not
# vote in the dataset verdict. The model's score consumes them too, so prediction drift is reported beside
# them; the realised performance (``model_performance``) judges the scores themselves. See the README,
# "Monitoring and the self-updating loop".
TIME_INDEXED_FEATURES: tuple[str, ...] = (
    "tenure_days",
    "days_since_first_purchase",
    "n_transactions",
    "n_completed",
    "total_spend",
    "n_large",
    "max_spend",
    "n_failed",
    "avg_spend",
    "share_large",
    "refund_rate",
)
SCORE = "score"


def voting_features() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric, categorical) model inputs that vote in the drift verdict."""
    numeric, categorical = model.model_columns()
    return tuple(c for c in numeric if c not in TIME_INDEXED_FEATURES), categorical


def informational_features() -> tuple[str, ...]:
    """Numeric model inputs reported but not voting (``TIME_INDEXED_FEATURES``)."""
    numeric, _ = model.model_columns()
    return tuple(c for c in numeric if c in TIME_INDEXED_FEATURES)


def reference_paths(version: str) -> tuple[str, str]:
    """(snapshot parquet, sidecar JSON) of one registered version, relative to the monitoring layer."""
    return f"reference/v{version}.parquet", f"reference/v{version}.json"


def data_fingerprint(frame: pd.DataFrame) -> str:
    """Identity of the current features (customers, values, as-of): the retraining sensor never retrains twice
    on the same fingerprint."""
    columns = [*model.model_columns()[0], *model.model_columns()[1], "feature_as_of"]
    hashed = pd.util.hash_pandas_object(frame[columns], index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


class DriftConfig(dg.Config):
    """Dataset decision thresholds, as ``core.drift.DriftThresholds``: a feature drifts at PSI >= ``psi`` (or a
    significant test with a KS / JS effect of at least ``ks_min_statistic`` / ``js_min_distance``); the
    dataset drifts when ``drifted_share`` of the voting features drift, the score drifts, or one feature has
    PSI >= ``major_psi``; no verdict on fewer than ``min_rows`` rows; PSI bins = reference quantiles."""

    psi: float = 0.2
    drifted_share: float = 0.5
    min_rows: int = 500
    bins: int = 10
    alpha: float = 0.01
    ks_min_statistic: float = 0.1
    js_min_distance: float = 0.1
    major_psi: float = 0.25

    def thresholds(self) -> drift.DriftThresholds:
        """As the core's thresholds object."""
        return drift.DriftThresholds(**self.model_dump())


@dg.asset(group_name="monitoring", metadata=layer("monitoring"), kinds={"pandas", "parquet"})
def drift_reference(
    context: dg.AssetExecutionContext,
    registered_model: dict[str, Any],
    training_set: pd.DataFrame,
    problem: PredictionProblem,
    model_registry: ModelRegistryResource,
    monitoring_store: MonitoringStore,
) -> dict[str, Any]:
    """The drift reference of the registered version: its train rows' features and its scores on them, saved
    once per version as ``monitoring/reference/v<version>.parquet`` (+ ``.json`` with the training data's
    as-of). ``training_set`` is overwritten by every retrain and a candidate may lose, so the champion's
    reference must outlive both."""
    version = registered_model["version"]
    snapshot, sidecar = reference_paths(version)
    created = not monitoring_store.exists(sidecar)
    if created:
        train = training_set[training_set["split"] == "train"]
        holdout_cutoff = pd.Timestamp(training_set.loc[training_set["split"] == "holdout", "cutoff"].max())
        fitted = model_registry.load(version)
        frame = train[list(features.FEATURE_COLUMNS)].reset_index(drop=True)
        frame[SCORE] = model.predict_proba(fitted, train)
        monitoring_store.write_frame_once(snapshot, frame)
        monitoring_store.write_json_once(
            sidecar,
            {
                "version": version,
                "rows": len(frame),
                "train_cutoffs": sorted(pd.Timestamp(c).isoformat() for c in train["cutoff"].unique()),
                "holdout_cutoff": holdout_cutoff.isoformat(),
                "data_as_of": (holdout_cutoff + pd.Timedelta(days=problem.horizon_days)).isoformat(),
                "training_fingerprint": registered_model.get("fingerprint"),
                "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
            },
        )
    info = monitoring_store.read(sidecar)
    versions = [s.removeprefix("v") for s in monitoring_store.stems("reference", ".json")]
    context.add_output_metadata(
        {"version": version, "created": created, "rows": info["rows"], "data_as_of": info["data_as_of"]}
    )
    return {**info, "created": created, "versions_with_reference": versions}


def _current_frame(customer_features: pd.DataFrame, customer_scores: pd.DataFrame) -> pd.DataFrame:
    scores = customer_scores.set_index("customer_id")["large_purchase_probability"]
    current = customer_features[list(features.FEATURE_COLUMNS)].copy()
    current[SCORE] = scores.reindex(current.index.astype(scores.index.dtype)).to_numpy()
    return current


def build_drift_report(
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


@dg.asset(
    group_name="monitoring",
    metadata=layer("monitoring"),
    kinds={"pandas", "json"},
    deps=[drift_reference],
)
def drift_report(
    context: dg.AssetExecutionContext,
    customer_features: pd.DataFrame,
    customer_scores: pd.DataFrame,
    champion_model: dict[str, Any],
    config: DriftConfig,
    monitoring_store: MonitoringStore,
) -> dict[str, Any]:
    """Data drift of the latest scored features against the champion's training features: per feature KS /
    chi-square and PSI with a drifted flag and reason, prediction drift on the scores, and the dataset
    verdict (``drift`` / ``no_drift`` / ``insufficient_data`` / ``no_reference``). Written to
    ``monitoring/drift_report.json``; the retraining sensor reads its verdict."""
    version = champion_model["champion_version"]
    snapshot, sidecar = reference_paths(version)
    data_as_of = pd.Timestamp(customer_features["feature_as_of"].max()).isoformat()
    current = _current_frame(customer_features, customer_scores)
    base = {
        "champion_version": version,
        "data_as_of": data_as_of,
        "data_fingerprint": data_fingerprint(customer_features),
        "generated_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    if not monitoring_store.exists(sidecar):
        report: dict[str, Any] = {
            "verdict": "no_reference",
            "drift": False,
            "reason": f"no reference snapshot for champion v{version} (it predates monitoring); the next "
            "retrain writes one",
            "features": [],
        }
        reference_info: dict[str, Any] = {}
    else:
        reference_info = monitoring_store.read(sidecar)
        report = build_drift_report(monitoring_store.read(snapshot), current, config.thresholds())
    age = None
    if reference_info:
        age = (pd.Timestamp(data_as_of) - pd.Timestamp(reference_info["data_as_of"])) / pd.Timedelta(days=1)
    value = {
        **base,
        "reference_as_of": reference_info.get("data_as_of"),
        "reference_rows": reference_info.get("rows"),
        "model_age_days": age,
        **report,
    }
    metadata: dict[str, Any] = {
        "verdict": value["verdict"],
        "reason": value["reason"],
        "champion_version": version,
        "data_as_of": data_as_of,
        "reference_as_of": value["reference_as_of"] or "",
        "data_fingerprint": value["data_fingerprint"],
        "drifted_features": dg.MetadataValue.json(list(value.get("drifted_features", []))),
    }
    if age is not None:
        metadata["model_age_days"] = float(age)
    if value["features"]:
        display = {**report, "features": [*report["features"], *report["time_indexed_features"]]}
        table = drift.report_table(display)
        votes = [True] * len(report["features"]) + [False] * (len(table) - len(report["features"]))
        table.insert(1, "votes", votes)
        metadata["features_table"] = dg.MetadataValue.md(table.to_markdown(index=False))
        metadata["drift_plot"] = png_metadata("drift", drift.plot_drift(display))
    context.log.info(f"drift verdict {value['verdict']}: {value['reason']}")
    context.add_output_metadata(metadata)
    return value


@dg.asset(group_name="monitoring", metadata=layer("monitoring"), kinds={"pandas", "parquet"})
def score_history(
    context: dg.AssetExecutionContext, customer_scores: pd.DataFrame, monitoring_store: MonitoringStore
) -> dict[str, Any]:
    """Archive of every scoring: ``monitoring/score_history/<features as-of>_v<version>.parquet`` (customer_id,
    probability, model version, features_as_of), written once and never overwritten, so that
    ``model_performance`` can judge the scores once their labels have matured."""
    key, frame = performance.archive_frame(customer_scores)
    written = monitoring_store.write_frame_once(f"score_history/{key.stem}.parquet", frame)
    archives = monitoring_store.stems("score_history", ".parquet")
    context.add_output_metadata({"archive": key.stem, "written": written, "archives": len(archives)})
    return {"latest": key.stem, "written": written, "archives": archives}


class PerformanceConfig(dg.Config):
    """The realised-performance rule: degraded when the realised ROC-AUC is more than ``max_auc_drop`` below
    the hold-out ROC-AUC, on at least ``min_rows`` matured scores."""

    max_auc_drop: float = 0.05
    min_rows: int = performance.MIN_MATURED_ROWS


def _expected_metrics(client: MlflowClient, version: str) -> dict[str, float | None]:
    """The version's hold-out ROC-AUC / Brier (its MLflow run, else the version tag)."""
    try:
        model_version = client.get_model_version(registry.MODEL_NAME, version)
    except Exception:  # noqa: BLE001 - a deleted version has no expectation; reported as such
        return {"roc_auc": None, "brier": None}
    holdout = registry.version_details(client, model_version)["metrics"]
    tag = model_version.tags.get(registry.HOLDOUT_ROC_AUC_TAG)
    return {
        "roc_auc": holdout.get("roc_auc", None if tag is None else float(tag)),
        "brier": holdout.get("brier"),
    }


@dg.asset(group_name="monitoring", metadata=layer("monitoring"), kinds={"pandas", "json"})
def model_performance(
    context: dg.AssetExecutionContext,
    score_history: dict[str, Any],
    clean_transactions: pd.DataFrame,
    champion_model: dict[str, Any],
    problem: PredictionProblem,
    config: PerformanceConfig,
    model_registry: ModelRegistryResource,
    monitoring_store: MonitoringStore,
) -> dict[str, Any]:
    """Concept drift: for each model version, its latest archived scoring whose label window (as_of, as_of + H]
    the data now covers, the realised ROC-AUC / Brier (training label definition) vs. its hold-out figures.
    ``degraded`` refers to the current champion only."""
    data_as_of = features.latest_event_time(clean_transactions)
    champion = champion_model["champion_version"]
    keys = [k for k in map(performance.archive_key, score_history["archives"]) if k is not None]
    matured = [k for k in keys if performance.is_matured(k.as_of, data_as_of, problem.horizon_days)]
    latest: dict[str, performance.ArchiveKey] = {}
    for key in sorted(matured, key=lambda k: k.as_of):
        latest[key.version] = key
    rule = performance.PerformanceRule(max_auc_drop=config.max_auc_drop, min_rows=config.min_rows)
    client = model_registry.client()
    evaluations = []
    for version, key in sorted(latest.items()):
        archived = monitoring_store.read(f"score_history/{key.stem}.parquet")
        realised_labels = labels.build_labels(
            clean_transactions,
            archived["customer_id"],
            key.as_of,
            horizon_days=problem.horizon_days,
            threshold=problem.large_purchase_threshold,
        )
        realised = performance.realised_metrics(
            realised_labels.to_numpy(), archived["large_purchase_probability"].to_numpy(dtype=np.float64)
        )
        expected = _expected_metrics(client, version)
        evaluations.append(
            {
                "model_version": version,
                "scored_as_of": key.as_of.isoformat(),
                "label_window_end": (key.as_of + pd.Timedelta(days=problem.horizon_days)).isoformat(),
                "realised": realised,
                "expected": expected,
                **performance.compare(realised, expected, rule),
            }
        )
    own = next((e for e in evaluations if e["model_version"] == champion), None)
    if not evaluations:
        waiting = min((k.as_of for k in keys), default=None)
        status = "no_matured_scores"
        reason = "no matured scores yet" + (
            f": the earliest archived scoring (as of {waiting:%Y-%m-%d %H:%M}) matures once the data reaches "
            f"{waiting + pd.Timedelta(days=problem.horizon_days):%Y-%m-%d %H:%M} "
            f"(data as of {data_as_of:%Y-%m-%d %H:%M})"
            if waiting is not None
            else ""
        )
    elif own is None:
        status, reason = "no_matured_champion_scores", f"no matured scores of champion v{champion} yet"
    else:
        status, reason = "evaluated", own["reason"]
    value = {
        "status": status,
        "reason": reason,
        "degraded": bool(own and own["degraded"]),
        "champion_version": champion,
        "data_as_of": data_as_of.isoformat(),
        "horizon_days": problem.horizon_days,
        "rule": {"max_auc_drop": rule.max_auc_drop, "min_rows": rule.min_rows},
        "evaluations": evaluations,
    }
    metadata: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "degraded": value["degraded"],
        "champion_version": champion,
    }
    if evaluations:
        table = pd.DataFrame(
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
        metadata["evaluations"] = dg.MetadataValue.md(table.to_markdown(index=False))
    context.add_output_metadata(metadata)
    return value
