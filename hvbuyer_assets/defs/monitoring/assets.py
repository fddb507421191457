"""Monitoring: per-version drift references, the data drift report, the score archive, realised performance."""

from typing import Any

import dagster as dg
import pandas as pd
from mlflow import MlflowClient

from hvbuyer_assets import registry
from hvbuyer_assets.core import drift, estimation, fingerprints, performance
from hvbuyer_assets.core import drift_report as drift_report_core
from hvbuyer_assets.defs.features.inputs import EngineInputManager
from hvbuyer_assets.defs.features.state import label_inputs
from hvbuyer_assets.defs.metadata import PlotStore, rounded_metadata, stored, table_metadata
from hvbuyer_assets.defs.model.resources import ModelRegistryResource
from hvbuyer_assets.defs.monitoring.storage import MonitoringStore, calibration_path, reference_paths
from hvbuyer_assets.defs.partitions import drop_order
from hvbuyer_assets.defs.problem import PredictionProblem
from hvbuyer_assets.engines.interface import TRANSACTIONS


class DriftConfig(dg.Config):
    """Dataset decision thresholds, as `core.drift.DriftThresholds`: a feature drifts at PSI >= `psi` (or a
    significant test with a KS / JS effect of at least `ks_min_statistic` / `js_min_distance`); the
    dataset drifts when `drifted_share` of the voting features drift, the score drifts, or one feature has
    PSI >= `major_psi`; no verdict on fewer than `min_rows` rows; PSI bins = reference quantiles."""

    psi: float = drift.DriftThresholds.psi
    drifted_share: float = drift.DriftThresholds.drifted_share
    min_rows: int = drift.DriftThresholds.min_rows
    bins: int = drift.DriftThresholds.bins
    alpha: float = drift.DriftThresholds.alpha
    ks_min_statistic: float = drift.DriftThresholds.ks_min_statistic
    js_min_distance: float = drift.DriftThresholds.js_min_distance
    major_psi: float = drift.DriftThresholds.major_psi

    def thresholds(self) -> drift.DriftThresholds:
        """As the core's thresholds object."""
        return drift.DriftThresholds(**self.model_dump())


@dg.asset(group_name="monitoring", metadata=stored("drift_reference"), kinds={"pandas", "parquet"})
def drift_reference(
    context: dg.AssetExecutionContext,
    registered_model: dict[str, Any],
    training_set: pd.DataFrame,
    problem: PredictionProblem,
    model_registry: ModelRegistryResource,
    monitoring_store: MonitoringStore,
) -> dict[str, Any]:
    """The drift reference of the registered version: its train rows' features and its scores on them, saved
    once per version as `monitoring/reference/v<version>.parquet` (+ `.json` with the training data's
    as-of). `training_set` is overwritten by every retrain and a candidate may lose, so the champion's
    reference must outlive both. Beside it, `monitoring/calibration/v<version>.json`: the version's hold-out
    calibration (score -> observed rate) that `estimated_performance` estimates from."""
    version = registered_model["version"]
    snapshot, sidecar = reference_paths(version)
    created = not monitoring_store.exists(sidecar)
    if created:
        fitted = model_registry.load(version)
        monitoring_store.write_frame_once(snapshot, drift_report_core.reference_frame(training_set, fitted))
        monitoring_store.write_json_once(
            sidecar,
            drift_report_core.reference_info(
                training_set,
                version,
                problem.horizon_days,
                registered_model.get("fingerprint"),
                pd.Timestamp.now(tz="UTC"),
            ),
        )
    if not monitoring_store.exists(calibration_path(version)):  # for `estimated_performance`
        calibration = estimation.holdout_calibration(training_set, model_registry.load(version))
        monitoring_store.write_json_once(calibration_path(version), calibration.to_dict())
    info = monitoring_store.read(sidecar)
    versions = [s.removeprefix("v") for s in monitoring_store.stems("reference", ".json")]
    context.add_output_metadata(
        {"version": version, "created": created, "rows": info["rows"], "data_as_of": info["data_as_of"]}
    )
    return {**info, "created": created, "versions_with_reference": versions}


