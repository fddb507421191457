"""Service configuration from the environment (the same variables as the pipeline, see CONTRACT.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hvbuyer_assets.settings import load_settings


@dataclass(frozen=True)
class ServingSettings:
    """Where the registry is and how often the service re-resolves the ``champion`` alias."""

    mlflow_tracking_uri: str
    poll_seconds: float


def load_serving_settings() -> ServingSettings:
    """Read ``MLFLOW_TRACKING_URI`` (default under ``HVBUYER_DATA_DIR``) and ``HVBUYER_POLL_SECONDS`` (5)."""
    raw_poll = os.environ.get("HVBUYER_POLL_SECONDS", "5")
    try:
        poll = float(raw_poll)
    except ValueError as exc:
        raise ValueError(f"HVBUYER_POLL_SECONDS must be a number of seconds, got {raw_poll!r}") from exc
    if poll <= 0:
        raise ValueError(f"HVBUYER_POLL_SECONDS must be > 0, got {poll}")
    return ServingSettings(mlflow_tracking_uri=load_settings().mlflow_tracking_uri, poll_seconds=poll)
