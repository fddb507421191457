"""The three ways the graph is run: a full build, a new raw drop (re-score with the champion), a retraining.

Sensors request these jobs; ``make run`` / ``dagster asset materialize --select '*'`` is the full build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

# A new drop: re-read raw storage, clean, the drop's customer state and the running tables, today's features,
# re-score every customer with the current champion and refresh monitoring (drift). No training: retraining is the
# retraining sensor's decision. Nor `drift_reference`: a version's reference is written when it is registered,
# which only `retrain` / `full_build` do; in an ingest run it would load the whole training set only to find the
# champion's reference there. `drift_report` still runs (its dependency on the reference is not a data input: it
# reads the stored file).
INGEST_SELECTION = (
    dg.AssetSelection.groups("raw", "processed", "scoring", "monitoring")
    | dg.AssetSelection.assets("customer_state", "customer_totals", "latest_customers", "customer_features")
) - dg.AssetSelection.assets("drift_reference")

# Retraining on the data already ingested: training set -> model -> evaluation -> registry/champion ->
# scores -> monitoring.
RETRAIN_SELECTION = dg.AssetSelection.assets("training_set") | dg.AssetSelection.groups(
    "model", "scoring", "monitoring"
)

# Every run's console shows INFO and above (the assets' own lines: promotion, drift verdict...), not Dagster's
# DEBUG step events: `make run`'s terminal stays readable; every event is still stored and shown in the UI.
# It is the jobs' default run config, which a run config given with a run (a sensor's RunRequest, the launchpad)
# replaces as a whole: the sensors therefore send `with_quiet_console(their config)`.
QUIET_CONSOLE: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def with_quiet_console(run_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``run_config`` plus the console level of ``QUIET_CONSOLE`` (a level ``run_config`` sets is kept)."""
    merged = dict(run_config or {})
    loggers = dict(merged.get("loggers") or {})
    loggers.setdefault("console", QUIET_CONSOLE["loggers"]["console"])
    merged["loggers"] = loggers
    return merged


full_build_job = dg.define_asset_job(
    "full_build",
    selection=dg.AssetSelection.all(),
    description="Every asset: raw drop to champion and scores.",
    config=QUIET_CONSOLE,
)
ingest_job = dg.define_asset_job(
    "ingest_drop",
    selection=INGEST_SELECTION,
    description="A new raw drop: clean, features as of the new T, scores with the current champion, monitoring "
    "(drift report against the champion's stored reference, score archive, realised performance).",
    config=QUIET_CONSOLE,
)
retrain_job = dg.define_asset_job(
    "retrain",
    selection=RETRAIN_SELECTION,
    description="Training set -> model -> evaluation -> promotion -> scores -> monitoring, on ingested data.",
    config=QUIET_CONSOLE,
)

JOBS = [full_build_job, ingest_job, retrain_job]

# Statuses of a run that is queued or going: no sensor requests work on top of one.
IN_FLIGHT_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.MANAGED,
)
