"""Online lookup of a customer's latest batch score and features (the scoring and features assets' parquet).

Read with pyarrow's native readers (no Python file objects, apache/arrow#34314) and re-read when a file
changes (checked at most once a second).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hvbuyer_assets.core import features

SCORES = "scores/customer_scores.parquet"
FEATURES = "features/customer_features.parquet"


@dataclass(frozen=True)
class _Snapshot:
    stamp: tuple[Any, ...]
    scores: pa.Table
    score_rows: dict[str, int]
    features: pa.Table | None
    feature_rows: dict[str, int]


def _filesystem(data_dir: str, endpoint_url: str | None) -> tuple[pafs.FileSystem, str]:
    if data_dir.startswith(("s3://", "s3a://")):
        return pafs.S3FileSystem(endpoint_override=endpoint_url), data_dir.split("://", 1)[1]
    return pafs.LocalFileSystem(), data_dir


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else value


class CustomerScores:
    """``lookup(customer_id)``: the latest score row joined with the customer's features, or None."""

    def __init__(self, data_dir: str, endpoint_url: str | None = None) -> None:
        self.fs, root = _filesystem(data_dir, endpoint_url)
        self.scores_path, self.features_path = f"{root}/{SCORES}", f"{root}/{FEATURES}"
        self._snapshot: _Snapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def _stamp(self) -> tuple[Any, ...]:
        infos = self.fs.get_file_info([self.scores_path, self.features_path])
        return tuple((i.type, i.mtime_ns, i.size) for i in infos)

    def _current(self) -> _Snapshot:
        with self._lock:
            now = time.monotonic()
            if self._snapshot is not None and now - self._checked < 1.0:
                return self._snapshot
            self._checked = now
            stamp = self._stamp()
            if self._snapshot is None or stamp != self._snapshot.stamp:
                if stamp[0][0] != pafs.FileType.File:
                    raise LookupError("no customer scores yet: run the scoring assets first")
                self._snapshot = self._read(stamp)
            return self._snapshot

    def _read(self, stamp: tuple[Any, ...]) -> _Snapshot:
        scores = pq.read_table(self.scores_path, filesystem=self.fs)
        score_rows = {cid: i for i, cid in enumerate(scores.column("customer_id").to_pylist())}
        feats, feature_rows = None, {}
        if stamp[1][0] == pafs.FileType.File:
            feats = pq.read_table(self.features_path, filesystem=self.fs)
            if "customer_id" in feats.column_names:
                feature_rows = {cid: i for i, cid in enumerate(feats.column("customer_id").to_pylist())}
        return _Snapshot(stamp, scores, score_rows, feats, feature_rows)

    def lookup(self, customer_id: str) -> dict[str, Any] | None:
        """Score, model version, scored_at and feature values of one customer; LookupError before any scores."""
        snap = self._current()
        row = snap.score_rows.get(customer_id)
        if row is None:
            return None
        out = {k: _plain(v) for k, v in snap.scores.slice(row, 1).to_pylist()[0].items()}
        out["model_version"] = None if out.get("model_version") is None else str(out["model_version"])
        values: dict[str, Any] = {}
        feature_row = snap.feature_rows.get(customer_id)
        if snap.features is not None and feature_row is not None:
            record = snap.features.slice(feature_row, 1).to_pylist()[0]
            values = {name: _plain(record.get(name)) for name in features.FEATURE_COLUMNS}
            out["feature_as_of"] = _plain(record.get("feature_as_of"))
        out["features"] = values
        return out
