"""What a new drop reads of the earlier drops (``defs.raw.history.StoredEarlierDrops`` over
``storage.partitions.read_matching``): only the id column, only the row groups whose id range admits one of the
new drop's ids, and no customer lookup for the customers the drop itself sends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hvbuyer_assets.core.cleaning.history import NoEarlierDrops
from hvbuyer_assets.core.sources import TRANSACTIONS
from hvbuyer_assets.defs.raw.history import StoredEarlierDrops
from hvbuyer_assets.storage.partitions import (
    partition_path,
    read_matching,
    row_groups_holding,
    sorted_values,
)
from hvbuyer_tests.core.test_cleaning import TX_COLUMNS, _frame, _tx


class _Store:
    """The IO manager's side of ``PartitionStore``: the data dir."""

    s3_endpoint_url = None

    def __init__(self, base: Path) -> None:
        self.base_uri = str(base)


def _ids(day: str, n: int) -> list[str]:
    return [f"T{day}-{i:09d}" for i in range(1, n + 1)]


def _write(base: Path, asset: str, drop: str, column: str, ids: list[str], **options: object) -> str:
    path = partition_path(str(base), "processed", asset, drop)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: ids}), path, row_group_size=100, **options)
    return path


def test_row_groups_are_kept_when_their_range_admits_a_value_or_has_no_statistics() -> None:
    values = np.array(["b", "m", "x"], dtype=object)
    ranges = [("a", "a"), ("a", "c"), ("c", "l"), ("m", "m"), ("n", "w"), None, ("y", "z")]
    assert row_groups_holding(ranges, values) == [1, 3, 5]
    assert row_groups_holding(ranges, np.array([], dtype=object)) == [5]


def test_a_new_drop_reads_only_the_earlier_row_groups_its_ids_fall_in(tmp_path: Path) -> None:
    earlier = _ids("20260630", 1000)  # 10 row groups of 100 ids, each a narrow range
    path = _write(tmp_path, "clean_transactions", "q1", "transaction_id", earlier)
    new = pa.array([*_ids("20260730", 50), earlier[742]])  # one id of q1 sent again, in its 8th row group
    read = read_matching(path, "transaction_id", sorted_values(new))
    assert read.to_pylist() == earlier[700:800]  # that row group only, not the 1,000 ids

    found = StoredEarlierDrops(_Store(tmp_path), ["q1"]).matching("transactions", "transaction_id", new)
    assert found.column("value").to_pylist() == [earlier[742]] and found.column("drop").to_pylist() == ["q1"]
    brand_new = StoredEarlierDrops(_Store(tmp_path), ["q1"]).matching("transactions", "transaction_id", new[:50])
    assert brand_new.num_rows == 0
    assert len(read_matching(path, "transaction_id", sorted_values(new[:50]))) == 0  # nothing of q1 read


def test_without_statistics_every_row_group_is_read_and_matches_stay_exact(tmp_path: Path) -> None:
    earlier = _ids("20260630", 300)
    path = _write(tmp_path, "clean_transactions", "q1", "transaction_id", earlier, write_statistics=False)
    assert len(read_matching(path, "transaction_id", sorted_values(pa.array(["T20260730-000000001"])))) == 300
    found = StoredEarlierDrops(_Store(tmp_path), ["q1"]).matching(
        "transactions", "transaction_id", pa.array([earlier[0], "T20260730-000000001"])
    )
    assert found.column("value").to_pylist() == [earlier[0]]


class _AskedFor(NoEarlierDrops):
    """A later drop with no earlier data, recording which ids cleaning looks up of which kind."""

    empty = False

    def __init__(self) -> None:
        self.asked: dict[str, list[str]] = {}

    def matching(self, kind: str, column: str, values: pa.Array) -> pa.Table:
        self.asked[kind] = sorted(values.to_pylist())
        return super().matching(kind, column, values)


def test_only_customers_the_drop_does_not_send_itself_are_looked_up_in_earlier_drops() -> None:
    clean_customers = pd.DataFrame({"customer_id": pd.array(["C1", "C2"], dtype="string[pyarrow]")})
    raw = _frame(
        [_tx(), _tx(transaction_id="T2", customer_id="C2"), _tx(transaction_id="T3", customer_id="C9")], TX_COLUMNS
    )
    earlier = _AskedFor()
    result = TRANSACTIONS.clean(raw, clean_customers, earlier=earlier)
    assert earlier.asked == {"customers": ["C9"], "transactions": ["T1", "T2", "T3"]}
    assert result.quarantine["reason"].str.contains("C9").any()  # in no drop: still unknown
