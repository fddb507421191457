"""Environment variables -> typed settings (see CONTRACT.md, "Configuration").

Every variable is optional; defaults give the embedded local set-up. No Dagster import here: the serving
package reads the same settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_LAYERS = ("raw", "interim", "processed", "features", "models", "scores", "monitoring", "quarantine")


@dataclass(frozen=True)
class Settings:
    """Where hvbuyer keeps its data, reads raw drops and tracks models."""

    data_dir: str
    raw_uri: str
    mlflow_tracking_uri: str
    s3_endpoint_url: str | None
    raw_sensor_seconds: int = 15  # HVBUYER_RAW_SENSOR_SECONDS: minimum interval of raw_drop_sensor's ticks

    @property
    def raw_is_s3(self) -> bool:
        """True when raw drops land in S3 rather than a local folder."""
        return self.raw_uri.startswith("s3://")

    def layer_uri(self, layer: str) -> str:
        """URI of one data layer (``processed``, ``scores``...) under the data dir."""
        if layer not in DATA_LAYERS:
            raise ValueError(f"unknown data layer {layer!r}; expected one of {', '.join(DATA_LAYERS)}")
        return f"{self.data_dir.rstrip('/')}/{layer}"


def _absolute(path: str) -> str:
    return path if "://" in path else str(Path(path).expanduser().resolve())


def load_settings(environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
    """Read the HVBUYER_* / MLFLOW_* / AWS_* variables, applying the documented defaults."""
    env = os.environ if environ is None else environ
    data_dir = _absolute(env.get("HVBUYER_DATA_DIR") or "./data")
    raw_uri = _absolute(env.get("HVBUYER_RAW_URI") or f"{data_dir}/raw")
    if "://" in data_dir:
        default_mlflow = "sqlite:///" + str(Path("./mlflow.db").resolve())
    else:
        default_mlflow = f"sqlite:///{data_dir}/mlflow.db"
    return Settings(
        data_dir=data_dir,
        raw_uri=raw_uri,
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or default_mlflow,
        s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or None,
        raw_sensor_seconds=_positive_int(env, "HVBUYER_RAW_SENSOR_SECONDS", 15),
    )


def _positive_int(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value
