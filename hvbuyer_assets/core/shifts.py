"""Synthetic shifts of a feature frame, for measuring what a drift detector catches (``scripts/bench_drift.py
--sensitivity``): a mean shift in standard deviations, a change of category mix, more missing values.

Only numpy and pandas: the Evidently comparison runs in its own virtual environment and applies the same shifts
by importing this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("none", "mean", "category", "missing")


@dataclass(frozen=True)
class Shift:
    """``kind`` of shift of ``column`` by ``size``: SD units (mean), share of rows moved to ``category``
    (category), extra share of rows made missing (missing); ``none`` leaves the frame as drawn."""

    kind: str
    column: str = ""
    size: float = 0.0
    category: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"shift kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind != "none" and not self.column:
            raise ValueError(f"a {self.kind} shift needs a column")
        if self.kind in ("category", "missing") and not 0 <= self.size <= 1:
            raise ValueError(f"a {self.kind} shift's size is a share in [0, 1], got {self.size}")

    @property
    def label(self) -> str:
        """How the table names it."""
        unit = {"mean": " SD", "category": f" of rows to {self.category}", "missing": " more missing"}
        if self.kind == "none":
            return "same world"
        size = f"{self.size:g}" if self.kind == "mean" else f"{self.size:.0%}"
        return f"{self.column}: {size}{unit[self.kind]}"


def apply(frame: pd.DataFrame, shift: Shift, reference_sd: float, seed: int) -> pd.DataFrame:
    """A shifted copy of ``frame`` (``reference_sd``: the column's standard deviation in the reference, the unit
    of a mean shift; the rows moved or blanked are drawn with ``seed``)."""
    out = frame.copy()
    if shift.kind == "none":
        return out
    if shift.column not in out.columns:
        raise ValueError(f"shift: column {shift.column!r} is not in the frame")
    rng = np.random.default_rng(seed)
    if shift.kind == "mean":
        out[shift.column] = out[shift.column] + shift.size * reference_sd
    else:
        picked = rng.random(len(out)) < shift.size
        if shift.kind == "category":
            out.loc[picked, shift.column] = shift.category
        else:
            out.loc[picked, shift.column] = None
    return out


def draw(pool: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of ``pool`` drawn with replacement (seeded): one side of one trial."""
    picks = np.random.default_rng(seed).integers(0, len(pool), size=rows)
    return pool.iloc[picks].reset_index(drop=True)


def trial(
    reference_pool: pd.DataFrame, current_pool: pd.DataFrame, shift: Shift, rows: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, current) of one trial: both drawn from their pools, the current side shifted."""
    reference = draw(reference_pool, rows, seed)
    sd = float(reference_pool[shift.column].std()) if shift.kind == "mean" else 0.0
    return reference, apply(draw(current_pool, rows, seed + 1_000_003), shift, sd, seed)
