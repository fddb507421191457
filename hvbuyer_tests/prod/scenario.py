"""What the prod tests' session goes through: the drops after the first one and what became of them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hvbuyer_assets import datagen
from hvbuyer_tests.pipeline import SAMPLE_CUSTOMERS, SAMPLE_SEED
from hvbuyer_tests.prod.deployment import Deployment, Outcome

RAW_SENSOR = "raw_drop_sensor"
# The embedded loop test's later drop: the same customers 148 days on, with behaviour drift.
DRIFT_DROP = {"drift": "behaviour", "drop": "q4drift", "as_of": "2026-11-25", "days": 148}


@dataclass
class DropCalendar:
    """Later drops of the sample's customers, each holding the ``days`` after the previous one (whatever the test
    order). A drop holds no transaction after the moment it lands: each is cleaned alone (a drop partition), and
    rows timestamped after their arrival are quarantined, so a drop dated after the clock would be refused by
    the blocking quarantine-share check. Hence short drops: the drifted drop ends a few days before the clock."""

    last: pd.Timestamp

    def write(self, folder: Path, name: str, days: int = 2) -> str:
        self.last = self.last + pd.Timedelta(days=days)
        now = pd.Timestamp.now(tz="UTC").tz_localize(None)
        assert self.last <= now, f"drop {name} would end on {self.last:%Y-%m-%d}, after the clock ({now:%Y-%m-%d})"
        as_of = self.last.strftime("%Y-%m-%d")
        datagen.write_drop(folder, SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, drop=name, as_of=as_of, days=days)
        return as_of


@dataclass(frozen=True)
class Drifted:
    """The drifted drop's ingest_drop run and the retrain run the retraining sensor started for it."""

    ingest: Outcome
    drift_report: dict[str, Any]  # as the ingest run left it (the retrain run writes it again)
    retrain: Outcome


def s3_filesystem(prod: Deployment) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=prod.env["AWS_ENDPOINT_URL_S3"],
        access_key=prod.env["AWS_ACCESS_KEY_ID"],
        secret_key=prod.env["AWS_SECRET_ACCESS_KEY"],
        region=prod.env["AWS_DEFAULT_REGION"],
    )


def data_path(prod: Deployment, relative: str) -> str:
    """``<layer>/<asset>.<ext>`` under the deployment's ``HVBUYER_DATA_DIR``, as a path for the S3 filesystem."""
    return f"{prod.env['HVBUYER_DATA_DIR'].removeprefix('s3://')}/{relative}"


def read_table(prod: Deployment, relative: str) -> pd.DataFrame:
    return pq.read_table(data_path(prod, relative), filesystem=s3_filesystem(prod)).to_pandas()


def read_json(prod: Deployment, relative: str) -> dict[str, Any]:
    with s3_filesystem(prod).open_input_stream(data_path(prod, relative)) as stream:
        return json.loads(stream.read())
