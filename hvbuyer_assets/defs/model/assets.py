"""Train -> evaluate on the temporal hold-out -> register in MLflow -> promote to ``champion`` if better."""

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import pandas as pd
from sklearn.pipeline import Pipeline

from hvbuyer_assets import registry
from hvbuyer_assets.core import evaluation, features, model
from hvbuyer_assets.defs.model import checks
from hvbuyer_assets.defs.resources import ModelRegistryResource, layer, png_metadata

BASELINES = ("logistic_regression", "demographics_only")


class ModelConfig(dg.Config):
    """Random-forest hyper-parameters of the candidate (and of the demographics-only baseline)."""

    n_estimators: int = model.ModelParams.n_estimators  # 100: see core.model.ModelParams
    max_depth: int | None = 12
    min_samples_leaf: int = 20
    max_samples: float | None = 0.5
    random_state: int = 42

    def params(self) -> model.ModelParams:
        """As the core's frozen parameter object."""
        return model.ModelParams(**self.model_dump())


class EvaluationConfig(dg.Config):
    """The quality floor (blocking check) and the baselines the candidate is reported against."""

    quality_floor_roc_auc: float = 0.6


class PromotionConfig(dg.Config):
    """How much better (hold-out ROC-AUC) a candidate must be to replace the champion; ties keep it."""

    min_improvement: float = 0.0


def _holdout(training_set: pd.DataFrame) -> pd.DataFrame:
    return training_set[training_set["split"] == "holdout"]


@dg.asset(group_name="model", metadata=layer("models"), kinds={"sklearn"})
def trained_model(context: dg.AssetExecutionContext, training_set: pd.DataFrame, config: ModelConfig) -> Pipeline:
    """The candidate: preprocessing + seeded RandomForest in one sklearn Pipeline, fit on the train rows."""
    started = time.perf_counter()
    fitted = model.train_model(training_set, config.params())
    train = training_set[training_set["split"] == "train"]
    context.add_output_metadata(
        {
            "train_rows": len(train),
            "train_prevalence": float(train["label"].mean()),
            "fit_seconds": round(time.perf_counter() - started, 2),
            "params": dg.MetadataValue.json(config.model_dump()),
        }
    )
    return fitted


