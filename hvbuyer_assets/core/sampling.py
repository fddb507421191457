"""How the training set is capped before it reaches the model: a stratified, seeded sample of exactly ``max_rows``.

The strata are (split, label): each keeps its share of the rows (largest remainder, so that the quotas add up to
``max_rows`` exactly; a non-empty stratum keeps at least one row), so the label prevalence of the training and
hold-out rows and their sizes relative to each other are those of the whole set. Within a stratum the rows with
the smallest seeded hash of (customer_id, cutoff) are kept, ties broken by customer_id then cutoff. Each engine
computes that hash natively (polars' on the embedded engine, ``xxhash64`` on Spark) and applies :func:`quotas`
to its own stratum counts, so a seed picks the same rows on every run of an engine (the two engines' hashes
differ: the same seed picks a different, equally stratified sample on each).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from hvbuyer_assets.core.keys import KEY as ID

STRATA = ("split", "label")
Stratum = tuple[str, int]
MIN_ROWS = 4  # one row per split and label


@dataclass(frozen=True)
class TrainingSample:
    """At most ``max_rows`` training-set rows (``HVBUYER_MAX_TRAINING_ROWS``), drawn with ``seed``."""

    max_rows: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_rows < MIN_ROWS:
            raise ValueError(f"max_training_rows must be at least 4 (one row per split and label), got {self.max_rows}")

    def may_bind(self, customers: int, cutoffs: int) -> bool:
        """False when the set cannot exceed ``max_rows`` (at most one row per customer and cutoff): then nothing
        is counted or sampled."""
        return customers * cutoffs > self.max_rows


def quotas(counts: Mapping[Stratum, int], max_rows: int) -> dict[Stratum, int]:
    """Rows to keep per stratum: all of them when the strata hold at most ``max_rows`` rows, else each stratum's
    share of ``max_rows`` (largest remainder, ties by stratum), at least one row for a non-empty stratum (when
    ``max_rows`` allows one for each)."""
    total = sum(counts.values())
    if total <= max_rows:
        return dict(counts)
    kept = {stratum: max_rows * n // total for stratum, n in counts.items()}
    by_remainder = sorted(counts, key=lambda s: (-(max_rows * counts[s] % total), s))
    for stratum in by_remainder[: max_rows - sum(kept.values())]:
        kept[stratum] += 1
    empty = sorted(s for s, n in counts.items() if n > 0 and kept[s] == 0)
    for stratum in empty if max_rows >= sum(n > 0 for n in counts.values()) else []:
        largest = max(kept, key=lambda s: (kept[s], s))
        kept[largest] -= 1
        kept[stratum] = 1
    return kept


def sample_arrow(table: pa.Table, sample: TrainingSample) -> pa.Table:
    """The rows of a collected training-rows table (``feature_defs.training_rows``) that ``sample`` keeps, on
    polars (the embedded engine): the whole table when it holds at most ``max_rows`` rows."""
    frame = pl.from_arrow(table)
    counts = {(split, int(label)): n for split, label, n in frame.group_by(STRATA).len().iter_rows()}
    kept = quotas(counts, sample.max_rows)
    if sum(kept.values()) == frame.height:
        return table
    limits = pl.DataFrame(
        {"split": [s for s, _ in kept], "label": [label for _, label in kept], "_quota": list(kept.values())},
        schema={"split": frame.schema["split"], "label": frame.schema["label"], "_quota": pl.Int64},
    )
    chosen = (
        frame.with_columns(_key=pl.struct(ID, "cutoff_ns").hash(sample.seed))
        .sort([*STRATA, "_key", ID, "cutoff_ns"])
        .with_columns(_n=pl.int_range(pl.len()).over(STRATA))
        .join(limits, on=list(STRATA))
        .filter(pl.col("_n") < pl.col("_quota"))
        .drop("_key", "_n", "_quota")
    )
    return chosen.to_arrow()
