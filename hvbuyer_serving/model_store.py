"""Follows the registry alias ``champion``: load, verify, then swap the served model atomically.

A version is served with ONNX Runtime when its registration verified the ONNX graph against sklearn
(tag ``hvbuyer.onnx_verified``), else with the sklearn pipeline (reported as ``runtime`` in ``GET /model``).
Everything is fetched through the registry's artifact store (MLflow): no model file from anywhere else.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hvbuyer_assets import registry
from hvbuyer_assets.core import features, model, rules
from hvbuyer_assets.core.treeshap import ForestExplainer
from hvbuyer_serving import inputs, metrics
from hvbuyer_serving.schemas import PredictRequest

log = logging.getLogger(__name__)
BATCH_ROWS = 256  # from this many rows on, the multi-threaded session (and a worker thread, see app.py)
BATCH_THREADS = max(1, min(os.cpu_count() or 1, 4))

# Probe customers every served version must score with probabilities in [0, 1] (and, for ONNX, within the
# parity tolerance of the sklearn pipeline): no data, the seed example, a rich history, odd spelling.
PROBES = [
    PredictRequest(age=None, region=None, loyalty_points=None),
    PredictRequest(age=35, region="East", loyalty_points=1200),
    PredictRequest(
        age=52,
        region="  north ",
        loyalty_points=80,
        tenure_days=900,
        n_transactions=14,
        n_completed=11,
        n_completed_30d=1,
        n_completed_90d=3,
        n_completed_365d=8,
        total_spend=2900,
        spend_90d=700,
        spend_365d=2100,
        avg_spend=263.6,
        max_spend=820,
        last_amount=310,
        n_large=4,
        share_large=0.36,
        days_since_last_purchase=12,
        days_since_first_purchase=850,
        refund_rate=0.1,
        n_failed=1,
    ),
    PredictRequest(
        age=23,
        region=None,
        loyalty_points=0,
        tenure_days=30,
        n_completed=1,
        total_spend=40,
        avg_spend=40,
        max_spend=40,
        last_amount=40,
        days_since_last_purchase=3,
        days_since_first_purchase=3,
    ),
]


@dataclass(frozen=True)
class ServedModel:
    """A verified champion version ready to serve (immutable: requests hold a reference while it is swapped)."""

    version: str
    runtime: str  # "onnx" | "sklearn"
    runtime_note: str
    columns: tuple[str, ...]
    regions: frozenset[str]
    pipeline: Any
    session: Any | None
    batch_session: Any | None = None
    details: dict[str, Any] = field(default_factory=dict)
    explainer: ForestExplainer | None = None  # exact TreeSHAP of the forest (None for another kind of model)

    def predict(self, matrix: np.ndarray, region: Sequence[str]) -> np.ndarray:
        """P(large purchase) for rows of ``inputs.numeric_matrix`` and their normalised regions (large batches
        on a session with one intra-op thread per core, single rows on a one-thread session)."""
        if self.session is not None:
            session = self.batch_session if len(matrix) >= BATCH_ROWS and self.batch_session else self.session
            return model.onnx_predict_proba(session, inputs.onnx_feed(matrix, region, self.columns))
        frame = pd.DataFrame(matrix, columns=list(inputs.NUMERIC))
        frame["region"] = list(region)
        return model.predict_proba(self.pipeline, frame)


def load(tracking_uri: str, mlflow_client: Any, version: Any) -> ServedModel:
    """Load one registered version through the registry (sklearn pipeline, and the ONNX graph when verified)."""
    number = str(version.version)
    tags = dict(version.tags or {})
    _inside_artifact_store(mlflow_client, version)
    pipeline = registry.load_version(tracking_uri, number)
    onnx_uri = tags.get(registry.ONNX_URI_TAG)
    session = batch_session = None
    if onnx_uri and tags.get(registry.ONNX_VERIFIED_TAG) == "true":
        onnx_bytes = registry.download_artifact(tracking_uri, onnx_uri)
        session = model.onnx_session(onnx_bytes)
        batch_session = model.onnx_session(onnx_bytes, threads=BATCH_THREADS)
        runtime = "onnx"
        diff = tags.get(registry.ONNX_DIFF_TAG)
        note = f"ONNX Runtime; parity with sklearn verified at registration (max |diff| {diff})"
    else:
        runtime = "sklearn"
        reason = "ONNX parity check failed" if tags.get(registry.ONNX_VERIFIED_TAG) == "false" else "no ONNX artifact"
        note = f"sklearn fallback: {reason} for this version"
    columns = model.input_columns(pipeline)
    unknown = sorted(set(columns) - set(features.FEATURE_COLUMNS))
    if unknown:
        raise ValueError(f"the model needs inputs the API does not know: {unknown}")
    details = registry.version_details(mlflow_client, version)
    try:
        explainer: ForestExplainer | None = ForestExplainer(pipeline)
    except TypeError:  # not a random forest: served, but ?explain= answers 422
        explainer = None
    return ServedModel(
        version=number,
        runtime=runtime,
        runtime_note=note,
        columns=columns,
        regions=frozenset(model.known_categories(pipeline)) | {rules.UNKNOWN_REGION},
        pipeline=pipeline,
        session=session,
        batch_session=batch_session,
        details=details,
        explainer=explainer,
    )


def _inside_artifact_store(mlflow_client: Any, version: Any) -> None:
    """Refuse a version whose model files live outside the registry's artifact store (a skops file is code)."""
    source = str(version.source or "")
    if source.startswith(("models:/", "runs:/")):
        return
    if version.run_id:
        artifact_uri = mlflow_client.get_run(version.run_id).info.artifact_uri
        if artifact_uri and source.startswith(artifact_uri.rstrip("/") + "/"):
            return
    raise ValueError(f"model source {source!r} is outside the registry's artifact store; not loading it")


