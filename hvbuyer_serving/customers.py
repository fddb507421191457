"""Online lookup of a customer's latest batch score and features (the scoring and features assets' parquet).

Read with pyarrow's native readers (no Python file objects, apache/arrow#34314) and re-read when a file
changes (checked at most once a second).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hvbuyer_assets.core import features
from hvbuyer_assets.storage import arrow_filesystem
from hvbuyer_assets.storage.catalog import entry

log = logging.getLogger(__name__)
# Where the scoring and features assets are stored, relative to the data dir (storage.catalog).
SCORES = entry("customer_scores").relative()
FEATURES = entry("customer_features").relative()


@dataclass(frozen=True)
class _Snapshot:
    stamp: tuple[Any, ...]
    scores: pa.Table
    score_rows: dict[str, int]
    features: pa.Table | None
    feature_rows: dict[str, int]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else value


class CustomerScores:
    """``lookup(customer_id)``: the latest score row joined with the customer's features, or None."""

    def __init__(self, data_dir: str, endpoint_url: str | None = None) -> None:
        self.fs, root = arrow_filesystem(data_dir, endpoint_url)
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
                self._snapshot = None  # never answer from the previous files once they changed
                self._snapshot = self._read(stamp)
            return self._snapshot

    def _read(self, stamp: tuple[Any, ...]) -> _Snapshot:
        scores = self._table(self.scores_path)
        score_rows = {cid: i for i, cid in enumerate(scores.column("customer_id").to_pylist())}
        feats, feature_rows = None, {}
        if stamp[1][0] == pafs.FileType.File:
            feats = self._table(self.features_path)
            if "customer_id" in feats.column_names:
                feature_rows = {cid: i for i, cid in enumerate(feats.column("customer_id").to_pylist())}
        return _Snapshot(stamp, scores, score_rows, feats, feature_rows)

    def _table(self, path: str) -> pa.Table:
        """One parquet file; LookupError naming it and the problem when it cannot be read (the API says 503,
        not 500, until the next scoring replaces it)."""
        name = SCORES if path == self.scores_path else FEATURES  # the data dir itself is not the client's business
        try:
            table = pq.read_table(path, filesystem=self.fs)
        except (OSError, pa.ArrowException, ValueError) as exc:
            log.error("cannot read %s: %s", path, exc)
            raise LookupError(f"{name} is unreadable ({type(exc).__name__}); the next scoring run replaces it") from exc
        if name == SCORES and "customer_id" not in table.column_names:
            raise LookupError(f"{name} has no customer_id column")
        return table

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
