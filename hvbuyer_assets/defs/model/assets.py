"""Train -> evaluate on the temporal hold-out -> register in MLflow -> promote to `champion` if better."""

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import mlflow
import pandas as pd
from sklearn.pipeline import Pipeline

from hvbuyer_assets import registry
from hvbuyer_assets.core import drift_report, evaluation, fingerprints, labels, model, promotion
from hvbuyer_assets.defs.checks_gate import gate
from hvbuyer_assets.defs.metadata import PlotStore, stored, table_metadata
from hvbuyer_assets.defs.model import checks, tracking
from hvbuyer_assets.defs.model.resources import ModelRegistryResource
from hvbuyer_assets.defs.monitoring.storage import MonitoringStore, reference_paths
from hvbuyer_assets.defs.problem import PredictionProblem
from hvbuyer_assets.settings import load_settings

BASELINES = ("logistic_regression", "demographics_only")


class ModelConfig(dg.Config):
    """Random-forest hyper-parameters of the candidate (and of the demographics-only baseline); the defaults
    are `core.model.ModelParams`'s."""

    n_estimators: int = model.ModelParams.n_estimators
    max_depth: int | None = model.ModelParams.max_depth
    min_samples_leaf: int = model.ModelParams.min_samples_leaf
    max_samples: float | None = model.ModelParams.max_samples
    random_state: int = model.ModelParams.random_state

    def params(self) -> model.ModelParams:
        """As the core's frozen parameter object."""
        return model.ModelParams(**self.model_dump())


class EvaluationConfig(dg.Config):
    """The quality floor (blocking check) and the baselines the candidate is reported against."""

    quality_floor_roc_auc: float = 0.6


class PromotionConfig(dg.Config):
    """How much better (hold-out ROC-AUC) a candidate must be to replace the champion; ties keep it. A candidate
    whose training data collapsed against the champion's reference (one value in `collapse_share` of the rows of
    a once-diverse feature, `core.promotion.population_problem`) never replaces it."""

    min_improvement: float = 0.0
    collapse_share: float = promotion.COLLAPSE_SHARE


def _holdout(training_set: pd.DataFrame) -> pd.DataFrame:
    return training_set[training_set["split"] == "holdout"]


@dg.asset(group_name="model", metadata=stored("trained_model"), kinds={"sklearn"})
def trained_model(context: dg.AssetExecutionContext, training_set: pd.DataFrame, config: ModelConfig) -> Pipeline:
    """The candidate: preprocessing + seeded RandomForest in one sklearn Pipeline, fit on the train rows."""
    started = time.perf_counter()
    fitted = model.train_model(training_set, config.params())
    train = training_set[training_set["split"] == "train"]
    context.add_output_metadata(
        {
            "train_rows": len(train),
            "train_prevalence": round(float(train["label"].mean()), 4),
            "fit_seconds": round(time.perf_counter() - started, 2),
            "params": dg.MetadataValue.json(config.model_dump()),
        }
    )
    return fitted