@dg.asset(
    group_name="model",
    metadata=layer("models"),
    check_specs=[checks.MODEL_QUALITY_FLOOR],
    kinds={"sklearn"},
)
def model_evaluation(
    trained_model: Pipeline, training_set: pd.DataFrame, config: EvaluationConfig
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Hold-out metrics (ROC-AUC, PR-AUC, Brier, log-loss, calibration, lift) next to two baselines trained on
    the same rows: logistic regression on the same features and a demographics-only model."""
    holdout = _holdout(training_set)
    proba = model.predict_proba(trained_model, holdout)
    report = evaluation.evaluate(holdout["label"].to_numpy(), proba)
    baselines = {}
    rf_params = trained_model.named_steps["classifier"].get_params()
    params = model.ModelParams(
        **{k: rf_params[k] for k in ("n_estimators", "max_depth", "min_samples_leaf", "max_samples", "random_state")}
    )
    for kind in BASELINES:
        fitted = model.train_model(training_set, params, kind=kind)
        baselines[kind] = evaluation.evaluate(holdout["label"].to_numpy(), model.predict_proba(fitted, holdout))
    metrics = evaluation.scalar_metrics(report)
    value = {
        "metrics": metrics,
        "baselines": {kind: evaluation.scalar_metrics(r) for kind, r in baselines.items()},
        "calibration": report["calibration"].to_dict(orient="records"),
        "lift": report["lift"].to_dict(orient="records"),
        "holdout_cutoff": pd.Timestamp(holdout["cutoff"].iloc[0]).isoformat(),
        "holdout_rows": len(holdout),
    }
    table = pd.DataFrame({"candidate": metrics, **{kind: value["baselines"][kind] for kind in BASELINES}}).round(4)
    yield dg.Output(
        value,
        metadata={
            **{key: float(v) for key, v in metrics.items()},
            "comparison": dg.MetadataValue.md(table.to_markdown()),
            "roc_curve": png_metadata("ROC", evaluation.plot_roc(holdout["label"].to_numpy(), proba)),
            "calibration_plot": png_metadata("calibration", evaluation.plot_calibration(report["calibration"])),
            "lift_plot": png_metadata("lift", evaluation.plot_lift(report["lift"])),
        },
    )
    yield checks.quality_floor(
        metrics, value["baselines"]["demographics_only"]["roc_auc"], config.quality_floor_roc_auc
    )


def training_fingerprint(training_set: pd.DataFrame, fitted: Pipeline) -> str:
    """Identity of (training data, features, hyper-parameters): a re-run on identical inputs registers nothing."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(training_set, index=False).to_numpy().tobytes())
    digest.update(json.dumps(list(features.FEATURE_COLUMNS)).encode())
    digest.update(json.dumps(fitted.named_steps["classifier"].get_params(), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def _log_evaluation(value: dict[str, Any], fitted: Pipeline) -> None:
    mlflow.log_params({k: v for k, v in fitted.named_steps["classifier"].get_params().items() if v is not None})
    mlflow.log_metrics({f"holdout_{k}": float(v) for k, v in value["metrics"].items()})
    for kind, metrics in value["baselines"].items():
        mlflow.log_metrics({f"{kind}_{k}": float(v) for k, v in metrics.items()})
    mlflow.log_dict(value, "evaluation/model_evaluation.json")
    with tempfile.TemporaryDirectory() as tmp:
        plots = {
            "calibration.png": evaluation.plot_calibration(pd.DataFrame(value["calibration"])),
            "lift.png": evaluation.plot_lift(pd.DataFrame(value["lift"])),
        }
        for name, png in plots.items():
            (Path(tmp) / name).write_bytes(png)
            mlflow.log_artifact(str(Path(tmp) / name), artifact_path="evaluation")


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
    metadata=layer("models"),
    required_resource_keys={"mlflow", "model_registry", "problem"},
    check_specs=[checks.ONNX_PARITY],
    kinds={"mlflow", "onnx"},
)
def registered_model(
    context: dg.AssetExecutionContext,
    trained_model: Pipeline,
    training_set: pd.DataFrame,
    model_evaluation: dict[str, Any],
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Log the run (params, metrics, evaluation, model with signature + input example, its ONNX graph) and
    register a version of ``hvbuyer``; an identical re-run reuses the version trained on the same data and
    parameters. The blocking check ``onnx_parity`` compares ONNX Runtime with sklearn on the hold-out rows and
    its result is tagged on the version (``hvbuyer.onnx_verified``): the API serves ONNX only when verified."""
    model_registry: ModelRegistryResource = context.resources.model_registry
    client = model_registry.client()
    fingerprint = training_fingerprint(training_set, trained_model)
    run_id = mlflow.active_run().info.run_id
    holdout = _holdout(training_set)
    horizon = pd.Timedelta(days=context.resources.problem.horizon_days)
    data_as_of = (pd.Timestamp(model_evaluation["holdout_cutoff"]) + horizon).isoformat()
    try:
        existing = registry.find_version_by_fingerprint(client, fingerprint)
        if existing is not None:
            version, reused = str(existing.version), True
            mlflow.set_tag("hvbuyer.registration", f"reused version {version} (same training fingerprint)")
            existing_uri = (existing.tags or {}).get(registry.ONNX_URI_TAG)
        else:
            _log_evaluation(model_evaluation, trained_model)
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
    finally:
        mlflow.end_run()  # materialize() and the CLI attach no dagster-mlflow hook: close the run here
    yield dg.Output(
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
            "mlflow_run_id": run_id,
            "onnx_artifact_uri": onnx_uri or "",
            "onnx_max_abs_diff": -1.0 if max_diff is None else max_diff,
        },
    )
    yield check


def _notify_api(context: dg.AssetExecutionContext) -> None:
    """Tell a running prediction API to reload the champion now (it polls the alias anyway). Needs
    ``HVBUYER_ADMIN_TOKEN``; the API is at ``HVBUYER_API_URL`` (default http://127.0.0.1:8080). Never fails."""
    token = os.environ.get("HVBUYER_ADMIN_TOKEN")
    if not token:
        return
    url = os.environ.get("HVBUYER_API_URL") or "http://127.0.0.1:8080"
    if registry.notify_reload(url, token):
        context.log.info(f"prediction API at {url} reloaded the champion")
    else:
        context.log.warning(f"could not notify the prediction API at {url}; it will pick the champion up by polling")


@dg.asset(
    group_name="model",
    metadata=layer("models"),
    required_resource_keys={"mlflow", "model_registry"},
    kinds={"mlflow"},
)
def champion_model(
    context: dg.AssetExecutionContext,
    registered_model: dict[str, Any],
    training_set: pd.DataFrame,
    config: PromotionConfig,
) -> dict[str, Any]:
    """Alias ``champion``: the candidate replaces the current champion only if it scores better on the same
    hold-out data. Every decision, "kept the champion" included, is recorded in metadata and MLflow tags."""
    model_registry: ModelRegistryResource = context.resources.model_registry
    client = model_registry.client()
    candidate = registered_model["version"]
    candidate_metrics = registered_model["metrics"]
    current = registry.champion(client)
    champion_metrics: dict[str, float] | None = None
    try:
        if current is None:
            promote, reason = True, "first model to pass the quality floor"
        elif str(current.version) == candidate:
            promote, reason = False, f"version {candidate} is already the champion"
        else:
            holdout = _holdout(training_set)
            try:
                previous = model_registry.load(str(current.version))
                report = evaluation.evaluate(holdout["label"].to_numpy(), model.predict_proba(previous, holdout))
                champion_metrics = evaluation.scalar_metrics(report)
            except Exception as exc:  # a champion that cannot score today's features cannot keep serving
                promote, reason = (
                    True,
                    f"champion v{current.version} cannot score the current features ({exc})",
                )
            else:
                promote = evaluation.is_better(candidate_metrics, champion_metrics, config.min_improvement)
                verb = "beats" if promote else "does not beat"
                reason = (
                    f"candidate v{candidate} ROC-AUC {candidate_metrics['roc_auc']:.4f} {verb} champion "
                    f"v{current.version} {champion_metrics['roc_auc']:.4f} on the same hold-out"
                )
        if promote:
            registry.promote(client, candidate)
        decision = "promoted" if promote else "kept"
        champion_version = candidate if promote else str(current.version)
        client.set_model_version_tag(registry.MODEL_NAME, candidate, "hvbuyer.promotion", f"{decision}: {reason}")
        mlflow.set_tags(
            {
                "hvbuyer.promotion.decision": decision,
                "hvbuyer.promotion.reason": reason,
                "hvbuyer.champion_version": champion_version,
            }
        )
    finally:
        mlflow.end_run()
    context.log.info(f"champion {decision}: {reason}")
    if promote:
        _notify_api(context)
    value = {
        "champion_version": champion_version,
        "candidate_version": candidate,
        "previous_champion": None if current is None else str(current.version),
        "decision": decision,
        "reason": reason,
        "candidate_metrics": candidate_metrics,
        "champion_metrics": champion_metrics,
        "decided_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    context.add_output_metadata({"champion_version": champion_version, "decision": decision, "reason": reason})
    return value
