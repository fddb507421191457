"""The MLflow model registry as hvbuyer uses it: model ``hvbuyer``, served version = alias ``champion``.

No Dagster import: the serving package resolves and loads the champion through this module too.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

log = logging.getLogger("hvbuyer.registry")

MODEL_NAME = "hvbuyer"
EXPERIMENT_NAME = "hvbuyer"
# MLflow's experiment-kind tag: a model-training experiment, not a GenAI one (the value MLflow's own
# experiment-kind selector writes). MLflow 3.17's UI lays its experiment page out by the global "GenAI | Model
# training" switch, whose URL form is ``WORKFLOW_QUERY``: the links we print carry it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
WORKFLOW_QUERY = "workflowType=machine_learning"
CHAMPION_ALIAS = "champion"
# What the registry answers for a missing model (RESOURCE_DOES_NOT_EXIST) or alias (INVALID_PARAMETER_VALUE).
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
FINGERPRINT_TAG = "hvbuyer.training_fingerprint"
ONNX_URI_TAG = "hvbuyer.onnx_artifact_uri"
ONNX_VERIFIED_TAG = "hvbuyer.onnx_verified"
ONNX_DIFF_TAG = "hvbuyer.onnx_max_abs_diff"
DATA_AS_OF_TAG = "hvbuyer.data_as_of"
HOLDOUT_CUTOFF_TAG = "hvbuyer.holdout_cutoff"
HOLDOUT_ROC_AUC_TAG = "hvbuyer.holdout_roc_auc"
# The comparison that decided a version's promotion (``champion_model``): on the candidate's hold-out, the
# candidate's and the then champion's ROC-AUC, and which version that champion was ("none" for the first).
COMPARED_WITH_TAG = "hvbuyer.promotion.compared_with"
CANDIDATE_AUC_TAG = "hvbuyer.promotion.candidate_roc_auc"
PREVIOUS_AUC_TAG = "hvbuyer.promotion.previous_roc_auc"
PROMOTION_TAG = "hvbuyer.promotion"
ONNX_ARTIFACT_PATH = "onnx/model.onnx"


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version in the registry and the run that produced it."""

    version: str
    run_id: str
    reused: bool


def client(tracking_uri: str) -> MlflowClient:
    """An MLflow client for the tracking/registry URI."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


class TrackingServerError(RuntimeError):
    """The MLflow tracking server cannot serve requests; the message names its URL and why."""


def tracking_server_problem(tracking_uri: str, timeout: float = 5.0) -> str | None:
    """What is wrong with the MLflow tracking server at ``tracking_uri``, in one sentence naming its URL, or None
    when its ``/health`` answers 200 (or the URI is a local store, not a server)."""
    import httpx

    if urlsplit(tracking_uri).scheme not in ("http", "https"):
        return None
    try:
        response = httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        return f"MLflow tracking server {tracking_uri} unreachable: {type(exc).__name__}: {exc}"
    if response.status_code != 200:
        answer = response.text[:200].strip()
        return f"MLflow tracking server {tracking_uri} unhealthy: GET /health answered {response.status_code} {answer}"
    return None


def ensure_experiment(tracking_uri: str, artifact_location: str) -> str:
    """Create the ``hvbuyer`` experiment with its artifacts under the data dir (MLflow's default would be a
    folder relative to whatever directory the process happens to run in), tagged as a model-training experiment;
    its id. A request that fails because the server is down raises :class:`TrackingServerError` naming it."""
    try:
        return _ensure_experiment(tracking_uri, artifact_location)
    except MlflowException as exc:
        problem = tracking_server_problem(tracking_uri)
        if problem is None:
            raise
        raise TrackingServerError(problem) from exc


def _ensure_experiment(tracking_uri: str, artifact_location: str) -> str:
    mlflow_client = client(tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        with contextlib.suppress(MlflowException):  # created concurrently by another process
            mlflow_client.create_experiment(
                EXPERIMENT_NAME, artifact_location=artifact_location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        experiment = mlflow_client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is None:
            raise MlflowException(f"experiment {EXPERIMENT_NAME!r} could not be created at {tracking_uri}")
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # an experiment made by an older version
        mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return str(experiment.experiment_id)


def experiment_url(ui_url: str, experiment_id: str) -> str:
    """The MLflow UI page of the experiment's training runs (the runs table)."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{WORKFLOW_QUERY}"


def trusted_types(model: Any) -> list[str]:
    """The skops types a model we built ourselves needs to load again.

    MLflow 3 stores sklearn models with skops, which refuses any type not listed as trusted; the list is
    derived from the model itself so that a new estimator in the pipeline needs no hand-kept list.
    """
    import skops.io  # imported when a model is logged: ~1.5 s of imports no other caller needs

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def find_version_by_fingerprint(mlflow_client: MlflowClient, fingerprint: str) -> ModelVersion | None:
    """The registered version trained on exactly this data and configuration, if any (idempotent re-runs)."""
    try:
        versions = mlflow_client.search_model_versions(
            f"name = '{MODEL_NAME}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'"
        )
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def log_model(model: Any, example: pd.DataFrame) -> str:
    """Log a fitted pipeline (skops, signature + input example) in the active MLflow run; return its URI.

    The pyfunc predicts probabilities so that ``mlflow models serve`` answers the same question as our API.
    """
    example = example.astype({c: "float64" for c in example.columns if c != "region"})
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(example, model.predict_proba(example)),
        input_example=example,
        serialization_format="skops",
        skops_trusted_types=trusted_types(model),
        pyfunc_predict_fn="predict_proba",
        # Pinned from this environment: MLflow's own inference of requirements re-loads the model in a
        # subprocess and costs several seconds per registration.
        pip_requirements=_requirements(),
    )
    return info.model_uri


