"""Helpers for tests that run the real asset graph on a throwaway data dir (no Dagster state is shared)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import pandas as pd
from upath import UPath

from hvbuyer_assets import datagen, registry
from hvbuyer_assets.core import drops
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
from hvbuyer_assets.defs.partitions import DROPS, drop_order
from hvbuyer_assets.defs.sensors.raw import add_complete_drops
from hvbuyer_assets.settings import Settings
from hvbuyer_assets.storage import read_stored
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_assets.storage.files import arrow_to_pandas

SAMPLE_CUSTOMERS = 3000
SAMPLE_SEED = 11


@dataclass(frozen=True)
class Workspace:
    """A data dir with its own raw folder and SQLite MLflow registry."""

    root: Path

    @property
    def settings(self) -> Settings:
        return Settings(
            data_dir=str(self.root),
            raw_uri=str(self.root / "raw"),
            mlflow_tracking_uri=f"sqlite:///{self.root}/mlflow.db",
            s3_endpoint_url=None,
        )

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    def client(self) -> mlflow.MlflowClient:
        return registry.client(self.settings.mlflow_tracking_uri)

    def champion_version(self) -> str | None:
        version = registry.champion(self.client())
        return None if version is None else str(version.version)

    def instance(self) -> dg.DagsterInstance:
        """The workspace's own Dagster instance (SQLite under ``<root>/.dagster``): its drop partitions and
        materializations persist from one ``materialize`` to the next (and into a ``copy_to``)."""
        home = self.root / ".dagster"
        home.mkdir(parents=True, exist_ok=True)
        return dg.DagsterInstance.local_temp(str(home))

    def register_drops(self, instance: dg.DagsterInstance) -> list[str]:
        """Add every complete drop of the raw folder as a partition (arrival order, as the raw sensor does);
        every drop partition key, in order."""
        files = {p.name: "" for p in self.raw.iterdir() if p.is_file()} if self.raw.exists() else {}
        arrivals = {name: (self.raw / name).stat().st_mtime for name in files}
        ready = drops.plan(files, files, {}, arrivals).ready
        known = drop_order(instance)
        added = [key for key in (drops.label(d.name) for d in ready) if key not in known]
        if added:
            instance.add_dynamic_partitions(DROPS.name, added)
        return drop_order(instance)

    def materialize(
        self,
        run_config: dict[str, Any] | None = None,
        selection: str | list[str] | None = None,
        partition: str | None = None,
        resources: dict[str, Any] | None = None,
    ) -> dg.ExecuteInProcessResult:
        """Materialize every asset (and check) once, as ``dagster asset materialize --select '*'`` does, or the
        assets of a selection string (e.g. ``"*champion_model"``: the champion and everything upstream), for the
        drop ``partition`` (default: the last drop to arrive). Earlier drops never cleaned are cleaned first, each
        alone, as the raw sensor's runs would have. ``resources`` replace the workspace's own."""
        instance = self.instance()
        try:
            keys = self.register_drops(instance)
            target = partition or (keys[-1] if keys else None)
            for key in keys[: keys.index(target)] if target in keys else []:
                if not (self.root / "processed" / "clean_transactions" / f"{key}.parquet").exists():
                    self._run(instance, None, PER_DROP_ASSETS, key, resources)
            return self._run(instance, run_config, selection, target, resources)
        finally:
            instance.dispose()

    def stored(self, layer: str, asset: str) -> pd.DataFrame:
        """A per-drop asset as its unpartitioned consumers see it: every stored drop in drop order (for
        clean_customers, the latest record of a customer wins)."""
        instance = self.instance()
        try:
            keys = drop_order(instance)
        finally:
            instance.dispose()
        stored = entry(asset)
        assert stored.layer == layer, f"{asset} is stored in {stored.layer}, not {layer}"
        return arrow_to_pandas(stored.read_drops(stored.drop_files(str(self.root), keys)))

    def _run(
        self,
        instance: dg.DagsterInstance,
        run_config: dict[str, Any] | None,
        selection: str | list[str] | None,
        partition: str | None,
        overrides: dict[str, Any] | None = None,
    ) -> dg.ExecuteInProcessResult:
        resources = {**build_resources(self.settings), **(overrides or {})}
        try:
            return dg.materialize(
                ALL_ASSETS,
                resources=resources,
                run_config=run_config,
                selection=selection,
                instance=instance,
                partition_key=partition if _partitioned(selection, resources) else None,
                raise_on_error=False,
            )
        finally:
            mlflow.end_run()  # materialize() attaches no dagster-mlflow hook

    def copy_to(self, dest: Path) -> Workspace:
        """A copy of this workspace (data, registry) that a test may break without affecting others."""
        shutil.copytree(self.root, dest)
        return Workspace(dest)


PER_DROP_ASSETS = sorted({k.to_user_string() for a in ALL_ASSETS if a.partitions_def is not None for k in a.keys})


def _partitioned(selection: str | list[str] | None, resources: dict[str, Any]) -> bool:
    """Whether a selection holds an asset partitioned by drop (then a run names its drop)."""
    graph = dg.Definitions(assets=ALL_ASSETS, resources=resources).resolve_asset_graph()
    chosen = dg.AssetSelection.all() if selection is None else dg.AssetSelection.from_coercible(selection)
    return any(graph.get(key).partitions_def is not None for key in chosen.resolve(graph))


def read_frame(path: Path) -> pd.DataFrame:
    """A stored parquet asset. Not ``pd.read_parquet(path)``: pandas 2 hands pyarrow a Python file object,
    and an Arrow worker releasing it during interpreter shutdown can abort the test process (apache/arrow#34314)."""
    return read_stored(UPath(str(path)))


def arrive(paths: Iterable[Path], as_of: str | pd.Timestamp) -> None:
    """Make files "arrive" one day after the data's as-of: their mtime, which the pipeline takes as the arrival of
    a local drop (rows stamped after it are set aside), no longer depends on when the test runs."""
    stamp = (pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)).timestamp()
    for path in paths:
        os.utime(path, (stamp, stamp))


