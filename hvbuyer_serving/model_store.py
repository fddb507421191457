"""Follows the registry alias ``champion``: load, verify, then swap the served model atomically."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from hvbuyer_assets import registry
from hvbuyer_assets.core import features, model

log = logging.getLogger("hvbuyer.serving")

# A customer with nothing known: every served model must answer it with a probability in [0, 1].
PROBE = [{"age": 40.0, "region": "East", "loyalty_points": 500.0}]


@dataclass(frozen=True)
class LoadedModel:
    """A verified champion version ready to serve."""

    version: str
    pipeline: Any


class ChampionStore:
    """Holds the current champion; ``refresh()`` re-resolves the alias and swaps in a new version.

    The swap is one reference assignment: a request reads ``store.current`` once and finishes on that model
    even if a new one is swapped in meanwhile. A version that fails to load or verify is never served.
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Load the champion if it moved; True when a new version was swapped in."""
        with self._lock:  # one load at a time; readers never wait on it
            version = registry.champion(registry.client(self.tracking_uri))
            if version is None or (self.current and self.current.version == str(version.version)):
                return False
            try:
                candidate = LoadedModel(str(version.version), registry.load_version(self.tracking_uri, version.version))
                _verify(candidate)
            except Exception as exc:  # keep serving the old model; say why in logs and /health
                self.last_error = f"version {version.version} rejected: {exc}"
                log.error(self.last_error)
                return False
            self.current, self.last_error = candidate, None
            log.info("serving champion version %s", candidate.version)
            return True

    def predict(self, records: list[dict[str, Any]]) -> tuple[np.ndarray, str]:
        """Probabilities for API rows and the version that produced them."""
        loaded = self.current
        if loaded is None:
            raise LookupError("no champion model is loaded yet")
        return model.predict_proba(loaded.pipeline, features.serving_frame(records)), loaded.version


def _verify(candidate: LoadedModel) -> None:
    proba = model.predict_proba(candidate.pipeline, features.serving_frame(PROBE))
    if proba.shape != (1,) or not np.isfinite(proba).all() or not 0.0 <= float(proba[0]) <= 1.0:
        raise ValueError(f"probe prediction {proba!r} is not a probability")
