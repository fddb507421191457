"""The training set's cap (``core.sampling``): quotas per (split, label) that add up to the cap exactly and keep each
stratum's share, and the embedded engine's seeded sample that draws exactly them (the Spark engine's:
``test_spark_engine.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hvbuyer_assets.core import engine, sampling, training

T = pd.Timestamp("2026-03-31T00:00:00Z")
STRING = "string[pyarrow]"


def rows_table(train: tuple[int, int], holdout: tuple[int, int], seed: int = 3) -> pa.Table:
    """Training rows (the columns ``sample_arrow`` reads, and one feature): ``(negatives, positives)`` per split."""
    rng = np.random.default_rng(seed)
    parts = []
    for split, (negatives, positives), cutoff in (("train", train, 1_000), ("holdout", holdout, 2_000)):
        n = negatives + positives
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": [f"C{i:07d}" for i in range(n)],
                    "cutoff_ns": np.full(n, cutoff, dtype=np.int64),
                    "split": split,
                    "label": np.array([0] * negatives + [1] * positives, dtype=np.int32)[rng.permutation(n)],
                    "total_spend": rng.random(n),
                }
            )
        )
    return pa.Table.from_pandas(pd.concat(parts, ignore_index=True), preserve_index=False)


def strata(table: pa.Table) -> dict[tuple[str, int], int]:
    frame = table.select(["split", "label"]).to_pandas()
    return {(s, int(label)): int(n) for (s, label), n in frame.value_counts().items()}


def test_quotas_add_up_to_the_cap_and_keep_each_stratum_share() -> None:
    counts = {("train", 0): 9_000, ("train", 1): 1_000, ("holdout", 0): 7_600, ("holdout", 1): 2_400}
    assert sampling.quotas(counts, 20_000) == counts  # under the cap: everything
    kept = sampling.quotas(counts, 1_000)
    assert kept == {("train", 0): 450, ("train", 1): 50, ("holdout", 0): 380, ("holdout", 1): 120}
    odd = sampling.quotas({("a", 0): 1, ("a", 1): 1, ("b", 0): 1}, 2)  # remainders tie: by stratum
    assert sum(odd.values()) == 2 and odd == {("a", 0): 1, ("a", 1): 1, ("b", 0): 0}
    rare = sampling.quotas({("train", 0): 99_990, ("train", 1): 10, ("holdout", 0): 5_000, ("holdout", 1): 0}, 100)
    assert rare[("train", 1)] == 1 and rare[("holdout", 1)] == 0 and sum(rare.values()) == 100  # a rare label stays


@pytest.mark.parametrize("cap", [4, 137, 1_000, 4_999])
def test_the_embedded_sample_has_exactly_the_quotas_of_each_stratum(cap: int) -> None:
    table = rows_table(train=(2_600, 400), holdout=(1_800, 200))
    sample = sampling.sample_arrow(table, sampling.TrainingSample(cap, seed=7))
    assert sample.num_rows == cap
    assert strata(sample) == {s: n for s, n in sampling.quotas(strata(table), cap).items() if n}
    whole = table.to_pandas().set_index(["customer_id", "cutoff_ns"])
    kept = sample.to_pandas().set_index(["customer_id", "cutoff_ns"])
    pd.testing.assert_frame_equal(kept, whole.loc[kept.index])  # rows of the set, unchanged


def test_the_sample_is_seeded_and_deterministic() -> None:
    table = rows_table(train=(2_600, 400), holdout=(1_800, 200))

    def keys(seed: int, source: pa.Table = table) -> set[tuple[str, int]]:
        chosen = sampling.sample_arrow(source, sampling.TrainingSample(500, seed))
        return set(zip(chosen.column("customer_id").to_pylist(), chosen.column("cutoff_ns").to_pylist(), strict=True))

    assert keys(1) == keys(1)
    assert keys(1) != keys(2)
    assert keys(1, table.take(np.random.default_rng(0).permutation(table.num_rows))) == keys(1)  # any row order
    assert sampling.sample_arrow(table, sampling.TrainingSample(table.num_rows)) is table  # not over the cap


def test_a_cap_below_one_row_per_split_and_label_is_refused() -> None:
    with pytest.raises(ValueError, match="max_training_rows must be at least 4"):
        sampling.TrainingSample(3)
    assert sampling.TrainingSample(10).may_bind(customers=6, cutoffs=2)
    assert not sampling.TrainingSample(12).may_bind(customers=6, cutoffs=2)


def clean_tables(n: int = 600, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean (transactions, customers): customers signed up over two years, purchases over the year before T."""
    rng = np.random.default_rng(seed)
    ids = pd.array([f"C{i:07d}" for i in range(n)], dtype=STRING)
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "age": rng.integers(18, 80, n).astype(float),
            "region": pd.array(rng.choice(["East", "West"], n), dtype=STRING),
            "signup_date": T - pd.to_timedelta(rng.integers(200, 730, n), unit="D"),
            "loyalty_points": rng.integers(0, 2000, n).astype(float),
        }
    )
    m = 12 * n
    transactions = pd.DataFrame(
        {
            "customer_id": ids[rng.integers(0, n, m)],
            "timestamp": T - pd.to_timedelta(rng.integers(0, 365 * 24, m), unit="h"),
            "amount": np.round(rng.lognormal(4, 1, m), 2),
            "status": pd.array(["completed"] * m, dtype=STRING),
        }
    )
    return transactions, customers


def clean_frames(n: int = 600, seed: int = 5) -> engine.Frames:
    return engine.from_pandas(*clean_tables(n, seed))


def by_stratum(frame: pd.DataFrame) -> dict[tuple[str, int], int]:
    return {(s, int(label)): n for (s, label), n in frame.groupby(["split", "label"]).size().items()}


def test_the_training_set_is_capped_stratified_before_it_is_finished() -> None:
    frames = clean_frames()
    whole = training.training_frame(frames, T)
    assert set(whole["label"]) == {0, 1} and set(whole["split"]) == {"train", "holdout"}
    cap = len(whole) // 3
    capped = training.training_frame(frames, T, sample=sampling.TrainingSample(cap, seed=11))
    assert len(capped) == cap and list(capped.columns) == list(whole.columns)
    assert by_stratum(capped) == sampling.quotas(by_stratum(whole), cap)
    keys = ["customer_id", "cutoff"]
    chosen = capped.set_index(keys)
    pd.testing.assert_frame_equal(chosen, whole.set_index(keys).loc[chosen.index])  # whole rows, as computed
    assert capped["cutoff"].is_monotonic_increasing  # still by snapshot, then customer
    uncapped = training.training_frame(frames, T, sample=sampling.TrainingSample(len(whole)))
    pd.testing.assert_frame_equal(uncapped, whole)
