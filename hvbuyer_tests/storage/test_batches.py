"""Scoring reads the stored features in chunks: a stored frame read ``rows`` at a time is the frame (index, dtypes,
values), and features scored chunk by chunk are the features scored whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from upath import UPath

from hvbuyer_assets.core import model
from hvbuyer_assets.core.features import FEATURE_COLUMNS
from hvbuyer_assets.defs.io_manager import StoredFrame
from hvbuyer_assets.storage import read_stored, write_parquet


def features(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {name: rng.random(n) * 100 for name in FEATURE_COLUMNS if name != "region"},
        index=pd.Index(pd.array([f"C{i:05d}" for i in range(n)], dtype="string[pyarrow]"), name="customer_id"),
    )
    frame["region"] = pd.array(rng.choice(["East", "West", "Unknown"], n), dtype="string[pyarrow]")
    frame["feature_as_of"] = pd.Series(pd.Timestamp("2026-03-31", tz="UTC"), index=frame.index).dt.as_unit("ns")
    return frame


def test_a_stored_frame_read_in_chunks_is_the_frame(tmp_path: Path) -> None:
    path = UPath(tmp_path / "customer_features.parquet")
    whole = features(1_003)
    write_parquet(path, whole, None, preserve_index=True)
    stored = StoredFrame(path)
    chunks = list(stored.batches(100))
    assert [len(c) for c in chunks] == [100] * 10 + [3] and stored.rows() == 1_003
    pd.testing.assert_frame_equal(pd.concat(chunks), read_stored(path))
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)


def test_features_scored_in_chunks_are_the_features_scored_whole(tmp_path: Path) -> None:
    train = features(400, seed=1).assign(label=lambda f: (f["total_spend"] > 50).astype(int))
    fitted = model.train_model(train, model.ModelParams(n_estimators=10))
    path = UPath(tmp_path / "customer_features.parquet")
    write_parquet(path, features(1_003, seed=2), None, preserve_index=True)
    at = pd.Timestamp("2026-04-01", tz="UTC")
    whole = model.score_rows(fitted, read_stored(path), "3", at)
    chunks = StoredFrame(path).batches(97)
    chunked = pd.concat([model.score_rows(fitted, chunk, "3", at) for chunk in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(chunked, whole)
    assert whole.columns.tolist() == [
        "customer_id",
        "large_purchase_probability",
        "model_version",
        "scored_at",
        "features_as_of",
    ]
