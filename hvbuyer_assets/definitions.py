"""The one Definitions object of hvbuyer: every domain under ``defs/`` discovered and merged with the resources,
jobs and executor that this deployment's settings (``hvbuyer_assets.settings``) choose.

A domain is a package ``hvbuyer_assets/defs/<domain>/`` with a ``definitions.py`` whose
``build_defs(settings)`` returns the domain's ``dg.Definitions`` (assets with their checks, sensors, the
resources only it owns). Adding a domain is adding such a package; nothing here changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Any

import dagster as dg

import hvbuyer_assets.defs
from hvbuyer_assets.defs.executor import executor_for
from hvbuyer_assets.defs.io_manager import STORED_FRAMES, LayeredStorageIOManager, StoredFrameInputManager
from hvbuyer_assets.defs.jobs import JOBS
from hvbuyer_assets.defs.metadata import PLOTS, PlotStore
from hvbuyer_assets.defs.problem import PROBLEM, PredictionProblem
from hvbuyer_assets.memory import freeze_imports
from hvbuyer_assets.settings import Settings, load_settings


def domains() -> list[str]:
    """Names of the domain packages under ``hvbuyer_assets/defs/`` (those with a ``definitions`` module)."""
    package = hvbuyer_assets.defs
    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if info.ispkg and importlib.util.find_spec(f"{package.__name__}.{info.name}.definitions") is not None
    )


def shared_resources(settings: Settings) -> dict[str, Any]:
    """Resources every domain uses: the layered storage IO manager, the prediction problem and the plot store."""
    return {
        PLOTS: PlotStore(
            base_uri=settings.data_dir, api_url=settings.api_url, s3_endpoint_url=settings.s3_endpoint_url
        ),
        "io_manager": LayeredStorageIOManager(base_uri=settings.data_dir, s3_endpoint_url=settings.s3_endpoint_url),
        STORED_FRAMES: StoredFrameInputManager(base_uri=settings.data_dir, s3_endpoint_url=settings.s3_endpoint_url),
        PROBLEM: PredictionProblem(),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Every domain's definitions, the jobs, the shared resources and the executor for ``settings``
    (default: the environment's)."""
    settings = settings or load_settings()
    per_domain = [
        importlib.import_module(f"{hvbuyer_assets.defs.__name__}.{name}.definitions").build_defs(settings)
        for name in domains()
    ]
    shared = dg.Definitions(jobs=JOBS, resources=shared_resources(settings), executor=executor_for(settings))
    return dg.Definitions.merge(*per_domain, shared)


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    """Every resource of the deployment (shared and per domain), e.g. for ``dg.materialize`` in tests."""
    return dict(build_definitions(settings).resources or {})


defs = build_definitions()
ALL_ASSETS = list(defs.assets or [])
freeze_imports()  # a run's ~20 collections (defs.io_manager) skip the objects of the imports