@dg.asset(
    group_name="model",
    metadata=stored("model_evaluation"),
    check_specs=[checks.MODEL_QUALITY_FLOOR],
    kinds={"sklearn"},
    output_required=False,  # below the floor: nothing stored (defs.checks_gate)
)
def model_evaluation(
    trained_model: Pipeline, training_set: pd.DataFrame, config: EvaluationConfig, plots: PlotStore
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Hold-out metrics (ROC-AUC, PR-AUC, Brier, log-loss, calibration, lift) next to two baselines trained on
    the same rows: logistic regression on the same features and a demographics-only model. The ROC, calibration
    and lift plots show the candidate and both baselines on one chart each."""
    holdout = _holdout(training_set)
    y = holdout["label"].to_numpy()
    params = model.ModelParams.of(trained_model)
    probas = {tracking.CANDIDATE: model.predict_proba(trained_model, holdout)}
    for kind in BASELINES:
        probas[kind] = model.predict_proba(model.train_model(training_set, params, kind=kind), holdout)
    reports = {name: evaluation.evaluate(y, proba) for name, proba in probas.items()}
    report = reports[tracking.CANDIDATE]
    metrics = evaluation.scalar_metrics(report)
    value = {
        "metrics": metrics,
        "baselines": {kind: evaluation.scalar_metrics(reports[kind]) for kind in BASELINES},
        "calibration": report["calibration"].to_dict(orient="records"),
        "lift": report["lift"].to_dict(orient="records"),
        "holdout_cutoff": pd.Timestamp(holdout["cutoff"].iloc[0]).isoformat(),
        "holdout_rows": len(holdout),
        "curves": {
            name: {
                "roc": evaluation.roc_points(y, probas[name]),
                "calibration": r["calibration"].to_dict(orient="records"),
                "lift": r["lift"].to_dict(orient="records"),
            }
            for name, r in reports.items()
        },
    }
    pngs = tracking.comparison_plots(value)
    output = dg.Output(
        value,
        metadata={
            **{key: round(float(v), 4) for key, v in metrics.items() if key != "n"},
            "holdout_rows": len(holdout),
            "comparison": comparison_table({tracking.CANDIDATE: metrics, **value["baselines"]}),
            "roc_curve": plots.markdown("ROC: candidate vs baselines", pngs["roc.png"]),
            "calibration_plot": plots.markdown("calibration: candidate vs baselines", pngs["calibration.png"]),
            "lift_plot": plots.markdown("lift: candidate vs baselines", pngs["lift.png"]),
        },
    )
    check = checks.quality_floor(
        metrics, value["baselines"]["demographics_only"]["roc_auc"], config.quality_floor_roc_auc
    )
    yield from gate([output], [check], [checks.MODEL_QUALITY_FLOOR])


METRIC_COLUMNS = {
    "model": "The candidate, then the baselines it is compared with (trained on the same rows).",
    "roc_auc": "ROC-AUC (higher is better; decides promotion).",
    "pr_auc": "Average precision (higher is better).",
    "brier": "Brier score (lower is better).",
    "log_loss": "Log-loss (lower is better).",
    "prevalence": "Share of positives in the hold-out.",
}


def comparison_table(by_model: dict[str, dict[str, float]]) -> dg.MetadataValue:
    """Hold-out metrics, one row per model (candidate first), rounded to 4 decimals, as a Dagster table."""
    frame = pd.DataFrame([{"model": tracking.LABELS.get(name, name), **metrics} for name, metrics in by_model.items()])
    return table_metadata(frame[list(METRIC_COLUMNS)], METRIC_COLUMNS)


def _onnx_parity(
    fitted: Pipeline, holdout: pd.DataFrame, existing_uri: str | None, tracking_uri: str
) -> tuple[str | None, float | None, str | None]:
    """(artifact URI, max |ONNX - sklearn| on the hold-out, error): the graph of a reused version is downloaded
    and checked again; otherwise the pipeline is converted and the graph logged in the active run."""
    try:
        if existing_uri is not None:
            uri, onnx_bytes = existing_uri, registry.download_artifact(tracking_uri, existing_uri)
        else:
            onnx_bytes = model.to_onnx(fitted)
            uri = registry.log_onnx(onnx_bytes)
        return uri, model.onnx_max_abs_diff(fitted, model.onnx_session(onnx_bytes), holdout), None
    except Exception as exc:  # reported by the blocking check; the API then falls back to sklearn
        return None, None, f"{type(exc).__name__}: {exc}"


@dg.asset(
    group_name="model",
    metadata=stored("registered_model"),
    required_resource_keys={"mlflow", "model_registry", "problem"},
    check_specs=[checks.ONNX_PARITY],
    kinds={"mlflow", "onnx"},
    output_required=False,  # parity failed: the version stays tagged unverified, nothing stored (defs.checks_gate)
)
def registered_model(
    context: dg.AssetExecutionContext,
    trained_model: Pipeline,
    training_set: pd.DataFrame,
    model_evaluation: dict[str, Any],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Register a version of `hvbuyer` in MLflow. Its run (named after the Dagster job and run, e.g.
    `full_build-1a2b3c4d`) logs the problem definition (horizon, threshold, cutoffs, data as-of) and the forest's
    parameters, hold-out metrics next to the baselines', the evaluation with its ROC / calibration / lift plots,
    the model with signature + input example and its ONNX graph. A re-run on the same data and parameters reuses
    the version trained on them (no new run). The blocking check `onnx_parity` compares ONNX Runtime with sklearn
    on the hold-out rows; its result is tagged on the version (`hvbuyer.onnx_verified`): the API serves ONNX only
    when verified."""
    model_registry: ModelRegistryResource = context.resources.model_registry
    problem: PredictionProblem = context.resources.problem
    client = model_registry.client()
    classifier_params = trained_model.named_steps["classifier"].get_params()
    fingerprint = fingerprints.training_fingerprint(training_set, classifier_params)
    holdout = _holdout(training_set)
    data_as_of = labels.label_window(model_evaluation["holdout_cutoff"], problem.horizon_days)[1].isoformat()
    try:
        existing = registry.find_version_by_fingerprint(client, fingerprint)
        if existing is not None:
            version, reused, run_id = str(existing.version), True, existing.run_id or ""
            existing_uri = (existing.tags or {}).get(registry.ONNX_URI_TAG)
        else:
            run_id = context.resources.mlflow.start()
            params = tracking.problem_params(problem.params(), training_set, data_as_of)
            note = tracking.problem_note(problem.params(), params)
            tracking.log_candidate_run(model_evaluation, classifier_params, params, note)
            example = model.model_input(holdout.head(5))
            uri = registry.log_model(trained_model, example)
            tags = {
                registry.FINGERPRINT_TAG: fingerprint,
                registry.HOLDOUT_ROC_AUC_TAG: f"{model_evaluation['metrics']['roc_auc']:.6f}",
                registry.HOLDOUT_CUTOFF_TAG: model_evaluation["holdout_cutoff"],
                "hvbuyer.dagster_run_id": context.run_id,
            }
            version, reused = registry.register(client, uri, run_id, tags), False
            mlflow.set_tag("hvbuyer.registration", f"registered version {version}")
            existing_uri = None
        onnx_uri, max_diff, error = _onnx_parity(trained_model, holdout, existing_uri, model_registry.tracking_uri)
        check = checks.onnx_parity(max_diff, model.ONNX_PARITY_TOLERANCE, len(holdout), error)
        onnx_tags = {
            registry.ONNX_VERIFIED_TAG: "true" if check.passed else "false",
            registry.ONNX_DIFF_TAG: "" if max_diff is None else f"{max_diff:.3e}",
            registry.DATA_AS_OF_TAG: data_as_of,
        }
        if onnx_uri is not None:
            onnx_tags[registry.ONNX_URI_TAG] = onnx_uri
        for key, value in onnx_tags.items():
            client.set_model_version_tag(registry.MODEL_NAME, version, key, value)
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()  # materialize() and the CLI attach no dagster-mlflow hook: close the run here
    output = dg.Output(
        {
            "version": version,
            "reused": reused,
            "fingerprint": fingerprint,
            "run_id": run_id,
            "metrics": model_evaluation["metrics"],
            "onnx_artifact_uri": onnx_uri,
            "onnx_max_abs_diff": max_diff,
            "data_as_of": data_as_of,
        },
        metadata={
            "version": version,
            "reused": reused,
            "mlflow_run_id": dg.MetadataValue.url(model_registry.run_url(run_id)) if run_id else "",
            "mlflow_model_version": dg.MetadataValue.url(model_registry.version_url(version)),
            "holdout_roc_auc": round(float(model_evaluation["metrics"]["roc_auc"]), 4),
            "data_as_of": data_as_of,
            "onnx_artifact_uri": onnx_uri or "",
            "onnx_max_abs_diff": -1.0 if max_diff is None else float(f"{max_diff:.3g}"),
        },
    )
    yield from gate([output], [check], [checks.ONNX_PARITY])


def _notify_api(context: dg.AssetExecutionContext) -> None:
    """Tell a running prediction API to reload the champion now (it polls the alias anyway). Needs
    `HVBUYER_ADMIN_TOKEN`; the API is at `HVBUYER_API_URL` (default http://127.0.0.1:8080). Never fails."""
    settings = load_settings()
    if not settings.admin_token:
        return
    url = settings.api_url
    if registry.notify_reload(url, settings.admin_token):
        context.log.info(f"prediction API at {url} reloaded the champion")
    else:
        context.log.warning(f"could not notify the prediction API at {url}; it will pick the champion up by polling")


def _population_check(
    store: MonitoringStore, champion: str, training_set: pd.DataFrame, collapse_share: float
) -> tuple[str | None, str]:
    """(why the candidate's data is degenerate or None, the check's outcome as recorded) against the champion's
    reference snapshot; a champion without a snapshot is not checked (`core.promotion`)."""
    snapshot, _ = reference_paths(champion)
    if not store.exists(snapshot):
        return None, promotion.NOT_CHECKED
    numeric, categorical = drift_report.voting_features()
    problem = promotion.population_problem(training_set, store.read(snapshot), numeric + categorical, collapse_share)
    return problem, "ok" if problem is None else f"degenerate: {problem}"


@dg.asset(
    group_name="model",
    metadata=stored("champion_model"),
    required_resource_keys={"model_registry", "monitoring_store"},
    kinds={"mlflow"},
)
def champion_model(
    context: dg.AssetExecutionContext,
    registered_model: dict[str, Any],
    training_set: pd.DataFrame,
    config: PromotionConfig,
) -> dict[str, Any]:
    """Alias `champion`: the candidate replaces the current champion only if it scores better on the same
    hold-out data and its training data has not collapsed against the champion's reference snapshot
    (`monitoring/reference/v<champion>.parquet`; e.g. every customer in one region). Every decision, "kept the
    champion" included, is recorded in metadata, as the version's `hvbuyer.promotion` tag and as
    `hvbuyer.promotion.*` tags of the candidate's own MLflow run."""
    model_registry: ModelRegistryResource = context.resources.model_registry
    client = model_registry.client()
    candidate = registered_model["version"]
    candidate_metrics = registered_model["metrics"]
    current = registry.champion(client)
    previous = None if current is None else str(current.version)
    champion_metrics: dict[str, float] | None = None
    error: str | None = None
    degenerate: str | None = None
    population_check = "not needed"
    if promotion.needs_comparison(candidate, previous):
        degenerate, population_check = _population_check(
            context.resources.monitoring_store, previous, training_set, config.collapse_share
        )
        holdout = _holdout(training_set)
        try:
            fitted = model_registry.load(previous)
            report = evaluation.evaluate(holdout["label"].to_numpy(), model.predict_proba(fitted, holdout))
            champion_metrics = evaluation.scalar_metrics(report)
        except Exception as exc:  # a champion that cannot score today's features cannot keep serving
            error = str(exc)
    outcome = promotion.decide(
        candidate, candidate_metrics, previous, champion_metrics, config.min_improvement, error, degenerate
    )
    if outcome.promote:
        registry.promote(client, candidate)
    tags = {registry.PROMOTION_TAG: f"{outcome.decision}: {outcome.reason}"}
    if outcome.promote and candidate != previous:  # the comparison that made it champion, kept with it
        tags[registry.COMPARED_WITH_TAG] = previous if champion_metrics is not None and previous else "none"
        tags[registry.CANDIDATE_AUC_TAG] = f"{float(candidate_metrics['roc_auc']):.6f}"
        if champion_metrics is not None:
            tags[registry.PREVIOUS_AUC_TAG] = f"{float(champion_metrics['roc_auc']):.6f}"
    for key, value in tags.items():
        client.set_model_version_tag(registry.MODEL_NAME, candidate, key, value)
    run_tags = {
        "hvbuyer.promotion.decision": outcome.decision,
        "hvbuyer.promotion.reason": outcome.reason,
        "hvbuyer.champion_version": outcome.champion_version,
        "hvbuyer.promotion.dagster_run_id": context.run_id,
    }
    for key, value in run_tags.items() if registered_model.get("run_id") else ():  # the model's own run
        client.set_tag(registered_model["run_id"], key, value)
    context.log.info(f"champion {outcome.decision}: {outcome.reason}")
    if outcome.promote:
        _notify_api(context)
    value = {
        "champion_version": outcome.champion_version,
        "candidate_version": candidate,
        "previous_champion": previous,
        "decision": outcome.decision,
        "reason": outcome.reason,
        "candidate_metrics": candidate_metrics,
        "champion_metrics": champion_metrics,
        "population_check": population_check,
        "decided_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    served = client.get_model_version(registry.MODEL_NAME, outcome.champion_version)
    record = registry.promotion_record(dict(served.tags or {}))  # the champion's own promotion, kept or new
    value["champion_promotion"] = record
    context.add_output_metadata(
        {
            **{f"champion_{k}": v for k, v in record.items() if v is not None and k != "decision"},
            "champion_version": outcome.champion_version,
            "decision": outcome.decision,
            "reason": outcome.reason,
            "population_check": population_check,
            "candidate_roc_auc": round(float(candidate_metrics["roc_auc"]), 4),
            **({} if champion_metrics is None else {"champion_roc_auc": round(float(champion_metrics["roc_auc"]), 4)}),
            "mlflow_champion": dg.MetadataValue.url(model_registry.version_url(outcome.champion_version)),
        }
    )
    return value
