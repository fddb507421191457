"""Resources shared by every domain: layered storage IO manager, raw storage, MLflow, problem config."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import joblib
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource
from dagster_mlflow.resources import CONFIG_SCHEMA as MLFLOW_CONFIG_SCHEMA
from dagster_mlflow.resources import MlFlow
from mlflow import MlflowClient
from upath import UPath

from hvbuyer_assets import registry
from hvbuyer_assets.core import drops
from hvbuyer_assets.memory import release_memory
from hvbuyer_assets.settings import Settings, load_settings

LAYER_KEY = "hvbuyer/layer"


def layer(name: str) -> dict[str, str]:
    """Asset metadata that tells the IO manager which data layer (folder) an asset lives in."""
    return {LAYER_KEY: name}


def png_metadata(title: str, png: bytes) -> dg.MetadataValue:
    """A PNG plot as output metadata the Dagster UI renders (markdown image with a data URI)."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def storage_options(uri: str, endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for a URI: the S3 endpoint override (loopback test servers, MinIO...)."""
    if uri.startswith("s3://") and endpoint_url:
        return {"client_kwargs": {"endpoint_url": endpoint_url}}
    return {}


def _string_types(arrow_type: pa.DataType) -> pd.StringDtype | None:
    # Strings come back as string[pyarrow]: a 20M-row id column as Python objects would cost ~1 GB more.
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