def write_drop(
    raw: Path, as_of: str, customers: int = SAMPLE_CUSTOMERS, seed: int = SAMPLE_SEED, **kwargs: Any
) -> tuple[Path, Path]:
    """A generated drop (``datagen.write_drop``) that arrived a day after its as-of, whatever today's date."""
    paths = datagen.write_drop(raw, customers, seed=seed, as_of=as_of, **kwargs)
    arrive(paths, as_of)
    return paths


def write_sample(raw: Path, customers: int = SAMPLE_CUSTOMERS, seed: int = SAMPLE_SEED) -> None:
    """A deterministic generated drop (as of datagen's default as-of, arrived the day after)."""
    write_drop(raw, datagen.DEFAULT_AS_OF, customers, seed)


def digest(paths: list[Path]) -> dict[str, str]:
    """Content hashes of files, to prove something was (not) rewritten."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths)}


def outputs(root: Path) -> list[Path]:
    """The files that must survive a failed run unchanged: features, models, scores."""
    return [p for layer in ("features", "models", "scores") for p in (root / layer).glob("*") if p.is_file()]


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Every asset check evaluated in a run, by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def execute_job(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job: str,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run ``job`` of ``defs`` in ``instance`` (as the daemon would, with ``tags``), close any MLflow run it left
    open, and fail naming the step errors unless it succeeded. A job partitioned by drop runs for the partition
    in ``tags`` (``dagster/partition``), else for the latest drop of the raw location (every complete drop made a
    partition first, as the raw sensor does)."""
    job_def = defs.resolve_job_def(job)
    partition = (tags or {}).get("dagster/partition")
    if job_def.partitions_def is not None and not partition:
        partition = add_complete_drops(instance, (defs.resources or {})["raw_storage"])[-1]
    try:
        result = job_def.execute_in_process(
            instance=instance, run_config=run_config, tags=tags, partition_key=partition, raise_on_error=False
        )
    finally:
        mlflow.end_run()
    failures = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert result.success, f"{job} failed: {failures}"
    return result
