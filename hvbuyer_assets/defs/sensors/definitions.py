"""The automation domain: the sensors that turn a raw drop into a run and monitoring facts into a retrain."""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from hvbuyer_assets.defs.sensors.raw import raw_drop_sensor
from hvbuyer_assets.defs.sensors.retraining import (
    RetrainingPolicyResource,
    retraining_after_pipeline_run,
    retraining_sensor,
)
from hvbuyer_assets.settings import Settings

SENSORS = [raw_drop_sensor, retraining_sensor, retraining_after_pipeline_run]


def build_defs(settings: Settings) -> dg.Definitions:
    """The three sensors, ``retraining_policy`` (the ``HVBUYER_RETRAIN_*`` knobs) and ``s3`` (the raw sensor's listing
    of an ``s3://`` raw location)."""
    return dg.Definitions(
        sensors=SENSORS,
        resources={
            "retraining_policy": RetrainingPolicyResource.from_settings(settings),
            "s3": S3Resource(endpoint_url=settings.s3_endpoint_url),
        },
    )