class LayeredStorageIOManager(dg.ConfigurableIOManager):
    """Stores each asset as ``<base_uri>/<layer>/<asset>.<ext>`` on a UPath (a local folder or s3://).

    DataFrames are parquet, dicts/lists JSON, anything else (fitted models) joblib. Local writes go to a
    temporary file that is renamed into place, so a crash never leaves a half-written asset behind.
    """

    base_uri: str
    s3_endpoint_url: str | None = None

    def _root(self) -> UPath:
        return UPath(self.base_uri, **storage_options(self.base_uri, self.s3_endpoint_url))

    def _stem(self, key: dg.AssetKey, metadata: dict[str, Any] | None) -> UPath:
        folder = (metadata or {}).get(LAYER_KEY, "interim")
        return self._root() / folder / key.path[-1]

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        stem = self._stem(context.asset_key, context.definition_metadata)
        stem.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pd.DataFrame):
            path = stem.with_suffix(".parquet")
            write_parquet(path, obj, self.s3_endpoint_url, preserve_index=_keeps_index(obj))
            context.add_output_metadata({"rows": len(obj), "path": dg.MetadataValue.path(str(path))})
        elif isinstance(obj, dict | list):
            path = stem.with_suffix(".json")
            write_json(path, obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
        else:
            path = stem.with_suffix(".joblib")
            sink = io.BytesIO()
            joblib.dump(obj, sink)
            _atomic_write(path, lambda target: _write_bytes(path, target, sink.getvalue()))
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
        release_memory()

    def load_input(self, context: dg.InputContext) -> Any:
        release_memory()  # the previous step's frames are garbage by now
        upstream = context.upstream_output
        stem = self._stem(context.asset_key, upstream.definition_metadata if upstream else None)
        for suffix in (".parquet", ".json", ".joblib"):
            path = stem.with_suffix(suffix)
            if path.exists():
                return read_stored(path, self.s3_endpoint_url)
        raise FileNotFoundError(f"asset {context.asset_key.to_user_string()} has no stored value under {stem}")


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def arrow_location(path: UPath, endpoint_url: str | None = None) -> tuple[pafs.FileSystem | None, str]:
    """Where pyarrow itself reads or writes ``path``: a plain local path (filesystem None) or a native Arrow
    filesystem. Never a Python file object: Arrow worker threads that release one while the interpreter
    shuts down abort the process ("terminate called without an active exception", apache/arrow#34314)."""
    if _is_local(path):
        return None, path.path
    if path.protocol in ("s3", "s3a"):
        return pafs.S3FileSystem(endpoint_override=endpoint_url), path.path
    return pafs.PyFileSystem(pafs.FSSpecHandler(path.fs)), path.path


def read_stored(path: UPath, endpoint_url: str | None = None) -> Any:
    """Read a value written by :class:`LayeredStorageIOManager` (format from the suffix)."""
    if path.suffix == ".parquet":
        fs, where = arrow_location(path, endpoint_url)
        return pq.read_table(where, filesystem=fs).to_pandas(types_mapper=_string_types)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with path.open("rb") as handle:
        return joblib.load(handle)


def _keeps_index(frame: pd.DataFrame) -> bool:
    return not isinstance(frame.index, pd.RangeIndex)


def _write_bytes(path: UPath, target: str, payload: bytes) -> None:
    if _is_local(path):
        with open(target, "wb") as sink:
            sink.write(payload)
    else:
        path.write_bytes(payload)


def write_parquet(path: UPath, frame: pd.DataFrame, endpoint_url: str | None, preserve_index: bool) -> None:
    """Write a DataFrame as parquet atomically, through a native Arrow location (see :func:`arrow_location`)."""
    table = pa.Table.from_pandas(frame, preserve_index=preserve_index)
    fs, _ = arrow_location(path, endpoint_url)
    _atomic_write(path, lambda target: pq.write_table(table, target, filesystem=fs))


def write_json(path: UPath, value: dict[str, Any] | list[Any]) -> None:
    """Write a JSON document atomically (indented; non-JSON values such as timestamps as strings)."""
    payload = json.dumps(value, indent=2, default=str).encode()
    _atomic_write(path, lambda target: _write_bytes(path, target, payload))


def _atomic_write(path: UPath, write: Callable[[str], object]) -> None:
    """Call ``write(target)``: locally ``target`` is a temporary file renamed into place afterwards, so readers
    never see a half-written asset; object stores replace a key atomically when the upload completes."""
    if not _is_local(path):
        write(path.path)
        return
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp.path)
        os.replace(tmp.path, path.path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class RawFileInfo:
    """One file in the raw location, as the pipeline and sensors see it."""

    name: str
    uri: str
    size: int
    modified: pd.Timestamp
    version: str = ""  # core.drops: size-mtime_ns locally, etag-LastModified on S3 (what sensors compare)


def _raw_version(path: UPath, stat: Any) -> str:
    if _is_local(path):
        return drops.local_version(stat.st_size, stat.st_mtime_ns)
    info = stat.as_info()
    if info.get("ETag") and info.get("LastModified"):
        return drops.s3_version(str(info["ETag"]), info["LastModified"])
    return drops.local_version(stat.st_size, int(stat.st_mtime * 1e9))


class RawStorageResource(dg.ConfigurableResource):
    """The raw drop location (``HVBUYER_RAW_URI``): a local folder or ``s3://bucket/prefix``. Read-only."""

    uri: str
    s3_endpoint_url: str | None = None

    def root(self) -> UPath:
        """The raw location as a UPath."""
        return UPath(self.uri, **storage_options(self.uri, self.s3_endpoint_url))

    def list_files(self, patterns: tuple[str, ...]) -> list[RawFileInfo]:
        """Files matching any glob pattern, oldest arrival first (ties by name)."""
        root = self.root()
        if not _is_local(root):
            root.fs.invalidate_cache()  # fsspec caches listings per process: a new drop must be seen
        if not root.exists():
            return []
        found: dict[str, RawFileInfo] = {}
        for pattern in patterns:
            for path in root.glob(pattern):
                if path.name.startswith(".") or not path.is_file():
                    continue
                stat = path.stat()
                modified = pd.Timestamp(stat.st_mtime, unit="s", tz="UTC")
                found[str(path)] = RawFileInfo(
                    path.name, str(path), int(stat.st_size), modified, _raw_version(path, stat)
                )
        return sorted(found.values(), key=lambda f: (f.modified, f.name))

    @contextlib.contextmanager
    def open(self, uri: str) -> Iterator[Any]:
        """One raw file for binary reading: a local path (pyarrow's fast multi-threaded path) or an open
        object-store file, closed on exit."""
        path = UPath(uri, **storage_options(uri, self.s3_endpoint_url))
        if _is_local(path):
            yield path.path
            return
        with path.open("rb") as handle:
            yield handle


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow model registry (``MLFLOW_TRACKING_URI``): resolve, load and promote versions of ``hvbuyer``."""

    tracking_uri: str

    def client(self) -> MlflowClient:
        """An MLflow client bound to this registry."""
        return registry.client(self.tracking_uri)

    def load(self, version: str) -> Any:
        """Load one registered version as a fitted sklearn pipeline."""
        return registry.load_version(self.tracking_uri, version)


class PredictionProblem(dg.ConfigurableResource):
    """The prediction problem: horizon H and the large-purchase threshold (see CONTRACT.md)."""

    horizon_days: int = 90
    large_purchase_threshold: float = 300.0
    train_snapshots: int = 1
    snapshot_step_days: int = 30


def mlflow_tracking_resource(settings: Settings) -> dg.ResourceDefinition:
    """dagster-mlflow's ``mlflow_tracking`` (one MLflow run per Dagster run), configured for hvbuyer.

    It first makes sure the experiment exists with its artifacts under ``HVBUYER_DATA_DIR/mlartifacts``.
    """

    def _tracking(init_context: dg.InitResourceContext) -> MlFlow:
        registry.ensure_experiment(settings.mlflow_tracking_uri, f"{settings.data_dir}/mlartifacts")
        return MlFlow(init_context)

    definition = dg.ResourceDefinition(resource_fn=_tracking, config_schema=MLFLOW_CONFIG_SCHEMA)
    return definition.configured(
        {"experiment_name": registry.EXPERIMENT_NAME, "mlflow_tracking_uri": settings.mlflow_tracking_uri}
    )


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    """Resources for the current environment (embedded default: local files, SQLite MLflow)."""
    from hvbuyer_assets.defs.monitoring.storage import MonitoringStore  # imports this module
    from hvbuyer_assets.defs.sensors.retraining import RetrainingPolicyResource

    settings = settings or load_settings()
    return {
        "monitoring_store": MonitoringStore(
            base_uri=settings.layer_uri("monitoring"), s3_endpoint_url=settings.s3_endpoint_url
        ),
        "retraining_policy": RetrainingPolicyResource.from_env(),
        "io_manager": LayeredStorageIOManager(base_uri=settings.data_dir, s3_endpoint_url=settings.s3_endpoint_url),
        "raw_storage": RawStorageResource(uri=settings.raw_uri, s3_endpoint_url=settings.s3_endpoint_url),
        "s3": S3Resource(endpoint_url=settings.s3_endpoint_url),  # raw_drop_sensor's listing of s3:// raw
        "problem": PredictionProblem(),
        "model_registry": ModelRegistryResource(tracking_uri=settings.mlflow_tracking_uri),
        "mlflow": mlflow_tracking_resource(settings),
    }
