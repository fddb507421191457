"""Point-in-time customer features: one definition shared by training, batch scoring and the API.

The columns are declared in ``core.feature_spec`` (``FEATURES``: kind, group, no-history value, request bounds,
serving rules, description) and computed by ``core.feature_defs.features`` (narwhals, run by an engine:
``core.engine`` in-process, Spark in ``hvbuyer_assets.engines``); this module turns a collected result into the
pandas frame the graph uses. Inputs are the clean frames of ``core.cleaning``. Every behaviour feature of a
customer "as of" a time ``t`` uses only that customer's transactions with ``timestamp <= t``; demographics come
from the customer record (tenure_days: days from signup_date to ``t``, floored at 0). Windows are
``(t - N days, t]``; ``n_large`` counts completed purchases with amount >= ``large_amount``; ``last_amount``
takes the largest amount on a timestamp tie; money sums are exact sums of amounts quantised to 1e-6 (the same
bits on every engine and run); region is normalised with ``rules.normalise_region`` ("Unknown" when missing)
after collection, as serving does. ``FEATURE_NUMERIC`` are float64, ``region`` is string[pyarrow].

"No history" (a customer without transactions, or an API request omitting behaviour fields) is ``NO_HISTORY``:
counts and amounts 0, recencies NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core import problem
from hvbuyer_assets.core.feature_spec import (
    BEHAVIOUR_FEATURES,
    DEMOGRAPHIC_FEATURES,
    FEATURE_CATEGORICAL,
    FEATURE_COLUMNS,
    FEATURE_NUMERIC,
    FEATURES,
    NO_HISTORY,
    REQUIRED_FIELDS,
    SERVING_RULES,
    TIME_INDEXED_FEATURES,
    Feature,
)
from hvbuyer_assets.core.keys import KEY, STRING
from hvbuyer_assets.core.rules import TRANSACTION_STATUSES, normalise_region

if TYPE_CHECKING:
    from hvbuyer_assets.core.engine import Frames

NAT_NS = np.iinfo(np.int64).min  # the int64 value of NaT (= feature_defs.NO_TIME)
LARGE_AMOUNT = problem.LARGE_PURCHASE_THRESHOLD

STATUSES = TRANSACTION_STATUSES

EXTRA_COLUMNS: tuple[str, ...] = ("signup_date", "feature_as_of", "last_event_at")

__all__ = [  # the declaration's names are re-exported: training, model, monitoring and serving import them here
    "BEHAVIOUR_FEATURES",
    "DEMOGRAPHIC_FEATURES",
    "EXTRA_COLUMNS",
    "FEATURES",
    "FEATURE_CATEGORICAL",
    "FEATURE_COLUMNS",
    "FEATURE_NUMERIC",
    "NO_HISTORY",
    "REQUIRED_FIELDS",
    "SERVING_RULES",
    "STATUSES",
    "TIME_INDEXED_FEATURES",
    "Feature",
    "build_features",
    "features_frame",
    "finish_features",
    "latest_event_time",
    "serving_frame",
    "region_names",
    "state_features_frame",
    "stored_schema",
    "timestamps_ns",
    "to_utc",
]


def to_utc(when: Any) -> pd.Timestamp:
    """A pd.Timestamp in UTC (naive values are taken as UTC)."""
    ts = pd.Timestamp(when)
    if ts is pd.NaT:
        raise ValueError("a time is required, got NaT")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def timestamps_ns(values: pd.Series) -> np.ndarray:
    """int64 ns since epoch (UTC) of a datetime Series; NaT becomes ``NAT_NS``."""
    s = pd.to_datetime(values, utc=True)
    return s.dt.as_unit("ns").array.asi8


def utc_times(ns: Any) -> pd.DatetimeIndex:
    """int64 ns since epoch (``NAT_NS`` = NaT) as a UTC DatetimeIndex, without passing through float64."""
    values = np.asarray(ns, dtype=np.int64)
    return pd.DatetimeIndex(values.view("M8[ns]")).tz_localize("UTC")


def _int64s(column: pa.ChunkedArray) -> np.ndarray:
    """An int64 column without nulls (``feature_defs`` fills them with ``NO_TIME``) as numpy, exactly."""
    if column.null_count:
        raise ValueError(f"int64 column {column!r:.40} has nulls: the declaration must fill them")
    return column.to_numpy().astype(np.int64, copy=False)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A float64 column as numpy, null -> NaN."""
    return (
        column.to_numpy().astype(np.float64, copy=False)
        if not column.null_count
        else (pc.fill_null(column, np.nan).to_numpy())
    )


