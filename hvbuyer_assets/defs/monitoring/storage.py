"""Files the monitoring assets keep beside their own outputs: reference snapshots and the score archive.

Everything lives under ``HVBUYER_DATA_DIR/monitoring/`` (a local folder or s3://), written atomically and
never overwritten: a reference snapshot or an archived scoring is written once and then only read.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from hvbuyer_assets.storage import location, read_stored, write_json, write_parquet


def reference_paths(version: str) -> tuple[str, str]:
    """(snapshot parquet, sidecar JSON) of one registered version, relative to the monitoring layer."""
    return f"reference/v{version}.parquet", f"reference/v{version}.json"


def calibration_path(version: str) -> str:
    """Where a version's hold-out calibration (``core.estimation.Calibration``) is kept."""
    return f"calibration/v{version}.json"


class MonitoringStore(dg.ConfigurableResource):
    """Write-once parquet/JSON files under the monitoring layer (``<data>/monitoring``)."""

    base_uri: str
    s3_endpoint_url: str | None = None

    def path(self, relative: str) -> UPath:
        """The UPath of a file relative to the monitoring layer."""
        return location(self.base_uri, self.s3_endpoint_url) / relative

    def exists(self, relative: str) -> bool:
        """Is the file there?"""
        return self.path(relative).exists()

    def write_frame_once(self, relative: str, frame: pd.DataFrame) -> bool:
        """Write a parquet file unless it exists; True if written."""
        path = self.path(relative)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, frame, self.s3_endpoint_url, preserve_index=False)
        return True

    def write_json_once(self, relative: str, value: dict[str, Any]) -> bool:
        """Write a JSON file unless it exists; True if written."""
        path = self.path(relative)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, value)
        return True

    def read(self, relative: str) -> Any:
        """A stored parquet file (DataFrame) or JSON file (dict)."""
        return read_stored(self.path(relative), self.s3_endpoint_url)

    def stems(self, folder: str, suffix: str) -> list[str]:
        """Stems of the files with ``suffix`` in a folder, sorted; [] if the folder does not exist."""
        root = self.path(folder)
        if not root.exists():
            return []
        return sorted(p.name[: -len(suffix)] for p in root.iterdir() if p.name.endswith(suffix))