@dg.asset(
    group_name="monitoring",
    metadata=stored("drift_report"),
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
    plots: PlotStore,
) -> dict[str, Any]:
    """Data drift of the latest scored features against the champion's training features, and the verdict
    (`drift` / `no_drift` / `insufficient_data` / `no_reference`) the retraining sensor reads from
    `monitoring/drift_report.json`. Per feature: PSI, KS / chi-square + JS, a drifted flag and its reason; the
    score's drift beside them. Only the voting features decide: time-indexed features (all-time counts and sums,
    ages from a fixed date) grow with time by construction and the score is the model's output, so they are
    reported, greyed in the plot, and do not vote. The headline, the plot title and the table say the same."""
    version = champion_model["champion_version"]
    snapshot, sidecar = reference_paths(version)
    has_reference = monitoring_store.exists(sidecar)
    value = drift_report_core.assemble(
        champion_version=version,
        customer_features=customer_features,
        customer_scores=customer_scores,
        reference=monitoring_store.read(snapshot) if has_reference else None,
        reference_info=monitoring_store.read(sidecar) if has_reference else None,
        thresholds=config.thresholds(),
        fingerprint=fingerprints.data_fingerprint(customer_features),
        generated_at=pd.Timestamp.now(tz="UTC"),
    )
    headline = drift_report_core.headline(value)
    metadata: dict[str, Any] = {"headline": headline, **drift_report_core.summary(value)}
    metadata["drifted_features"] = dg.MetadataValue.json(metadata["drifted_features"])
    if "model_age_days" in metadata:
        metadata["model_age_days"] = round(metadata["model_age_days"], 1)
    shown = drift_report_core.display(value)
    if shown is not None:
        _, table = shown
        metadata["drift_plot"] = plots.markdown(headline, drift_report_core.plot(value, table))
        metadata["features_table"] = table_metadata(
            drift_report_core.ui_table(table), drift_report_core.DISPLAY_COLUMNS
        )
        metadata["reasons"] = dg.MetadataValue.json(drift_report_core.reasons(table))
        metadata["thresholds"] = dg.MetadataValue.json(value["thresholds"])
    context.log.info(f"drift {headline}; {value['reason']}")
    context.add_output_metadata(metadata)
    return value


@dg.asset(group_name="monitoring", metadata=stored("score_history"), kinds={"pandas", "parquet"})
def score_history(
    context: dg.AssetExecutionContext, customer_scores: pd.DataFrame, monitoring_store: MonitoringStore
) -> dict[str, Any]:
    """Archive of every scoring: `monitoring/score_history/<features as-of>_v<version>.parquet` (customer_id,
    probability, model version, features_as_of), written once and never overwritten, so that
    `model_performance` can judge the scores once their labels have matured."""
    key, frame = performance.archive_frame(customer_scores)
    written = monitoring_store.write_frame_once(f"score_history/{key.stem}.parquet", frame)
    archives = monitoring_store.stems("score_history", ".parquet")
    context.add_output_metadata({"archive": key.stem, "written": written, "archives": len(archives)})
    return {"latest": key.stem, "written": written, "archives": archives}


class EstimateConfig(dg.Config):
    """The estimated-performance trigger: degraded when the estimated ROC-AUC is more than `max_auc_drop` below
    the champion's hold-out ROC-AUC."""

    max_auc_drop: float = estimation.EstimateRule.max_auc_drop


@dg.asset(
    group_name="monitoring", metadata=stored("estimated_performance"), kinds={"numpy", "json"}, deps=[drift_reference]
)
def estimated_performance(
    context: dg.AssetExecutionContext,
    customer_scores: pd.DataFrame,
    champion_model: dict[str, Any],
    config: EstimateConfig,
    monitoring_store: MonitoringStore,
) -> dict[str, Any]:
    """Performance of the latest scoring estimated before its labels mature (confidence-based performance
    estimation, `core.estimation`): the champion's hold-out calibration turns each score into an expected
    outcome; from them the expected ROC-AUC, precision in the top decile and number of positives. `degraded`
    when the estimated ROC-AUC is more than `max_auc_drop` below the champion's hold-out ROC-AUC (a trigger of
    the retraining sensors). Sees a covariate shift, not a concept shift (`model_performance` does, later).
    Each scoring's estimate is kept as `monitoring/estimated_performance/<scoring>.json`."""
    version = champion_model["champion_version"]
    key, _ = performance.archive_frame(customer_scores)
    value: dict[str, Any] = {"champion_version": version, "scoring": key.stem, "as_of": key.as_of.isoformat()}
    if monitoring_store.exists(calibration_path(version)):
        calibration = estimation.Calibration.from_dict(monitoring_store.read(calibration_path(version)))
        estimate = estimation.estimate(customer_scores["large_purchase_probability"].to_numpy(), calibration)
        degraded, reason = estimation.judge(
            estimate["roc_auc"], calibration.holdout_roc_auc, estimation.EstimateRule(config.max_auc_drop)
        )
        value |= {"status": "estimated", "holdout_roc_auc": calibration.holdout_roc_auc, **estimate}
    else:
        degraded, reason = False, f"no calibration for champion v{version} (it predates estimation)"
        value |= {"status": "no_calibration"}
    value |= {"degraded": degraded, "reason": reason}
    monitoring_store.write_json_once(f"estimated_performance/{key.stem}.json", value)
    numbers = ("roc_auc", "precision_top_decile", "expected_positives", "holdout_roc_auc")
    metadata: dict[str, Any] = {k: value[k] for k in ("status", "degraded", "reason", "champion_version", "as_of")}
    metadata |= {
        f"estimated_{k}" if k != "holdout_roc_auc" else k: value[k] for k in numbers if value.get(k) is not None
    }
    context.log.info(f"estimated performance of champion v{version}: {reason}")
    context.add_output_metadata(rounded_metadata(metadata))
    return value


