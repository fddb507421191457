"""Cleaning a drop chunk by chunk gives exactly what cleaning it whole gives: the same clean rows in the same order,
the same quarantine and counts, with tiny chunks and repeated keys on both sides of chunk boundaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvbuyer_assets import datagen
from hvbuyer_assets.core import contract
from hvbuyer_assets.core.cleaning import CleanResult
from hvbuyer_assets.core.cleaning.chunks import ListStage, clean_chunks, final_chunks
from hvbuyer_assets.core.cleaning.history import EarlierFrames, NoEarlierDrops
from hvbuyer_assets.core.cleaning.transactions import unknown_customers
from hvbuyer_assets.core.sources import CUSTOMERS, TRANSACTIONS, RawSource
from hvbuyer_assets.storage.staged import StagedParquet
from hvbuyer_assets.storage.time_groups import by_month, month_order

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


@pytest.mark.parametrize("repeats", [0, 150])
def test_chunks_staged_in_month_order_store_what_sorting_each_final_chunk_stores(
    drop: tuple[Path, Path], tmp_path: Path, repeats: int
) -> None:
    """Staging each chunk's clean rows already sorted and cut by month (the clean step) stores the same rows, row
    groups and check results as staging them in raw order and sorting each final chunk: with no key repeated
    across chunks the stage is the clean table itself; with repeats, removing rows keeps the month order."""
    customers = CUSTOMERS.clean(_whole(_raw(drop[0], CUSTOMERS, 1 << 20, repeats=0)), earlier=NoEarlierDrops()).clean
    frames = _raw(drop[1], TRANSACTIONS, 60_000, repeats=max(repeats, 1))[: None if repeats else -1]
    frames = [
        f.sample(frac=1, random_state=i).reset_index(drop=True) for i, f in enumerate(frames)
    ]  # not in time order
    prepared = TRANSACTIONS.prepare(_ids_of(_whole(frames)), customers, NoEarlierDrops())

    def clean(raw: pd.DataFrame) -> CleanResult:
        return TRANSACTIONS.clean(raw, customers, earlier=prepared)

    def bad_rows(result: CleanResult) -> dict[str, np.ndarray]:  # a mask that depends on each row
        return {"large": result.clean["amount"].to_numpy() > 100}

    plain = ListStage()
    expected = clean_chunks(frames, clean, "transaction_id", plain, bad_rows=bad_rows)
    want = [g for table in final_chunks(plain, expected.removed) for g in by_month(table, "timestamp")]
    stage = StagedParquet(str(tmp_path / "stage.parquet.tmp"))
    lineage = StagedParquet(str(tmp_path / "lineage.parquet.tmp"))
    arrange = lambda table: month_order(table, "timestamp")  # noqa: E731
    got = clean_chunks(frames, clean, "transaction_id", stage, bad_rows=bad_rows, lineage=lineage, arrange=arrange)
    for index in range(got.chunks):  # the checks' rows are the staged rows they name
        amounts = stage.read(index, ["amount"]).column("amount").to_numpy()
        assert sorted(r for i, r in got.bad["large"] if i == index) == np.flatnonzero(amounts > 100).tolist()
    removed = sum(len(rows) for rows in got.removed)
    if repeats:
        assert removed > repeats // 2 and len(frames) > 3
        have = [g for table in final_chunks(stage, got.removed) for g in by_month(table, "timestamp")]
    else:
        assert removed == 0 and len(frames) > 3
        stage.close()
        stored = pq.ParquetFile(stage.path)
        have = [stored.read_row_group(i) for i in range(stored.num_row_groups)]
    assert [t.num_rows for t in have if t.num_rows] == [t.num_rows for t in want if t.num_rows]
    assert pa.concat_tables(have).equals(pa.concat_tables(want))
    assert got.bad_count("large") == expected.bad_count("large") > 0
    _same(got.quarantine, expected.quarantine)
    assert got.stats == expected.stats
