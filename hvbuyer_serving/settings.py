"""The service's configuration: the project's one settings model (``hvbuyer_assets.settings``), and the batch limit.

The service reads ``mlflow_tracking_uri``, ``data_dir``, ``s3_endpoint_url``, ``poll_seconds``
(``HVBUYER_POLL_SECONDS``, 5), ``admin_token`` (``HVBUYER_ADMIN_TOKEN``; unset: ``/admin/reload`` disabled),
``max_body_bytes`` (``HVBUYER_MAX_BODY_BYTES``, 8 MiB) and ``api_host`` / ``api_port``.
"""

from __future__ import annotations

from hvbuyer_assets.settings import Settings, load_settings, quiet_mlflow_progress_bars

MAX_BATCH_ROWS = 10_000
ServingSettings = Settings

quiet_mlflow_progress_bars()  # no progress bars in the service log


def load_serving_settings() -> Settings:
    """The settings from the environment (ValueError naming a bad variable)."""
    return load_settings()
