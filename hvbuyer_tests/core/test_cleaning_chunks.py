"""Cleaning a drop chunk by chunk gives exactly what cleaning it whole gives: the same clean rows in the same order,
the same quarantine and counts, with tiny chunks and repeated keys on both sides of chunk boundaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hvbuyer_assets import datagen
from hvbuyer_assets.core import contract
from hvbuyer_assets.core.cleaning import CleanResult
from hvbuyer_assets.core.cleaning.chunks import ListStage, clean_chunks, final_chunks
from hvbuyer_assets.core.cleaning.history import EarlierFrames, NoEarlierDrops
from hvbuyer_assets.core.cleaning.transactions import unknown_customers
from hvbuyer_assets.core.sources import CUSTOMERS, TRANSACTIONS, RawSource

ARRIVED = pd.Timestamp("2026-07-01", tz="UTC")


def _raw(path: Path, source: RawSource, chunk_bytes: int, repeats: int) -> list[pd.DataFrame]:
    """A file read in chunks as the raw step stores it, with its last ``repeats`` rows sent again at the start of
    a second file (so a key's copies sit in different chunks, and one chunk boundary falls inside the repeats)."""
    first = list(source.reader(path, path.name, chunk_bytes=chunk_bytes))
    again = pa.concat_tables(first).slice(0, repeats)
    second = path.with_name(path.stem + "_again" + path.suffix)
    if source is CUSTOMERS:
        body = again.select(list(source.columns)).to_pandas()
        body["age"] = "41"  # the repeat differs: the later record must win as a whole
        body.to_csv(second, index=False)
    else:
        frame = again.select(list(source.columns)).to_pandas()
        frame["amount"] = "77.00"
        frame.to_json(second, orient="records", lines=True)
    tables = first + list(source.reader(second, second.name, chunk_bytes=chunk_bytes))
    names = [path.name, second.name]
    frames = []
    for table in tables:
        frame = contract.raw_to_frame(table, source_files=names)
        frame["arrived_at"] = ARRIVED
        frames.append(frame)
    return frames


def _whole(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def _chunked(frames: list[pd.DataFrame], clean) -> tuple[pd.DataFrame, CleanResult]:
    stage = ListStage()
    result = clean_chunks(frames, clean, "customer_id" if "age" in frames[0] else "transaction_id", stage)
    table = pa.concat_tables(list(final_chunks(stage, result.removed)))
    return table.to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow") if t == pa.string() else None), result


def _same(chunked: pd.DataFrame, whole: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        chunked.reset_index(drop=True), whole.reset_index(drop=True), check_dtype=False, check_categorical=False
    )


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return datagen.write_drop(tmp_path_factory.mktemp("drop"), 400, seed=3, as_of="2026-06-30")


@pytest.mark.parametrize("chunk_bytes", [1_500, 5_000])
def test_chunked_customers_equal_whole_file_customers(drop: tuple[Path, Path], chunk_bytes: int) -> None:
    frames = _raw(drop[0], CUSTOMERS, chunk_bytes, repeats=60)
    assert len(frames) > 3  # tiny chunks: the repeats straddle boundaries
    whole = CUSTOMERS.clean(_whole(frames), earlier=NoEarlierDrops())
    clean, chunked = _chunked(frames, lambda raw: CUSTOMERS.clean(raw, earlier=NoEarlierDrops()))
    _same(clean, whole.clean)
    _same(chunked.quarantine, whole.quarantine)
    assert chunked.stats == {k: int(v) for k, v in whole.stats.items()}
    assert whole.stats["duplicates"] >= 60 and not chunked.repeated_keys and chunked.missing_keys == 0


@pytest.mark.parametrize("chunk_bytes", [5_000, 40_000])
def test_chunked_transactions_equal_whole_file_transactions(drop: tuple[Path, Path], chunk_bytes: int) -> None:
    customers = CUSTOMERS.clean(_whole(_raw(drop[0], CUSTOMERS, 1 << 20, repeats=0)), earlier=NoEarlierDrops()).clean
    frames = _raw(drop[1], TRANSACTIONS, chunk_bytes, repeats=150)
    assert len(frames) > 5
    # an earlier drop holding some of these transaction ids: those rows are duplicates of the earlier record
    earlier_ids = _whole(frames)["transaction_id"].dropna().iloc[500:520].astype(str)
    earlier = EarlierFrames(
        [("q1", {"transactions": pd.DataFrame({"transaction_id": earlier_ids}), "customers": customers})]
    )
    prepared = TRANSACTIONS.prepare(_ids_of(_whole(frames)), customers, earlier)
    whole = TRANSACTIONS.clean(_whole(frames), customers, earlier=earlier)
    clean, chunked = _chunked(frames, lambda raw: TRANSACTIONS.clean(raw, customers, earlier=prepared))
    _same(clean, whole.clean)
    _same(chunked.quarantine, whole.quarantine)
    assert chunked.stats == {k: int(v) for k, v in whole.stats.items()}
    assert whole.stats["duplicates"] >= 150 + 20


def test_first_drop_chunks_share_one_set_of_known_customers_and_equal_the_whole_file(drop: tuple[Path, Path]) -> None:
    """The first drop's chunks (no earlier drop) check against the known ids built once by ``prepare``: the same
    clean rows, quarantine (unknown customers among it) and check results as the whole file."""
    customers = CUSTOMERS.clean(_whole(_raw(drop[0], CUSTOMERS, 1 << 20, repeats=0)), earlier=NoEarlierDrops()).clean
    customers = customers.iloc[: len(customers) // 2]  # half the customers unknown: the rule has work to do
    frames = _raw(drop[1], TRANSACTIONS, 5_000, repeats=40)
    prepared = TRANSACTIONS.prepare(_ids_of(_whole(frames)), customers, NoEarlierDrops())
    whole = TRANSACTIONS.clean(_whole(frames), customers, earlier=NoEarlierDrops())
    bad = []
    stage = ListStage()
    result = clean_chunks(
        frames,
        lambda raw: TRANSACTIONS.clean(raw, customers, earlier=prepared),
        "transaction_id",
        stage,
        bad_rows=lambda chunk: bad.append(unknown_customers(chunk.clean, chunk.references["customers"])) or {},
    )
    clean = pa.concat_tables(list(final_chunks(stage, result.removed)))
    _same(clean.to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow") if t == pa.string() else None), whole.clean)
    _same(result.quarantine, whole.quarantine)
    assert (whole.quarantine["reason"].str.contains("is not a known customer")).sum() > 100
    assert not np.concatenate(bad).any() and not unknown_customers(whole.clean, customers).any()
    assert unknown_customers(_whole(frames), prepared.ids).sum() == unknown_customers(_whole(frames), customers).sum()


def _ids_of(raw: pd.DataFrame):
    from hvbuyer_assets.core.sources import drop_ids

    return lambda column: drop_ids(raw, column)
