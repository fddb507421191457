"""Service configuration from the environment (the same variables as the pipeline, see CONTRACT.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hvbuyer_assets.settings import load_settings

MAX_BATCH_ROWS = 10_000
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in the service log


@dataclass(frozen=True)
class ServingSettings:
    """Where the registry and the scores are, how often the alias is re-resolved, and the request limits."""

    mlflow_tracking_uri: str
    data_dir: str
    s3_endpoint_url: str | None
    poll_seconds: float
    admin_token: str | None
    max_body_bytes: int


def _positive(name: str, default: str, kind: type) -> float | int:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a positive number, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def load_serving_settings() -> ServingSettings:
    """Read ``MLFLOW_TRACKING_URI`` / ``HVBUYER_DATA_DIR`` (pipeline defaults), ``HVBUYER_POLL_SECONDS`` (5),
    ``HVBUYER_ADMIN_TOKEN`` (unset: ``/admin/reload`` disabled) and ``HVBUYER_MAX_BODY_BYTES`` (8 MiB)."""
    base = load_settings()
    return ServingSettings(
        mlflow_tracking_uri=base.mlflow_tracking_uri,
        data_dir=base.data_dir,
        s3_endpoint_url=base.s3_endpoint_url,
        poll_seconds=float(_positive("HVBUYER_POLL_SECONDS", "5", float)),
        admin_token=os.environ.get("HVBUYER_ADMIN_TOKEN") or None,
        max_body_bytes=int(_positive("HVBUYER_MAX_BODY_BYTES", str(8 * 1024 * 1024), int)),
    )
