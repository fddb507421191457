"""What every part of the generator shares: the drift scenarios, the window defaults, argument checks and the
categorical draws (an RNG's draws are part of the determinism: the same arguments give the same bytes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DRIFTS = ("none", "demographics", "behaviour", "concept")
DEFAULT_AS_OF = "2026-06-30"
DEFAULT_DAYS = 730
DAY = 86_400
YEAR = 365.25 * DAY
DRIFT_CODE = {"none": 0, "demographics": 1, "behaviour": 2, "concept": 3}
TID_TAG = {"none": "", "demographics": "D", "behaviour": "B", "concept": "C"}


def check_args(n_customers: int, seed: int, days: int, drift: str) -> None:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if drift not in DRIFTS:
        raise ValueError(f"drift must be one of {DRIFTS}, got {drift!r}")


def as_of_timestamp(as_of: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(as_of)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.normalize()


def categorical(rng: np.random.Generator, shares: Sequence[float], size: int) -> np.ndarray:
    cum = np.cumsum(np.asarray(shares, dtype=np.float64))
    return np.searchsorted(cum[:-1] / cum[-1], rng.random(size), side="right").astype(np.int8)


def kinds(rng: np.random.Generator, shares: dict[str, float], size: int) -> np.ndarray:
    """int8 codes: 0 = clean, i = the i-th kind of ``shares`` (in insertion order)."""
    return categorical(rng, (1.0 - sum(shares.values()), *shares.values()), size)
