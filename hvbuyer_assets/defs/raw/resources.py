"""The raw drop location (``HVBUYER_RAW_URI``) as a read-only resource: listing with versions, opening files; and
how drops are ingested (``IngestResource``)."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from hvbuyer_assets.core import drops
from hvbuyer_assets.core.checks import QUARANTINE_MIN_ROWS
from hvbuyer_assets.core.contract import CHUNK_BYTES, ContractViolation
from hvbuyer_assets.storage import is_local, location


@dataclass(frozen=True)
class RawFileInfo:
    """One file in the raw location, as the pipeline and sensors see it."""

    name: str
    uri: str
    size: int
    modified: pd.Timestamp  # arrival (core.drops): mtime locally; metadata arrived-at, else LastModified, on S3
    version: str = ""  # core.drops: size-mtime_ns locally, etag-LastModified on S3 (what sensors compare)
    problem: str = ""  # why the file cannot be read (an unreadable declared arrival); empty when fine


@functools.lru_cache(maxsize=65_536)
def _declared(fs: Any, key: str, version: str) -> Any:
    """An S3 object's ``arrived-at`` metadata (one HEAD request). Cached per object version: S3 metadata changes
    only with a new write (a new ETag/LastModified), so a sensor tick re-listing known objects sends no HEAD."""
    return fs.metadata(key).get(drops.ARRIVAL_KEY)


def _arrival(path: UPath, stat: Any, version: str) -> tuple[pd.Timestamp, str]:
    """(arrival, problem): the local mtime, or an S3 object's declared ``arrived-at`` and else its LastModified
    (``core.drops``)."""
    stored = pd.Timestamp(stat.st_mtime, unit="s", tz="UTC")
    if is_local(path) or not hasattr(path.fs, "metadata"):  # s3fs: user metadata of the object
        return stored, ""
    declared = _declared(path.fs, path.path, version)
    if declared is None:
        return stored, ""
    try:
        return pd.Timestamp(drops.declared_arrival(str(declared))), ""
    except ValueError as exc:
        return stored, str(exc)


def _raw_version(path: UPath, stat: Any) -> str:
    if is_local(path):
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
        return location(self.uri, self.s3_endpoint_url)

    def list_files(self, patterns: tuple[str, ...]) -> list[RawFileInfo]:
        """Files matching any glob pattern, oldest arrival first (ties by name)."""
        root = self.root()
        if not is_local(root):
            root.fs.invalidate_cache()  # fsspec caches listings per process: a new drop must be seen
        if not root.exists():
            return []
        found: dict[str, RawFileInfo] = {}
        for pattern in patterns:
            for path in root.glob(pattern):
                if path.name.startswith(".") or not path.is_file():
                    continue
                stat = path.stat()
                version = _raw_version(path, stat)
                arrived, problem = _arrival(path, stat, version)
                found[str(path)] = RawFileInfo(path.name, str(path), int(stat.st_size), arrived, version, problem)
        return sorted(found.values(), key=lambda f: (f.modified, f.name))

    @contextlib.contextmanager
    def open(self, uri: str) -> Iterator[Any]:
        """One raw file for binary reading: a local path (pyarrow's fast multi-threaded path) or an open
        object-store file, closed on exit."""
        path = location(uri, self.s3_endpoint_url)
        if is_local(path):
            real, root = os.path.realpath(path.path), os.path.realpath(self.root().path)
            if os.path.commonpath([real, root]) != root:  # a symlink out of the raw folder is not a drop
                raise ContractViolation(
                    path.name, f"is a symbolic link to {real}, outside the raw location {root}: not read"
                )
            yield path.path
            return
        with path.open("rb") as handle:
            yield handle


class IngestResource(dg.ConfigurableResource):
    """How drops are read and accepted (``Settings``): ``chunk_bytes`` (``HVBUYER_RAW_CHUNK_BYTES``), the raw text
    parsed and cleaned at a time; ``quarantine_min_rows`` (``HVBUYER_QUARANTINE_MIN_ROWS``), the quarantine share
    rule's minimum sample (``core.checks.quarantine_share``)."""

    chunk_bytes: int = CHUNK_BYTES
    quarantine_min_rows: int = QUARANTINE_MIN_ROWS
