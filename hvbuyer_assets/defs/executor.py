"""Where the steps of a run execute (``HVBUYER_EXECUTOR``).

``in_process`` (default): one process per run. The graph is a chain of heavy pandas steps, so forking a process
per step would only add start-up time and a second copy of the data in memory.
``celery``: every step on a Celery worker (production mode, ``HVBUYER_CELERY_BROKER`` / ``HVBUYER_CELERY_BACKEND``);
dagster-celery is imported only then (the ``prod`` extra).
``k8s``: every step as its own Kubernetes Job (``dagster_k8s.k8s_job_executor``, configuration only, see
``deploy/k8s/``); image, namespace and service account come from the ``K8sRunLauncher`` of the instance.
dagster-k8s is not a dependency of the project: install ``dagster-k8s==0.29.27`` in that image.
"""

from __future__ import annotations

import importlib

import dagster as dg

from hvbuyer_assets.settings import Settings

# HVBUYER_EXECUTOR value -> (module, package that provides it).
PACKAGES = {"celery": ("dagster_celery", "dagster-celery"), "k8s": ("dagster_k8s", "dagster-k8s")}


def _import(choice: str) -> object:
    module, package = PACKAGES[choice]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeError(
            f"HVBUYER_EXECUTOR={choice} needs the {package} package ({exc}); install {package}==0.29.27 "
            "(the version matching dagster 1.13.27) in the environment that loads hvbuyer_assets.definitions"
        ) from exc


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """The executor the deployment's settings choose (the optional packages imported only when chosen)."""
    if settings.executor == "celery":
        celery = _import("celery")
        return celery.celery_executor.configured(  # type: ignore[attr-defined]
            {"broker": settings.celery_broker, "backend": settings.celery_backend}
        )
    if settings.executor == "k8s":
        return _import("k8s").k8s_job_executor  # type: ignore[attr-defined]
    return dg.in_process_executor
