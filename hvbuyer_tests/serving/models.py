"""A genuinely different champion for the hot-swap tests: a small forest trained on the workspace's training set,
registered like ``registered_model`` registers (skops model, ONNX graph, verified tags), not a copy of version 1."""

from __future__ import annotations

import mlflow

from hvbuyer_assets import registry
from hvbuyer_assets.core import features, model
from hvbuyer_tests.pipeline import Workspace, read_frame


def register_different_model(workspace: Workspace, n_estimators: int = 7, max_depth: int = 3) -> str:
    """Train, log and register a small forest (ONNX verified against sklearn); return its version."""
    training_set = read_frame(workspace.root / "features" / "training_set.parquet")
    fitted = model.train_model(
        training_set, model.ModelParams(n_estimators=n_estimators, max_depth=max_depth, n_jobs=1)
    )
    holdout = training_set[training_set["split"] == "holdout"].head(500)
    onnx_bytes = model.to_onnx(fitted)
    diff = model.onnx_max_abs_diff(fitted, model.onnx_session(onnx_bytes), holdout)
    assert diff <= model.ONNX_PARITY_TOLERANCE
    mlflow.set_tracking_uri(workspace.settings.mlflow_tracking_uri)
    mlflow.set_experiment(registry.EXPERIMENT_NAME)  # the workspace's: artifacts under its data dir
    try:
        with mlflow.start_run(run_name="different-model") as run:
            uri = registry.log_model(fitted, model.model_input(holdout.head(5)))
            onnx_uri = registry.log_onnx(onnx_bytes)
        tags = {
            registry.ONNX_URI_TAG: onnx_uri,
            registry.ONNX_VERIFIED_TAG: "true",
            registry.ONNX_DIFF_TAG: f"{diff:.3e}",
        }
        return registry.register(workspace.client(), uri, run.info.run_id, tags)
    finally:
        mlflow.end_run()


def probability(workspace: Workspace, version: str, row: dict) -> float:
    """What ``version`` (its sklearn pipeline) says for one request row."""
    fitted = registry.load_version(workspace.settings.mlflow_tracking_uri, version)
    return float(model.predict_proba(fitted, features.serving_frame([row]))[0])
