"""Where the steps of a run execute (``HVBUYER_EXECUTOR``).

``in_process`` (default): one process per run. The graph is a chain of heavy pandas steps, so forking a process
per step would only add start-up time and a second copy of the data in memory.
``celery``: every step on a Celery worker (production mode, ``HVBUYER_CELERY_BROKER`` / ``HVBUYER_CELERY_BACKEND``);
dagster-celery is imported only then (the ``prod`` extra).
"""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.settings import Settings


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """The executor the deployment's settings choose."""
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured({"broker": settings.celery_broker, "backend": settings.celery_backend})
    return dg.in_process_executor
