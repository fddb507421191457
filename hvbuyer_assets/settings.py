"""The one place hvbuyer reads its environment: every variable of the pipeline and the service, typed.

Every variable is optional; the defaults give the embedded local set-up (``./data``, SQLite MLflow, in-process
runs). An empty value counts as unset. A bad value fails at start-up with the variable and the problem named.
No Dagster import here: the prediction service reads the same settings. Retraining defaults come from
``core.retraining.Policy``, so they are written once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from hvbuyer_assets.core.checks import QUARANTINE_MIN_ROWS
from hvbuyer_assets.core.retraining import Policy
from hvbuyer_assets.core.sampling import MIN_ROWS, TrainingSample

DATA_LAYERS = ("raw", "interim", "processed", "features", "models", "scores", "monitoring", "quarantine")
_POLICY = Policy()
# Spark master URLs hvbuyer accepts: local threads, a standalone cluster, Kubernetes, YARN (EMR).
SPARK_MASTER = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|spark://\S+|k8s://\S+|yarn")
SPARK_MEMORY = re.compile(r"\d+[kmgt]?", re.IGNORECASE)
ONLINE_STORE_FILE = "scores/online_store.db"  # the embedded online store, under the data dir
ONLINE_STORE_SCHEMES = ("sqlite:///", "redis://", "rediss://")


def _absolute(path: str) -> str:
    return path if "://" in path else str(Path(path).expanduser().resolve())


class Settings(BaseSettings):
    """Where hvbuyer keeps its data, reads raw drops and tracks models; how it runs and serves.

    Each field is read from the environment variable named by its alias; in code, fields are also set by
    name (``Settings(data_dir=...)``).
    """

    model_config = SettingsConfigDict(
        frozen=True,
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
        validate_default=True,
        extra="ignore",
    )

    # Storage and registry.
    data_dir: str = Field("./data", validation_alias="HVBUYER_DATA_DIR")
    raw_uri: str = Field("", validation_alias="HVBUYER_RAW_URI", description="unset: <data_dir>/raw")
    mlflow_tracking_uri: str = Field(
        "", validation_alias="MLFLOW_TRACKING_URI", description="unset: sqlite:///<data_dir>/mlflow.db"
    )
    s3_endpoint_url: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL_S3")
    mlflow_ui_url: str = Field(
        "http://127.0.0.1:5000", validation_alias="HVBUYER_MLFLOW_UI_URL", description="links to MLflow runs"
    )

    # Pipeline: sensors and the retraining policy.
    raw_sensor_seconds: int = Field(15, gt=0, validation_alias="HVBUYER_RAW_SENSOR_SECONDS")
    retrain_cooldown_hours: float = Field(
        _POLICY.cooldown_hours, ge=0, validation_alias="HVBUYER_RETRAIN_COOLDOWN_HOURS"
    )
    max_model_age_days: float = Field(_POLICY.max_model_age_days, ge=0, validation_alias="HVBUYER_MAX_MODEL_AGE_DAYS")
    min_new_data_days: float = Field(_POLICY.min_new_data_days, ge=0, validation_alias="HVBUYER_MIN_NEW_DATA_DAYS")

    # Ingest: how raw drops are read and accepted.
    raw_chunk_bytes: int = Field(
        64 << 20,  # core.contract.CHUNK_BYTES (the readers' default; test_settings holds them equal)
        ge=1024,
        validation_alias="HVBUYER_RAW_CHUNK_BYTES",
        description="raw text parsed and cleaned at a time",
    )
    quarantine_min_rows: int = Field(
        QUARANTINE_MIN_ROWS,
        ge=1,
        validation_alias="HVBUYER_QUARANTINE_MIN_ROWS",
        description="a smaller drop only warns on its quarantine share",
    )

    # Production mode: where the steps of a run execute.
    executor: Literal["in_process", "celery", "k8s"] = Field("in_process", validation_alias="HVBUYER_EXECUTOR")
    celery_broker: str = Field("amqp://guest:guest@127.0.0.1:5672//", validation_alias="HVBUYER_CELERY_BROKER")
    celery_backend: str = Field("redis://127.0.0.1:6379/0", validation_alias="HVBUYER_CELERY_BACKEND")

    # The engine the feature and training-set assets run on (hvbuyer_assets.engines, docs/engines.md).
    engine: Literal["embedded", "spark"] = Field("embedded", validation_alias="HVBUYER_ENGINE")
    spark_master: str = Field("local[2]", validation_alias="HVBUYER_SPARK_MASTER")
    spark_driver_memory: str = Field("2g", validation_alias="HVBUYER_SPARK_DRIVER_MEMORY")
    spark_executor_memory: str | None = Field(
        None, validation_alias="HVBUYER_SPARK_EXECUTOR_MEMORY", description="unset: Spark's default"
    )
    spark_shuffle_partitions: int | None = Field(
        None, gt=0, validation_alias="HVBUYER_SPARK_SHUFFLE_PARTITIONS", description="unset: 2 per local core"
    )
    spark_conf: dict[str, str] = Field(default_factory=dict, validation_alias="HVBUYER_SPARK_CONF")
    # The training set is sampled on the engine to at most this many rows (core.sampling; docs/configuration.md).
    max_training_rows: int = Field(3_000_000, ge=MIN_ROWS, validation_alias="HVBUYER_MAX_TRAINING_ROWS")
    training_sample_seed: int = Field(0, ge=0, validation_alias="HVBUYER_TRAINING_SAMPLE_SEED")

    # Prediction service.
    api_host: str = Field("127.0.0.1", validation_alias="HVBUYER_API_HOST")
    api_port: int = Field(8080, ge=1, le=65535, validation_alias="HVBUYER_API_PORT")
    api_url: str = Field("", validation_alias="HVBUYER_API_URL", description="unset: http://<api_host>:<api_port>")
    poll_seconds: float = Field(5.0, gt=0, validation_alias="HVBUYER_POLL_SECONDS")
    admin_token: str | None = Field(
        None, validation_alias="HVBUYER_ADMIN_TOKEN", repr=False, description="unset: /admin/reload disabled"
    )
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0, validation_alias="HVBUYER_MAX_BODY_BYTES")
    online_store: str = Field(
        "", validation_alias="HVBUYER_ONLINE_STORE", description=f"unset: sqlite:///<data_dir>/{ONLINE_STORE_FILE}"
    )
    api_workers: int = Field(1, ge=1, le=64, validation_alias="HVBUYER_API_WORKERS")

    # The other UIs `make run` starts beside the API (their loopback ports).
    dagster_port: int = Field(3000, ge=1, le=65535, validation_alias="HVBUYER_DAGSTER_PORT")
    mlflow_port: int = Field(5000, ge=1, le=65535, validation_alias="HVBUYER_MLFLOW_PORT")
    sample_customers: int = Field(
        20000, gt=0, validation_alias="HVBUYER_SAMPLE_CUSTOMERS", description="sample drop size"
    )

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: str) -> str:
        return _absolute(value)

    @field_validator("raw_uri")
    @classmethod
    def _raw_uri(cls, value: str, info: ValidationInfo) -> str:
        return _absolute(value) if value else f"{info.data['data_dir']}/raw"

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _mlflow_tracking_uri(cls, value: str, info: ValidationInfo) -> str:
        if value:
            return value
        data_dir = info.data["data_dir"]
        # SQLite cannot live on an object store: an s3:// data dir keeps the registry in the working directory.
        return (
            "sqlite:///" + str(Path("./mlflow.db").resolve())
            if "://" in data_dir
            else f"sqlite:///{data_dir}/mlflow.db"
        )

    @field_validator("online_store")
    @classmethod
    def _online_store(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            data_dir = info.data["data_dir"]
            # SQLite cannot live on an object store: an s3:// data dir keeps it in the working directory.
            folder = Path(".").resolve() if "://" in data_dir else Path(data_dir)
            return f"sqlite:///{folder / ONLINE_STORE_FILE}"
        if not value.startswith(ONLINE_STORE_SCHEMES):
            raise ValueError("expected sqlite:///PATH or redis://HOST:PORT/DB")
        return value

    @field_validator("spark_master")
    @classmethod
    def _spark_master(cls, value: str) -> str:
        if not SPARK_MASTER.fullmatch(value):
            raise ValueError("expected local, local[N], local[*], spark://HOST:PORT, k8s://https://HOST:PORT or yarn")
        return value

    @field_validator("spark_driver_memory", "spark_executor_memory")
    @classmethod
    def _spark_memory(cls, value: str | None) -> str | None:
        if value is not None and not SPARK_MEMORY.fullmatch(value):
            raise ValueError("expected a JVM memory size such as 512m, 2g or 16g")
        return value

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _spark_conf_json(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON object of Spark properties ({exc})") from None

    @field_validator("spark_conf")
    @classmethod
    def _spark_conf(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = sorted(key for key in value if not key.startswith("spark."))
        if wrong:
            raise ValueError(f"Spark properties start with 'spark.', got {', '.join(wrong)}")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str, info: ValidationInfo) -> str:
        if value or "api_port" not in info.data:  # a bad port is reported as such
            return value
        return f"http://{info.data['api_host']}:{info.data['api_port']}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the process environment; no dotenv or secrets files."""
        return init_settings, env_settings

    @property
    def raw_is_s3(self) -> bool:
        """True when raw drops land in S3 rather than a local folder."""
        return self.raw_uri.startswith("s3://")

    def layer_uri(self, layer: str) -> str:
        """URI of one data layer (``processed``, ``scores``...) under the data dir."""
        if layer not in DATA_LAYERS:
            raise ValueError(f"unknown data layer {layer!r}; expected one of {', '.join(DATA_LAYERS)}")
        return f"{self.data_dir.rstrip('/')}/{layer}"

    def training_sample(self) -> TrainingSample:
        """The training set's cap and its sampling seed (``core.sampling``)."""
        return TrainingSample(self.max_training_rows, self.training_sample_seed)

    def retraining_policy(self) -> Policy:
        """The retraining policy's knobs (validated by ``core.retraining.Policy``)."""
        return Policy(self.retrain_cooldown_hours, self.max_model_age_days, self.min_new_data_days)


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        parts.append(f"{name}={error['input']!r}: {error['msg']}")
    return "; ".join(parts)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from the process environment, or from ``environ`` alone when given.

    Raises ValueError naming each bad variable, its value and the problem.
    """
    try:
        if environ is None:
            return Settings()
        given = {name: value for name, value in environ.items() if value}
        return Settings(_build_sources=((InitSettingsSource(Settings, init_kwargs=given),), {}))
    except ValidationError as exc:
        raise ValueError(f"invalid configuration: {_problems(exc)}") from None


def child_environ(overrides: Mapping[str, str] | None = None, unset: Iterable[str] = ()) -> dict[str, str]:
    """The environment for a child process (a benchmark's Dagster or API process): this process's
    environment with ``overrides`` applied and the ``unset`` variables removed."""
    env = {**os.environ, **(overrides or {})}
    for name in unset:
        env.pop(name, None)
    return env


def quiet_mlflow_progress_bars() -> None:
    """Turn off MLflow's artifact download progress bars (a long-running service's log is no terminal),
    unless ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` is set explicitly."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