def verify(candidate: ServedModel) -> None:
    """Probe predictions must be probabilities; an ONNX graph must also agree with its sklearn pipeline."""
    matrix, region = inputs.numeric_matrix(PROBES), inputs.regions(PROBES)
    proba = candidate.predict(matrix, region)
    if proba.shape != (len(PROBES),) or not np.isfinite(proba).all() or (proba < 0).any() or (proba > 1).any():
        raise ValueError(f"probe predictions {proba!r} are not probabilities")
    if candidate.session is not None:
        frame = features.serving_frame([p.model_dump(exclude_none=True) for p in PROBES])
        diff = float(np.max(np.abs(proba - model.predict_proba(candidate.pipeline, frame))))
        if diff > model.ONNX_PARITY_TOLERANCE:
            raise ValueError(f"ONNX and sklearn disagree on the probe rows (max |diff| {diff:.2e})")


class ChampionStore:
    """Holds the current champion; ``refresh()`` re-resolves the alias and swaps in a new version.

    The swap is one reference assignment: a request reads ``store.current`` once and finishes on that model
    even if a new one is swapped in meanwhile. A version that fails to load or verify is never served: the old
    one stays, the failure is logged and kept in ``last_error`` / ``rejected_version`` (and counted in
    ``/metrics``); polling does not retry a rejected version, ``refresh(force=True)`` (``/admin/reload``) does.
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = registry.client(tracking_uri)
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self.rejected_version: str | None = None
        self.load_failures = 0
        self.loaded_at: float | None = None
        self.checked_at: float | None = None
        self.registry_error: str | None = None  # why the alias could not be resolved, until it can again
        self.registry_error_since: float | None = None
        self._lock = threading.Lock()

    def readiness(self) -> tuple[str, str | None]:
        """``("not_ready", None)`` without a model; ``("degraded", why)`` while the registry cannot be reached
        (the loaded version keeps serving, but a new champion would not be followed); else ``("ready", None)``."""
        if self.current is None:
            return "not_ready", None
        if self.registry_error is not None:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.registry_error_since))
            reason = (
                f"cannot follow the registry alias {registry.CHAMPION_ALIAS!r} at {self.tracking_uri} since {since} "
                f"({self.registry_error}); serving the loaded version {self.current.version}"
            )
            return "degraded", reason
        return "ready", None

    def refresh(self, force: bool = False) -> bool:
        """Load the champion if the alias moved; True when a new version was swapped in."""
        with self._lock:  # one load at a time; readers never wait on it
            self.checked_at = time.time()
            try:
                version = registry.champion(self.client)
            except Exception as exc:  # the registry is unreachable (or failing): readiness says so
                if self.registry_error is None:
                    self.registry_error_since = self.checked_at
                self.registry_error = _one_line(f"{type(exc).__name__}: {exc}")[:300]
                raise
            self.registry_error = self.registry_error_since = None
            if version is None:
                return False
            number = str(version.version)
            if self.current is not None and self.current.version == number:
                return False
            if number == self.rejected_version and not force:
                return False
            try:
                candidate = load(self.tracking_uri, self.client, version)
                verify(candidate)
            except Exception as exc:  # keep serving the old model; say why in logs, /model and /metrics
                self.last_error = f"version {number} rejected: {type(exc).__name__}: {exc}"[:1000]
                self.rejected_version = number
                self.load_failures += 1
                metrics.MODEL_LOAD_FAILURES.inc()
                kept = f"version {self.current.version}" if self.current else "no model"
                reason = _one_line(f"{type(exc).__name__}: {exc}")[:500]
                log.error("rejected champion version %s (%s); still serving %s", number, reason, kept)
                return False
            previous = self.current
            self.current, self.loaded_at = candidate, time.time()
            self.last_error = self.rejected_version = None
            metrics.model_swapped(candidate.version, candidate.runtime)
            if previous is None:
                log.info("loaded champion version %s (%s)", candidate.version, candidate.runtime)
            else:
                log.info(
                    "swapped champion version %s -> %s (%s)", previous.version, candidate.version, candidate.runtime
                )
            return True


def _one_line(text: str) -> str:
    return " ".join(text.split())
