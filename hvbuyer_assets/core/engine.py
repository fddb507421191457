"""The embedded engine: the narwhals feature declaration (core.feature_defs) run in-process on polars.

Interface (shared with the Spark engine, hvbuyer_assets.engines): an engine turns its data into ``Frames``,
the two LazyFrames of the ``feature_defs`` input convention plus ``collect`` (LazyFrame -> ``pa.Table``, with
``customer_id`` as strings, any row order). ``features.features_frame``, ``labels.labels_frame`` and
``training.training_frame`` take ``Frames`` and return today's pandas layouts, whatever the engine.

Why polars: measured on 1M customers / 20M transactions (int64 customer codes, one cutoff, idle 2-core box),
the same narwhals declaration took 12.8 s on pandas (astype, copies, block consolidation and ``when`` dominate;
pandas' cython groupby itself is ~0.15 s per aggregation), 7.6 s on pyarrow, 3.8 s on eager polars and 1.3 s
on lazy polars, against 3.7 s for the former numpy kernels. So the embedded engine builds polars LazyFrames and
collects each result at once: in-process, Arrow-native (polars takes pyarrow buffers without copying), and the
outputs are still pandas for the rest of the graph. Spark runs the same declaration lazily on a cluster.

Here ``customer_id`` is replaced by int64 positions in the customers' ids (an integer key hashes faster than a
string) and mapped back in ``collect``; transactions of unknown customers or without a timestamp are dropped
while encoding (the declaration would ignore them anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.feature_defs import ID
from hvbuyer_assets.core.keys import id_index

NAT_NS = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Frames:
    """Transactions and customers in the ``feature_defs`` input convention, and how to collect a result."""

    transactions: nw.LazyFrame
    customers: nw.LazyFrame
    collect: Callable[[nw.LazyFrame], pa.Table]


def _strings(values: Any) -> pa.Array:
    arr = values if isinstance(values, pa.ChunkedArray | pa.Array) else pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if pa.types.is_large_string(arr.type) else arr.cast(pa.large_string())


def _ns(values: Any) -> np.ndarray:
    """int64 ns since epoch (UTC; naive values are UTC) of datetimes; missing -> ``NAT_NS``."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_pandas()
    return pd.to_datetime(pd.Series(values), utc=True).dt.as_unit("ns").array.asi8


def _floats(values: Any) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_pandas()
    return pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype="float64", na_value=np.nan)


def _encode(
    tx_ids: Any, ts: Any, amount: Any, status: Any, customer_ids: Any, age: Any, points: Any, signup: Any, region: Any
) -> Frames:
    index = id_index(customer_ids)
    ids = _strings(index.array)
    code = pc.fill_null(pc.index_in(_strings(tx_ids), value_set=ids), -1).to_numpy(zero_copy_only=False)
    ts_ns = _ns(ts)
    keep = (code >= 0) & (ts_ns != NAT_NS)
    amounts = _floats(amount)
    status_arr = _strings(status)
    if not keep.all():
        code, ts_ns, amounts = code[keep], ts_ns[keep], amounts[keep]
        status_arr = status_arr.filter(pa.array(keep))
    transactions = pl.DataFrame(
        {ID: code.astype(np.int64), "ts": ts_ns, "amount": amounts, "status": pl.from_arrow(status_arr)}
    )
    signup_ns = _ns(signup)
    customers = pl.DataFrame(
        {
            ID: np.arange(len(index), dtype=np.int64),
            "signup_ns": pl.Series(signup_ns).set(pl.Series(signup_ns == NAT_NS), None),
            "age": _floats(age),
            "loyalty_points": _floats(points),
            "region": pl.from_arrow(_strings(region)),
        }
    )

    def collect(lazy: nw.LazyFrame) -> pa.Table:
        table = lazy.collect(backend="polars").to_arrow()
        at = table.schema.get_field_index(ID)
        return table if at < 0 else table.set_column(at, ID, pc.take(ids, table.column(at)))

    return Frames(nw.from_native(transactions.lazy()), nw.from_native(customers.lazy()), collect)


def from_pandas(transactions: pd.DataFrame, customers: pd.DataFrame) -> Frames:
    """Clean frames (``core.cleaning``: transactions customer_id/timestamp/amount/status, customers
    customer_id/signup_date/age/loyalty_points/region) as embedded ``Frames``."""
    return _encode(
        transactions["customer_id"],
        transactions["timestamp"],
        transactions["amount"],
        transactions["status"],
        customers["customer_id"],
        customers["age"],
        customers["loyalty_points"],
        customers["signup_date"],
        customers["region"],
    )


def from_arrow(transactions: pa.Table, customers: pa.Table) -> Frames:
    """``from_pandas`` for Arrow tables with the same columns."""
    return _encode(
        transactions.column("customer_id"),
        transactions.column("timestamp"),
        transactions.column("amount"),
        transactions.column("status"),
        customers.column("customer_id"),
        customers.column("age"),
        customers.column("loyalty_points"),
        customers.column("signup_date"),
        customers.column("region"),
    )