def _requirements() -> list[str]:
    names = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")
    return [f"{name}=={metadata.version(name)}" for name in names]


def register(mlflow_client: MlflowClient, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
    """Create a new version of the registered model; return its version number."""
    try:
        mlflow_client.get_registered_model(MODEL_NAME)
    except MlflowException:
        mlflow_client.create_registered_model(
            MODEL_NAME,
            description="P(large purchase within the horizon) per customer; served alias: champion.",
        )
    # MLflow resolves a ``models:/<model_id>`` source through the *global* tracking URI (a TODO in MLflow's
    # sqlalchemy store), so point it at this client's store first or the lookup may hit another registry.
    mlflow.set_tracking_uri(mlflow_client.tracking_uri)
    # A tracking *server* rejects a ``models:/<model_id>`` source unless the model id is passed along too.
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = mlflow_client.create_model_version(MODEL_NAME, model_uri, run_id=run_id, tags=tags, model_id=model_id)
    return str(version.version)


def champion(mlflow_client: MlflowClient) -> ModelVersion | None:
    """The version holding the ``champion`` alias, or None before the first promotion (no model, no alias). An
    unreachable or failing registry raises: it must not read as "no champion yet"."""
    try:
        return mlflow_client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND_CODES:
            return None
        raise


def load_version(tracking_uri: str, version: str) -> Any:
    """Load one registered version as the fitted sklearn pipeline."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{version}")


def promote(mlflow_client: MlflowClient, version: str) -> None:
    """Point the ``champion`` alias at a version (the API follows the alias)."""
    mlflow_client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, version)


def log_onnx(onnx_bytes: bytes) -> str:
    """Log an ONNX graph as ``onnx/model.onnx`` of the active run (next to the model); return its artifact URI."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_onnx needs an active MLflow run")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(ONNX_ARTIFACT_PATH).name
        path.write_bytes(onnx_bytes)
        mlflow.log_artifact(str(path), artifact_path=str(Path(ONNX_ARTIFACT_PATH).parent))
    return f"runs:/{run.info.run_id}/{ONNX_ARTIFACT_PATH}"


def download_artifact(tracking_uri: str, artifact_uri: str) -> bytes:
    """The bytes of one artifact, fetched through the registry's artifact store (never an outside path)."""
    if not artifact_uri.startswith(("runs:/", "models:/")):
        raise ValueError(f"refusing to load {artifact_uri!r}: only runs:/ and models:/ artifact URIs are served")
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=tracking_uri)
        return Path(local).read_bytes()


def version_details(mlflow_client: MlflowClient, version: ModelVersion) -> dict[str, Any]:
    """What the API reports about a version: trained_at (its run's start), hold-out metrics, tags."""
    details: dict[str, Any] = {"trained_at": None, "metrics": {}, "tags": dict(version.tags or {})}
    if version.run_id:
        try:
            run = mlflow_client.get_run(version.run_id)
        except MlflowException:
            return details
        details["trained_at"] = pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").isoformat()
        details["metrics"] = {
            key.removeprefix("holdout_"): float(value)
            for key, value in run.data.metrics.items()
            if key.startswith("holdout_")
        }
    return details


def _float_tag(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, ValueError):
        return None


def promotion_record(tags: dict[str, str]) -> dict[str, Any]:
    """What a version's tags say about it: its hold-out ROC-AUC at registration, and the same-hold-out comparison
    that promoted it (against which version, both ROC-AUCs, the decision); None where a tag is absent."""
    compared = tags.get(COMPARED_WITH_TAG)
    decision = tags.get(PROMOTION_TAG)
    return {
        "roc_auc_at_registration": _float_tag(tags, HOLDOUT_ROC_AUC_TAG),
        "compared_with": None if compared in (None, "none") else compared,
        "candidate_roc_auc_same_holdout": _float_tag(tags, CANDIDATE_AUC_TAG),
        "previous_roc_auc_same_holdout": _float_tag(tags, PREVIOUS_AUC_TAG),
        "decision": decision,
    }


def notify_reload(api_url: str, token: str, timeout: float = 2.0) -> bool:
    """Ask a running prediction API to re-resolve the champion now (``POST /admin/reload``).

    Best effort: the API also polls the alias, so a failure is logged and reported as False, never raised.
    """
    import httpx

    try:
        response = httpx.post(
            f"{api_url.rstrip('/')}/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        log.warning("could not notify the prediction API at %s: %s", api_url, exc)
        return False
    if response.status_code != 200:
        log.warning("the prediction API at %s answered %s to /admin/reload", api_url, response.status_code)
        return False
    return True