class PerformanceConfig(dg.Config):
    """The realised-performance rule: degraded when the realised ROC-AUC is more than `max_auc_drop` below
    the hold-out ROC-AUC, on at least `min_rows` matured scores."""

    max_auc_drop: float = performance.PerformanceRule.max_auc_drop
    min_rows: int = performance.PerformanceRule.min_rows


def _expected_metrics(client: MlflowClient, version: str) -> dict[str, float | None]:
    """The version's hold-out ROC-AUC / Brier as the registry reports them (`performance.expected_metrics`)."""
    try:
        model_version = client.get_model_version(registry.MODEL_NAME, version)
    except Exception:  # noqa: BLE001 - a deleted version has no expectation; reported as such
        return performance.expected_metrics(None)
    holdout = registry.version_details(client, model_version)["metrics"]
    return performance.expected_metrics(holdout, model_version.tags.get(registry.HOLDOUT_ROC_AUC_TAG))


PERFORMANCE_COLUMNS = {
    "version": "Registered model version.",
    "scored_as_of": "As-of of the archived scoring that was judged (its labels have matured).",
    "rows": "Customers scored then whose label window the data now covers.",
    "realised_roc_auc": "ROC-AUC of those scores against what the customers then did.",
    "holdout_roc_auc": "The version's hold-out ROC-AUC at training.",
    "realised_brier": "Brier score of those scores.",
    "holdout_brier": "The version's hold-out Brier score.",
    "degraded": "Realised ROC-AUC more than the allowed drop below the hold-out's.",
}


@dg.asset(
    deps=[TRANSACTIONS, "latest_customers", "customer_totals"],  # keys: asset objects here would be loaded twice
    group_name="monitoring",
    metadata=stored("model_performance"),
    kinds={"pandas", "json"},
)
def model_performance(
    context: dg.AssetExecutionContext,
    score_history: dict[str, Any],
    champion_model: dict[str, Any],
    problem: PredictionProblem,
    config: PerformanceConfig,
    model_registry: ModelRegistryResource,
    monitoring_store: MonitoringStore,
    engine_inputs: dg.ResourceParam[EngineInputManager],
) -> dict[str, Any]:
    """Concept drift: for each model version, its latest archived scoring whose label window (as_of, as_of + H]
    the data now covers, the realised ROC-AUC / Brier (training label definition) vs. its hold-out figures.
    `degraded` refers to the current champion only. T is the latest of the drops' stored time ranges (each
    `customer_state` keeps its drop's; no transaction is read for it); the feature engine reads only the
    transactions of the drops whose time range meets the matured label windows, row groups pruned by their parquet
    statistics, and the `latest_customers` table (`defs.features.state.label_inputs`)."""
    engine = engine_inputs.engine
    reading = label_inputs(engine_inputs, drop_order(context.instance))
    as_of = reading.as_of
    champion = champion_model["champion_version"]
    keys = performance.archive_keys(score_history["archives"])
    rule = performance.PerformanceRule(max_auc_drop=config.max_auc_drop, min_rows=config.min_rows)
    client = model_registry.client()
    matured = performance.latest_matured(keys, as_of, problem.horizon_days)
    evaluations: list[dict[str, Any]] = []
    drops_read = 0
    if matured:
        start, end = performance.label_span(matured.values(), problem.horizon_days)
        inputs, drops_read = reading.frames(start, end)
        evaluations = [
            performance.evaluate_scoring(
                key,
                monitoring_store.read(f"score_history/{key.stem}.parquet"),
                inputs,
                _expected_metrics(client, version),
                rule,
                horizon_days=problem.horizon_days,
                threshold=problem.large_purchase_threshold,
            )
            for version, key in matured.items()
        ]
    value = performance.performance_report(evaluations, keys, champion, as_of, problem.horizon_days, rule)
    metadata: dict[str, Any] = {
        "status": value["status"],
        "reason": value["reason"],
        "degraded": value["degraded"],
        "champion_version": champion,
        "data_as_of": as_of.isoformat(),
        "engine": engine.name,
        "drops": len(reading.drops),
        "drops_read_for_labels": drops_read,
    }
    if evaluations:
        table = performance.evaluations_table(evaluations)
        metadata["evaluations"] = table_metadata(table, PERFORMANCE_COLUMNS)
    context.add_output_metadata(metadata)
    return value