def in_order(table: pa.Table, keys: Sequence[str]) -> bool:
    """Whether the rows already are in ascending order of ``keys`` (lexicographic, strings by bytes as
    ``pc.sort_indices``; no nulls): one vectorised comparison of each row with the next, no sort."""
    n = table.num_rows
    ordered = None
    for key in reversed(keys):
        column = table.column(key)
        if column.null_count:
            return False
        head, tail = column.slice(0, max(n - 1, 0)), column.slice(1)
        same = pc.equal(head, tail)  # then the next key decides (the last key: equal rows are in order)
        ordered = pc.or_(pc.less(head, tail), same if ordered is None else pc.and_(same, ordered))
    return n < 2 or bool(pc.all(ordered).as_py())


def sort_rows(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Rows in ascending order of ``keys``: the same order whatever engine collected them. The embedded engine's
    rows already are in that order (``core.engine``): then the table is returned as it is, after one cheap check."""
    if in_order(table, keys):
        return table
    return table.take(pc.sort_indices(table, [(k, "ascending") for k in keys]))


def feature_columns(table: pa.Table) -> dict[str, Any]:
    """The feature columns of a collected ``feature_defs.features`` table, in their pandas dtypes:
    ``FEATURE_NUMERIC`` (null -> NaN), region (normalised here, as serving does), signup_date, last_event_at."""
    columns: dict[str, Any] = {name: _floats(table.column(name)) for name in FEATURE_NUMERIC}
    columns["region"] = _regions(table.column("region"))
    columns["signup_date"] = utc_times(_int64s(table.column("signup_ns")))
    columns["last_event_at"] = utc_times(_int64s(table.column("last_event_ns")))
    return columns


def in_columns(columns: Mapping[str, Any], names: Sequence[str], index: pd.Index | None = None) -> pd.DataFrame:
    """A frame of ``columns`` in the order ``names``, built in that order: selecting columns afterwards would copy
    every block once more (~1 s and 0.3 GiB more at 2M training rows)."""
    return pd.DataFrame({name: columns[name] for name in names}, index=index)


def customer_ids(table: pa.Table) -> pd.arrays.ArrowStringArray:
    """The ``customer_id`` column of a collected table as a string[pyarrow] array (its Arrow data, no copy)."""
    return strings(table.column(KEY))


def strings(column: pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """A string column of a collected table as a string[pyarrow] array (its Arrow data, no copy)."""
    wide = column if pa.types.is_large_string(column.type) else column.cast(pa.large_string())
    return pd.arrays.ArrowStringArray(wide)


def finish_features(table: pa.Table, as_of_ns: int) -> pd.DataFrame:
    """A collected ``feature_defs.features`` table as ``build_features``' frame (rows sorted by customer_id)."""
    table = sort_rows(table, [KEY])
    index = pd.Index(customer_ids(table), name=KEY)  # one row per customer by construction
    columns = feature_columns(table)
    columns["feature_as_of"] = utc_times(np.full(len(index), int(as_of_ns), dtype=np.int64))
    return in_columns(columns, FEATURE_COLUMNS + EXTRA_COLUMNS, index)


def stored_schema(empty: pa.Table) -> pa.Schema:
    """The Arrow schema (pandas metadata included) ``customer_features`` is stored with, from a rowless collected
    ``feature_defs.features`` table: what ``finish_features`` makes of it, index kept (as the IO manager stores
    it). An engine that writes the frame from its executors gives its parts this schema."""
    return pa.Table.from_pandas(finish_features(empty, 0), preserve_index=True).schema


def region_names(raw: pa.Array) -> pa.Array:
    """Each raw region value normalised as ``finish_features`` does (null -> "Unknown"): a lookup for an engine
    that normalises on its executors (a few distinct values)."""
    return _regions(pa.chunked_array([raw])).__arrow_array__().combine_chunks()


def features_frame(frames: Frames, as_of: Any, large_amount: float = LARGE_AMOUNT) -> pd.DataFrame:
    """``build_features`` on any engine's ``Frames``."""
    from hvbuyer_assets.core import feature_defs  # not at import: serving imports this module, never narwhals

    as_of_ns = int(to_utc(as_of).value)
    lazy = feature_defs.features(frames.transactions, frames.customers, as_of_ns, large_amount)
    return finish_features(frames.collect(lazy), as_of_ns)


def state_features_frame(
    total: Any, recent: Any, customers: Any, collect: Any, as_of: Any, large_amount: float = LARGE_AMOUNT
) -> pd.DataFrame:
    """``features_frame`` from the per-drop state (``core.customer_state.features``) on any engine: ``total``
    (the combined state of every drop), ``recent`` (transactions including those of the longest window before
    ``as_of``) and ``customers`` are LazyFrames of one engine, ``collect`` that engine's. The same frame, bit for
    bit, as ``features_frame`` on the whole history when no transaction is after ``as_of``."""
    from hvbuyer_assets.core import customer_state  # not at import: serving imports this module, never narwhals

    as_of_ns = int(to_utc(as_of).value)
    lazy = customer_state.features(total, recent, customers, as_of_ns, large_amount)
    return finish_features(collect(lazy), as_of_ns)


def build_features(
    transactions: pd.DataFrame, customers: pd.DataFrame, as_of: Any, large_amount: float = LARGE_AMOUNT
) -> pd.DataFrame:
    """Features of every customer as of ``as_of`` from transactions with ``timestamp <= as_of`` only.

    Returns one row per customer (index ``customer_id``, string, sorted) with ``FEATURE_COLUMNS`` plus
    ``signup_date``, ``feature_as_of`` (= as_of) and ``last_event_at`` (latest transaction used; NaT if none).
    ``large_amount`` defines ``n_large``/``share_large`` (pass the label threshold). Runs the embedded engine.
    """
    from hvbuyer_assets.core import engine  # not at import: serving imports this module, never polars

    return features_frame(engine.from_pandas(transactions, customers), as_of, large_amount)


def _region(values: pd.Series) -> pd.Series:
    return normalise_region(values.astype(STRING)).astype(STRING)


def _regions(column: pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """A collected raw region column normalised as ``_region`` does, each distinct value once (a few regions,
    millions of rows)."""
    encoded = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode")
    normalised = pa.array(_region(encoded.dictionary.to_pandas()).array)
    return strings(pa.chunked_array([normalised.take(encoded.indices)]))


def _numeric(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype="float64", na_value=np.nan)


def serving_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """API request rows -> a ``FEATURE_COLUMNS`` frame built with the same rules as ``build_features``.

    ``feature_spec.SERVING_RULES`` apply: omitted (or null) behaviour fields mean "no known history"
    (``NO_HISTORY``), omitted demographics are NaN, the cleaning rules of customer records hold (age outside
    [AGE_MIN, AGE_MAX] or negative loyalty_points -> NaN; tenure_days floored at 0); region is normalised
    ("Unknown" when missing). Unknown keys are ignored; non-numeric values raise ValueError.
    """
    raw = pd.DataFrame.from_records(list(records))
    n = len(raw)
    matrix = np.empty((n, len(FEATURE_NUMERIC)))
    for i, name in enumerate(FEATURE_NUMERIC):
        matrix[:, i] = _numeric(raw[name].to_numpy(dtype=object) if name in raw else None, n)
    SERVING_RULES.matrix(matrix)
    columns: dict[str, Any] = {name: matrix[:, i] for i, name in enumerate(FEATURE_NUMERIC)}
    region = raw["region"] if "region" in raw else pd.Series([None] * n)
    columns["region"] = _region(region.astype(object).where(region.notna(), None)).array
    return pd.DataFrame(columns, index=pd.RangeIndex(n))[list(FEATURE_COLUMNS)]


def latest_event_time(transactions: pd.DataFrame) -> pd.Timestamp:
    """T: the latest valid transaction timestamp (the as-of time of the data; never the wall clock)."""
    ts = pd.to_datetime(transactions["timestamp"], utc=True).max()
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError("no transaction with a valid timestamp: the as-of time is undefined")
    return to_utc(ts)
