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
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
from hvbuyer_assets.settings import Settings
from hvbuyer_assets.storage import read_stored

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

    def materialize(
        self, run_config: dict[str, Any] | None = None, selection: str | list[str] | None = None
    ) -> dg.ExecuteInProcessResult:
        """Materialize every asset (and check) once, as ``dagster asset materialize --select '*'`` does, or the
        assets of a selection string (e.g. ``"*champion_model"``: the champion and everything upstream)."""
        try:
            return dg.materialize(
                ALL_ASSETS,
                resources=build_resources(self.settings),
                run_config=run_config,
                selection=selection,
                raise_on_error=False,
            )
        finally:
            mlflow.end_run()  # materialize() attaches no dagster-mlflow hook

    def copy_to(self, dest: Path) -> Workspace:
        """A copy of this workspace (data, registry) that a test may break without affecting others."""
        shutil.copytree(self.root, dest)
        return Workspace(dest)


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
    open, and fail naming the step errors unless it succeeded."""
    try:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, run_config=run_config, tags=tags, raise_on_error=False
        )
    finally:
        mlflow.end_run()
    failures = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert result.success, f"{job} failed: {failures}"
    return result
