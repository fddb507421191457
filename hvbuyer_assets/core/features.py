"""Point-in-time customer features: one definition shared by training, batch scoring and the API.

The columns are declared in ``core.feature_spec`` (``FEATURES``: kind, group, no-history value, request bounds,
serving rules, description); this module computes them. Inputs are the clean frames of ``core.cleaning``. Every
behaviour feature of a customer "as of" a time ``t`` uses only that customer's transactions with
``timestamp <= t``; demographics come from the customer record (tenure_days: days from signup_date to ``t``,
floored at 0). Windows are ``(t - N days, t]``; ``n_large`` counts completed purchases with amount >=
``large_amount``; ``last_amount`` takes the largest amount on a timestamp tie; region is normalised with
``rules.normalise_region`` ("Unknown" when missing). ``FEATURE_NUMERIC`` are float64, ``region`` is
string[pyarrow].

"No history" (a customer without transactions, or an API request omitting behaviour fields) is ``NO_HISTORY``:
counts and amounts 0, recencies NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from hvbuyer_assets.core.rules import TRANSACTION_STATUSES, normalise_region

STRING = pd.StringDtype("pyarrow")
DAY_NS = 86_400 * 10**9
NAT_NS = np.iinfo(np.int64).min  # the int64 value of NaT
LARGE_AMOUNT = problem.LARGE_PURCHASE_THRESHOLD

STATUSES = TRANSACTION_STATUSES
STATUS_COMPLETED, STATUS_PENDING, STATUS_REFUNDED, STATUS_FAILED = range(4)  # positions in STATUSES

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
    "EncodedTransactions",
    "Feature",
    "build_features",
    "encode_transactions",
    "features_from_encoded",
    "latest_event_time",
    "serving_frame",
    "timestamps_ns",
    "to_utc",
]


@dataclass(frozen=True)
class EncodedTransactions:
    """Transactions reduced to numpy arrays, customer ids replaced by positions in ``customer_ids``.

    Rows of unknown customers or with a missing timestamp are dropped. ``status`` indexes ``STATUSES``
    (-1 = anything else). Encoding once lets training build features and labels for several cutoffs cheaply.
    """

    customer_ids: pd.Index
    code: np.ndarray  # int64 position in customer_ids
    ts: np.ndarray  # int64 ns since epoch, UTC
    amount: np.ndarray  # float64
    status: np.ndarray  # int8

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)


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


def _arrow(values: Iterable[Any]) -> pa.Array | pa.ChunkedArray:
    arr = pa.array(values, from_pandas=True) if not isinstance(values, pa.ChunkedArray | pa.Array) else values
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    return arr


def _id_index(customer_ids: Iterable[Any]) -> pd.Index:
    index = pd.Index(pd.array(customer_ids, dtype=STRING), name="customer_id")
    if not index.is_unique:
        raise ValueError("customer_id values must be unique")
    return index


def encode_transactions(transactions: pd.DataFrame, customer_ids: Iterable[Any]) -> EncodedTransactions:
    """Encode clean transactions against a list of customer ids (vectorised hash join via pyarrow)."""
    index = _id_index(customer_ids)
    tx_ids = _arrow(transactions["customer_id"])
    value_set = _arrow(index.array)
    if isinstance(value_set, pa.ChunkedArray):
        value_set = value_set.combine_chunks()
    code = pc.fill_null(pc.index_in(tx_ids, value_set=value_set.cast(tx_ids.type)), -1)
    code = code.to_numpy(zero_copy_only=False).astype(np.int64)
    status_arr = _arrow(transactions["status"])
    status = pc.index_in(status_arr, value_set=pa.array(STATUSES, type=status_arr.type))
    status = pc.fill_null(status, -1).to_numpy(zero_copy_only=False).astype(np.int8)
    ts = timestamps_ns(transactions["timestamp"])
    amount = pd.to_numeric(transactions["amount"]).to_numpy(dtype="float64", na_value=np.nan)
    keep = (code >= 0) & (ts != NAT_NS)
    if keep.all():
        return EncodedTransactions(index, code, ts, amount, status)
    return EncodedTransactions(index, code[keep], ts[keep], amount[keep], status[keep])


def _group_max(code: np.ndarray, values: np.ndarray, n: int, initial: float | int) -> np.ndarray:
    out = np.full(n, initial, dtype=values.dtype)
    np.maximum.at(out, code, values)
    return out


def _group_min(code: np.ndarray, values: np.ndarray, n: int, initial: float | int) -> np.ndarray:
    out = np.full(n, initial, dtype=values.dtype)
    np.minimum.at(out, code, values)
    return out


def _count(code: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(code, weights=weights, minlength=n).astype("float64")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype="float64")
    np.divide(num, den, out=out, where=den > 0)
    return out


def _behaviour(enc: EncodedTransactions, as_of_ns: int, large_amount: float) -> dict[str, np.ndarray]:
    n = enc.n_customers
    keep = enc.ts <= as_of_ns
    code, ts, amount, status = enc.code[keep], enc.ts[keep], enc.amount[keep], enc.status[keep]
    done = status == STATUS_COMPLETED
    cc, ct, ca = code[done], ts[done], amount[done]

    out: dict[str, np.ndarray] = {"last_event_at": _group_max(code, ts, n, NAT_NS)}
    out["n_transactions"] = _count(code, n)
    out["n_completed"] = n_completed = _count(cc, n)
    for days in (30, 90, 365):
        recent = ct > as_of_ns - days * DAY_NS
        out[f"n_completed_{days}d"] = _count(cc[recent], n)
        if days != 30:
            out[f"spend_{days}d"] = _count(cc[recent], n, ca[recent])
    out["total_spend"] = total = _count(cc, n, ca)
    out["avg_spend"] = _ratio(total, n_completed)
    out["max_spend"] = _group_max(cc, ca, n, 0.0)
    last_ts = _group_max(cc, ct, n, NAT_NS)
    first_ts = _group_min(cc, ct, n, np.iinfo(np.int64).max)
    at_last = ct == last_ts[cc]
    out["last_amount"] = _group_max(cc[at_last], ca[at_last], n, 0.0)
    out["n_large"] = n_large = _count(cc[ca >= large_amount], n)
    out["share_large"] = _ratio(n_large, n_completed)
    bought = n_completed > 0
    out["days_since_last_purchase"] = np.where(bought, (as_of_ns - last_ts) / DAY_NS, np.nan)
    out["days_since_first_purchase"] = np.where(bought, (as_of_ns - first_ts) / DAY_NS, np.nan)
    non_failed = _count(code[(status >= 0) & (status != STATUS_FAILED)], n)
    out["refund_rate"] = _ratio(_count(code[status == STATUS_REFUNDED], n), non_failed)
    out["n_failed"] = _count(code[status == STATUS_FAILED], n)
    return out


def _region(values: pd.Series) -> pd.Series:
    return normalise_region(values.astype(STRING)).astype(STRING)


def _numeric(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype="float64", na_value=np.nan)


def features_from_encoded(
    enc: EncodedTransactions, customers: pd.DataFrame, as_of: Any, large_amount: float = LARGE_AMOUNT
) -> pd.DataFrame:
    """``build_features`` on pre-encoded transactions (``customers`` aligned with ``enc.customer_ids``)."""
    as_of = to_utc(as_of)
    as_of_ns = int(as_of.value)
    n = enc.n_customers
    if len(customers) != n:
        raise ValueError("customers are not aligned with the encoded transactions")
    behaviour = _behaviour(enc, as_of_ns, large_amount)
    signup = pd.to_datetime(customers["signup_date"], utc=True).dt.as_unit("ns")
    signup_ns = signup.array.asi8
    tenure = np.where(signup_ns == NAT_NS, np.nan, np.maximum(as_of_ns - signup_ns, 0) / DAY_NS)
    columns: dict[str, Any] = {
        "age": _numeric(customers["age"].to_numpy(), n),
        "loyalty_points": _numeric(customers["loyalty_points"].to_numpy(), n),
        "tenure_days": tenure,
    }
    columns.update({name: behaviour[name] for name in BEHAVIOUR_FEATURES})
    columns["region"] = _region(customers["region"]).array
    columns["signup_date"] = signup.array
    columns["feature_as_of"] = pd.DatetimeIndex(np.full(n, as_of_ns).view("M8[ns]")).tz_localize("UTC")
    columns["last_event_at"] = pd.DatetimeIndex(behaviour["last_event_at"].view("M8[ns]")).tz_localize("UTC")
    return pd.DataFrame(columns, index=enc.customer_ids)[list(FEATURE_COLUMNS + EXTRA_COLUMNS)]


def build_features(
    transactions: pd.DataFrame, customers: pd.DataFrame, as_of: Any, large_amount: float = LARGE_AMOUNT
) -> pd.DataFrame:
    """Features of every customer as of ``as_of`` from transactions with ``timestamp <= as_of`` only.

    Returns one row per customer (index ``customer_id``, string) with ``FEATURE_COLUMNS`` plus
    ``signup_date``, ``feature_as_of`` (= as_of) and ``last_event_at`` (latest transaction used; NaT if none).
    ``large_amount`` defines ``n_large``/``share_large`` (pass the label threshold).
    """
    enc = encode_transactions(transactions, customers["customer_id"])
    return features_from_encoded(enc, customers, as_of, large_amount)


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
