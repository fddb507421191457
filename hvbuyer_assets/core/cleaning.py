"""Cleaning of raw customers/transactions into typed frames plus a quarantine of rejected rows and values.

Everything is vectorised with pyarrow compute on the Arrow buffers behind ``string[pyarrow]`` columns
(no object dtype, no per-row Python). The quarantine is built only from the rows that failed a check.

Conventions (see the project spec): text is stripped, and empty text or a null token ("null", "None",
"nan", "N/A") counts as missing; "latest" means the largest ``(arrived_at, source_file, source_row)``;
a quarantine row has ``source_file, source_row, record_id, field, value, reason, action``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.contract import TRANSACTION_STATUSES

AGE_MIN = 13
AGE_MAX = 110
UNKNOWN_REGION = "Unknown"
UNKNOWN_PAYMENT_METHOD = "unknown"
QUARANTINE_COLUMNS = ("source_file", "source_row", "record_id", "field", "value", "reason", "action")
ROW_DROPPED, VALUE_NULLED, DUPLICATE_DROPPED = "row_dropped", "value_nulled", "duplicate_dropped"

_NULL_TOKENS = ("null", "NULL", "Null", "none", "None", "NONE", "nan", "NaN", "NAN", "n/a", "N/A")
_MAX_TOKEN_LENGTH = max(len(t) for t in _NULL_TOKENS)
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_ISO_FAST = "%Y-%m-%dT%H:%M:%S%z"
_ISO_GENERAL = (
    r"^(?P<date>\d{4}-\d{1,2}-\d{1,2})"
    r"(?:[Tt ](?P<time>\d{1,2}:\d{2}(?::\d{2})?)(?:[.,](?P<frac>\d{1,9})\d*)?)?"
    r"\s*(?P<zone>[Zz]|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)
_REASON_VALUE_CHARS = 80  # values are cut to this length inside reason sentences (the value column is complete)
_STRING = pd.StringDtype("pyarrow")
_NAT = np.iinfo(np.int64).min
_TS = pa.timestamp("ns", tz="UTC")
_QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
        ("record_id", pa.string()),
        ("field", pa.string()),
        ("value", pa.string()),
        ("reason", pa.string()),
        ("action", pa.string()),
    ]
)


@dataclass
class CleanResult:
    """Clean rows, quarantined rows/values and counts (rows_read, rows_clean, rows_dropped, duplicates,
    values_nulled)."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------
# small Arrow helpers


def _arrow(values: pd.Series | pd.Index | Sequence[object]) -> pa.ChunkedArray:
    """Arrow view of a string column (zero-copy for ``string[pyarrow]``), as a ChunkedArray of strings."""
    if not isinstance(values, pd.Series):
        values = pd.Series(values, dtype=object)
    if not isinstance(values.dtype, pd.StringDtype) or values.dtype.storage != "pyarrow":
        values = values.astype(_STRING)
    arr = values.array.__arrow_array__()
    return arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])


def _np_mask(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Arrow boolean -> numpy bool (null counts as False)."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _clean_text(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """Strip whitespace; empty strings and null tokens become null. Reuses the input buffers when nothing
    changes (the common case), so a clean 20M-row column costs no copy."""
    stripped = pc.utf8_trim_whitespace(arr)
    length = pc.binary_length(stripped)
    if pc.sum(length).as_py() == pc.sum(pc.binary_length(arr)).as_py():
        stripped = arr  # nothing was trimmed: drop the copy
    short = pc.less_equal(length, _MAX_TOKEN_LENGTH)  # blanks and null tokens are short: look only at those
    if not pc.any(short).as_py():
        return stripped
    short_idx = np.flatnonzero(_np_mask(short))
    candidates = stripped.take(pa.array(short_idx))
    blank = pc.or_(
        pc.equal(pc.binary_length(candidates), 0),
        pc.is_in(candidates, value_set=pa.array(_NULL_TOKENS, type=candidates.type)),
    )
    blank_idx = short_idx[_np_mask(blank)]
    if not len(blank_idx):
        return stripped
    keep = np.ones(len(stripped), dtype=bool)
    keep[blank_idx] = False
    return pc.if_else(pa.array(keep), stripped, pa.scalar(None, stripped.type))


def _parse_number(text: pa.ChunkedArray, drop_chars: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Parse stripped text to float64. ``drop_chars`` is a regex class of characters removed first ("$", ",").

    Returns float64 values (NaN where missing or unparseable) and a mask of present-but-unparseable values.
    Plain numbers are cast directly; only the rest goes through character removal.
    """
    n = len(text)
    plain = _np_mask(pc.match_substring_regex(text, _NUMBER))
    if plain.all():
        out = _float_np(pc.cast(text, pa.float64()))
        bad = np.zeros(n, dtype=bool)
    else:
        out = np.full(n, np.nan)
        plain_idx = np.flatnonzero(plain)
        out[plain_idx] = _float_np(pc.cast(text.take(pa.array(plain_idx)), pa.float64()))
        bad = _np_mask(pc.is_valid(text)) & ~plain
        if drop_chars and bad.any():
            other_idx = np.flatnonzero(bad)
            fixed = pc.replace_substring_regex(text.take(pa.array(other_idx)), drop_chars, "")
            ok = _np_mask(pc.match_substring_regex(fixed, _NUMBER))
            out[other_idx[ok]] = _float_np(pc.cast(pc.filter(fixed, pa.array(ok)), pa.float64()))
            bad[other_idx[ok]] = False
    overflow = np.isinf(out)  # "1e400" or 400 digits: not a usable number
    if overflow.any():
        out[overflow] = np.nan
        bad |= overflow
    return out, bad


def _float_np(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.array(pc.fill_null(values, np.nan).to_numpy(), dtype=np.float64)  # writable copy


def parse_timestamps(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Parse stripped ISO-8601 text to ``timestamp[ns, UTC]`` (null if unparseable).

    Accepts ``Z``/``UTC``/``+hh:mm``/``+hhmm``/``+hh`` zones (no zone = UTC), ``T``/space separators,
    fractional seconds, minutes-only times and bare dates. The common ``%Y-%m-%dT%H:%M:%S%z`` form is
    parsed in one fast ``strptime`` pass; only what is still unparsed goes through the general regex route.
    """
    fast = pc.strptime(text, _ISO_FAST, unit="ns", error_is_null=True)
    # strptime's %z silently ignores a bare "+hh" zone: "YYYY-MM-DDTHH:MM:SS+hh" (22 chars) takes the
    # general route
    remaining = pc.and_(pc.is_valid(text), pc.or_(pc.is_null(fast), pc.equal(pc.binary_length(text), 22)))
    if not pc.any(remaining).as_py():
        return fast
    fast = fast.combine_chunks() if isinstance(fast, pa.ChunkedArray) else fast
    remaining = remaining.combine_chunks() if isinstance(remaining, pa.ChunkedArray) else remaining
    general = _parse_general(pc.filter(text, remaining))
    return pa.chunked_array([pc.replace_with_mask(fast, remaining, general)])


def _parse_general(text: pa.ChunkedArray) -> pa.Array:
    parts = pc.extract_regex(text.cast(pa.string()), _ISO_GENERAL)
    parts = parts.combine_chunks() if isinstance(parts, pa.ChunkedArray) else parts
    date, time, frac, zone = (parts.field(k) for k in ("date", "time", "frac", "zone"))
    time = pc.if_else(
        pc.equal(pc.binary_length(time), 0),
        "00:00:00",
        pc.if_else(pc.less_equal(pc.binary_length(time), 5), pc.binary_join_element_wise(time, ":00", ""), time),
    )
    time = pc.utf8_lpad(time, 8, "0")  # "3:04:05" -> "03:04:05"
    zone = pc.if_else(pc.is_in(zone, value_set=pa.array(["", "Z", "z", "UTC"])), "+0000", zone)
    zone = pc.if_else(pc.equal(pc.binary_length(zone), 3), pc.binary_join_element_wise(zone, "00", ""), zone)
    canonical = pc.binary_join_element_wise(date, "T", time, zone, "")
    parsed = pc.strptime(canonical, _ISO_FAST, unit="ns", error_is_null=True)
    nanos = pc.cast(pc.utf8_rpad(frac, 9, "0"), pa.int64())
    as_int = pc.add(pc.cast(parsed, pa.int64()), nanos)
    return pc.cast(as_int, _TS)


def _ns(values: pd.Series) -> np.ndarray:
    """datetime-like Series -> int64 ns since epoch in UTC (NaT -> int64 min)."""
    if not (isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype)):
        values = pd.to_datetime(values, utc=True)
    if values.dt.unit != "ns":
        values = values.dt.as_unit("ns")
    return np.asarray(values.array.asi8, dtype=np.int64)  # naive values count as UTC


def _ts_ns(ts: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.cast(ts, pa.int64()), _NAT).to_numpy())


def _to_frame(columns: dict[str, pa.ChunkedArray | pa.Array]) -> pd.DataFrame:
    table = pa.table(columns)
    return table.to_pandas(
        types_mapper=lambda t: _STRING if t in (pa.string(), pa.large_string()) else None, split_blocks=True
    )


# ----------------------------------------------------------------------------------------------------
# region


def normalise_region(values: pd.Series) -> pd.Series:
    """Strip, collapse inner whitespace, Title Case; missing/blank -> "Unknown". Keeps the index."""
    text = _clean_text(_arrow(values))
    text = pc.utf8_title(pc.replace_substring_regex(text, r"\s+", " "))
    text = pc.fill_null(text, UNKNOWN_REGION)
    return pd.Series(pd.arrays.ArrowStringArray(text.cast(pa.large_string())), index=values.index, name=values.name)


def normalise_region_value(value: str | None) -> str:
    """:func:`normalise_region` for one value (same code path, so the API and the pipeline always agree)."""
    return str(normalise_region(pd.Series([value], dtype=object)).iloc[0])


# ----------------------------------------------------------------------------------------------------
# lineage, ordering and quarantine building


class _Rows:
    """Lineage of the raw rows: file, row, arrival (ns) and the order used for "latest wins"."""

    def __init__(self, raw: pd.DataFrame, arrived_at: pd.Series | None = None) -> None:
        n = len(raw)
        self.n = n
        if "source_file" in raw.columns:
            self.file = _arrow(raw["source_file"])
        else:
            self.file = pa.chunked_array([pa.repeat(pa.scalar("", pa.string()), n)])
        if "source_row" in raw.columns:
            self.row = raw["source_row"].to_numpy(dtype=np.int64, na_value=0)
        else:
            self.row = np.arange(1, n + 1, dtype=np.int64)
        self.arrived = self._arrival(raw, arrived_at)

    def _arrival(self, raw: pd.DataFrame, arrived_at: pd.Series | None) -> np.ndarray:
        if arrived_at is None:
            if "arrived_at" not in raw.columns:
                return np.full(self.n, _NAT, dtype=np.int64)
            return _ns(raw["arrived_at"])
        if len(arrived_at) == self.n and arrived_at.index.equals(raw.index):
            return _ns(arrived_at)
        # otherwise: arrival per source_file (index = file name); files not in the index have no arrival
        names = pa.array([str(f) for f in arrived_at.index], type=pa.string())
        where = pc.fill_null(pc.index_in(self.file.cast(pa.string()), value_set=names), len(names))
        return np.append(_ns(arrived_at), _NAT)[np.asarray(where.to_numpy(), dtype=np.int64)]

    def file_rank(self, idx: np.ndarray) -> np.ndarray:
        """Sort rank of source_file for the rows ``idx`` (few distinct files: cheap)."""
        files = self.file.take(pa.array(idx))
        uniques = pc.unique(files)
        order = pc.array_sort_indices(uniques)
        ranked = uniques.take(order)
        return np.asarray(pc.index_in(files, value_set=ranked).fill_null(-1).to_numpy(), dtype=np.int64)


def _codes(text: pa.ChunkedArray) -> np.ndarray:
    """Integer code per row (equal strings share a code; null -> -1), via one Arrow hash pass."""
    encoded = pc.dictionary_encode(text)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return np.empty(0, dtype=np.int32)
    # a chunked dictionary_encode shares one memo table, so indices are comparable across chunks
    return np.concatenate([np.asarray(pc.fill_null(c.indices, -1).to_numpy(), dtype=np.int32) for c in chunks])


def _latest_wins(rows: _Rows, codes: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Among rows ``candidates`` (positions), find those superseded by a later row with the same key code.

    Returns (duplicate positions, position of the kept row for each duplicate). Only keys that occur more
    than once are sorted, so the cost is one bincount when there are few duplicates.
    """
    empty = np.empty(0, dtype=np.int64)
    cand_codes = codes[candidates]
    present = cand_codes >= 0
    if present.sum() < 2:
        return empty, empty
    counts = np.bincount(cand_codes[present])
    multi = present & (counts[np.where(present, cand_codes, 0)] > 1)
    if not multi.any():
        return empty, empty
    pos = candidates[multi]
    grp = cand_codes[multi]
    order = np.lexsort((rows.row[pos], rows.file_rank(pos), rows.arrived[pos], grp))
    pos, grp = pos[order], grp[order]
    is_last = np.append(grp[1:] != grp[:-1], True)
    group_of = np.concatenate(([0], np.cumsum(is_last[:-1])))
    kept = pos[np.flatnonzero(is_last)][group_of]
    return pos[~is_last], kept[~is_last]


def _quarantine_part(
    rows: _Rows,
    idx: np.ndarray,
    record_id: pa.Array | pa.ChunkedArray,
    field: str | None,
    value: pa.Array | pa.ChunkedArray | None,
    reason: pa.Array | str,
    action: str,
) -> pa.Table:
    """Quarantine rows for raw positions ``idx``; ``record_id``/``value``/``reason`` are already aligned."""
    n = len(idx)
    take = pa.array(idx, type=pa.int64())
    return pa.table(
        {
            "source_file": rows.file.take(take).cast(pa.string()),
            "source_row": pa.array(rows.row[idx], type=pa.int64()),
            "record_id": record_id.cast(pa.string()),
            "field": pa.repeat(pa.scalar(field, pa.string()), n),
            "value": value.cast(pa.string()) if value is not None else pa.nulls(n, pa.string()),
            "reason": pa.repeat(pa.scalar(reason), n) if isinstance(reason, str) else reason.cast(pa.string()),
            "action": pa.repeat(pa.scalar(action), n),
        },
        schema=_QUARANTINE_SCHEMA,
    )


def _sentence(*parts: str | pa.ChunkedArray | pa.Array) -> pa.Array:
    """Element-wise concatenation of literal strings and (short-cut) value arrays."""
    args = [
        pa.scalar(p, pa.string())
        if isinstance(p, str)
        else pc.utf8_slice_codeunits(p.cast(pa.string()), 0, _REASON_VALUE_CHARS)
        for p in parts
    ]
    out = pc.binary_join_element_wise(*args, "")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _quarantine_frame(parts: list[pa.Table]) -> pd.DataFrame:
    parts = [p for p in parts if p.num_rows]
    table = pa.concat_tables(parts) if parts else _QUARANTINE_SCHEMA.empty_table()
    table = table.sort_by([("source_file", "ascending"), ("source_row", "ascending")])
    return _to_frame({c: table.column(c) for c in QUARANTINE_COLUMNS})


def _take(arr: pa.ChunkedArray, idx: np.ndarray) -> pa.ChunkedArray:
    return arr.take(pa.array(idx, type=pa.int64()))


def _utc_text(ts: pa.ChunkedArray | pa.Array) -> pa.Array:
    out = pc.strftime(pc.cast(ts, pa.timestamp("s", tz="UTC"), safe=False), "%Y-%m-%dT%H:%M:%SZ")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _arrived_array(rows: _Rows, idx: np.ndarray) -> pa.Array:
    return pa.array(rows.arrived[idx], type=pa.int64()).cast(_TS)


def _column(raw: pd.DataFrame, name: str) -> pa.ChunkedArray:
    if name in raw.columns:
        return _arrow(raw[name])
    return pa.chunked_array([pa.nulls(len(raw), pa.large_string())])


# ----------------------------------------------------------------------------------------------------
# customers


def clean_customers(raw: pd.DataFrame) -> CleanResult:
    """Typed, de-duplicated customers. Only rows without customer_id are dropped; bad fields become missing.

    Output: customer_id (string, unique), age (float64, NaN outside [AGE_MIN, AGE_MAX]), region (normalised),
    signup_date (datetime64[ns, UTC]; NaT if unparseable or after the drop arrived), loyalty_points (float64,
    NaN if negative). Duplicate ids: the latest record wins as a whole. Missing values are not quarantined;
    impossible or unparseable ones are (action ``value_nulled``).
    """
    rows = _Rows(raw)
    raw_cid = _column(raw, "customer_id")
    cid = _clean_text(raw_cid)
    parts: list[pa.Table] = []

    no_id = _np_mask(pc.is_null(cid))
    no_id_idx = np.flatnonzero(no_id)
    parts.append(
        _quarantine_part(
            rows,
            no_id_idx,
            _take(cid, no_id_idx),
            "customer_id",
            _take(raw_cid, no_id_idx),
            "customer_id is missing",
            ROW_DROPPED,
        )
    )
    dup_idx, kept_for_dup = _latest_wins(rows, _codes(cid), np.flatnonzero(~no_id))
    parts.append(_duplicate_part(rows, dup_idx, kept_for_dup, cid, "customer_id"))
    keep = ~no_id
    keep[dup_idx] = False
    kept = np.flatnonzero(keep)

    k_cid = _take(cid, kept)
    fields = {c: _take(_column(raw, c), kept) for c in ("age", "loyalty_points", "signup_date", "region")}
    text = {c: _clean_text(v) for c, v in fields.items() if c != "region"}
    age, age_bad = _parse_number(text["age"], None)
    age_out = (age < AGE_MIN) | (age > AGE_MAX)
    points, points_bad = _parse_number(text["loyalty_points"], r"[,\s]")
    points_neg = points < 0
    signup = parse_timestamps(text["signup_date"])
    signup_bad = _np_mask(pc.and_(pc.is_null(signup), pc.is_valid(text["signup_date"])))
    arrived = rows.arrived[kept]
    signup_future = (_ts_ns(signup) > arrived) & (arrived != _NAT)

    def arrived_text(local: np.ndarray) -> pa.Array:
        return _utc_text(_arrived_array(rows, kept[local]))

    checks = [  # (field, mask over kept rows, text before the value, parts after it)
        ("age", age_bad, "age '", ("' is not a number",)),
        ("age", age_out, "age ", (f" outside [{AGE_MIN}, {AGE_MAX}]",)),
        ("loyalty_points", points_bad, "loyalty_points '", ("' is not a number",)),
        ("loyalty_points", points_neg, "loyalty_points ", (" is negative",)),
        ("signup_date", signup_bad, "signup_date '", ("' is not a valid date",)),
        ("signup_date", signup_future, "signup_date ", (" is after the drop arrived (", arrived_text, ")")),
    ]
    for name, mask, before, after in checks:
        local = np.flatnonzero(mask)
        if not len(local):
            continue
        tail = [w if isinstance(w, str) else w(local) for w in after]
        reason = _sentence(before, _take(text[name], local), *tail)
        parts.append(
            _quarantine_part(
                rows, kept[local], _take(k_cid, local), name, _take(fields[name], local), reason, VALUE_NULLED
            )
        )

    age[age_out] = np.nan
    points[points_neg] = np.nan
    signup = pc.if_else(pa.array(signup_future), pa.scalar(None, _TS), signup.combine_chunks())
    clean = _to_frame(
        {
            "customer_id": k_cid,
            "age": pa.array(age),
            "region": _arrow(normalise_region(_series(fields["region"]))),
            "signup_date": signup,
            "loyalty_points": pa.array(points),
        }
    )
    quarantine = _quarantine_frame(parts)
    stats = {
        "rows_read": rows.n,
        "rows_clean": len(clean),
        "rows_dropped": len(no_id_idx),
        "duplicates": len(dup_idx),
        "values_nulled": int((quarantine["action"] == VALUE_NULLED).sum()),
    }
    return CleanResult(clean=clean, quarantine=quarantine, stats=stats)


def _series(arr: pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.large_string())))


def _duplicate_part(
    rows: _Rows, dup_idx: np.ndarray, kept_for_dup: np.ndarray, key: pa.ChunkedArray, name: str
) -> pa.Table:
    if not len(dup_idx):
        return _QUARANTINE_SCHEMA.empty_table()
    reason = _sentence(
        f"{name} ",
        _take(key, dup_idx),
        " is repeated; the later record (",
        _take(rows.file, kept_for_dup),
        " row ",
        pa.array(rows.row[kept_for_dup]).cast(pa.string()),
        ") was kept",
    )
    ids = _take(key, dup_idx)
    return _quarantine_part(rows, dup_idx, ids, name, ids, reason, DUPLICATE_DROPPED)


# ----------------------------------------------------------------------------------------------------
# transactions

# Drop reasons in priority order (a row is quarantined once, with the first that applies) and their field.
_TX_CHECKS: tuple[tuple[str, str], ...] = (
    ("transaction_id_missing", "transaction_id"),
    ("customer_id_missing", "customer_id"),
    ("customer_unknown", "customer_id"),
    ("amount_missing", "amount"),
    ("amount_unparseable", "amount"),
    ("amount_not_positive", "amount"),
    ("timestamp_missing", "timestamp"),
    ("timestamp_unparseable", "timestamp"),
    ("timestamp_after_arrival", "timestamp"),
    ("status_missing", "status"),
    ("status_unknown", "status"),
)


def clean_transactions(
    raw: pd.DataFrame, known_customer_ids: pd.Series, arrived_at: pd.Series | None = None
) -> CleanResult:
    """Typed, valid, de-duplicated transactions; every dropped row goes to the quarantine with one reason.

    ``arrived_at`` (when the drop landed) defaults to ``raw["arrived_at"]``; if given it is either a Series
    aligned with ``raw`` (same index) or a Series indexed by ``source_file``. Rows with a timestamp after
    their arrival are dropped (no check where the arrival is unknown). Duplicate transaction_ids are
    resolved among the rows that passed every check: the latest (arrived_at, source_file, source_row) wins.
    Output: transaction_id, customer_id, amount (float64 > 0), timestamp (datetime64[ns, UTC]),
    payment_method (lower case, missing -> "unknown"), status (one of TRANSACTION_STATUSES).
    """
    rows = _Rows(raw, arrived_at)
    raw_cols = {c: _column(raw, c) for c in ("transaction_id", "customer_id", "amount", "timestamp", "status")}
    known = _arrow(known_customer_ids)
    # Independent per-column work runs in threads: pyarrow kernels release the GIL (the hash passes dominate).
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        tid_job = pool.submit(_text_and_codes, raw_cols["transaction_id"])
        cid_job = pool.submit(_text_and_known, raw_cols["customer_id"], known)
        amount_job = pool.submit(_text_and_number, raw_cols["amount"], r"[$,\s]")
        ts_job = pool.submit(_text_and_time, raw_cols["timestamp"])
        status_job = pool.submit(_clean_text, raw_cols["status"])
        payment_job = pool.submit(lambda: pc.utf8_lower(_clean_text(_column(raw, "payment_method"))))
        (tid, tid_codes), (cid, cid_known) = tid_job.result(), cid_job.result()
        amount_text, amount, amount_bad = amount_job.result()
        ts_text, ts, ts_ns = ts_job.result()
        status_text, payment = status_job.result(), payment_job.result()
    status = pc.utf8_lower(status_text)
    text = {
        "transaction_id": tid,
        "customer_id": cid,
        "amount": amount_text,
        "timestamp": ts_text,
        "status": status_text,
    }

    masks = {
        "transaction_id_missing": lambda: tid_codes < 0,
        "customer_id_missing": lambda: _np_mask(pc.is_null(cid)),
        "customer_unknown": lambda: ~cid_known,
        "amount_missing": lambda: _np_mask(pc.is_null(amount_text)),
        "amount_unparseable": lambda: amount_bad,
        "amount_not_positive": lambda: amount <= 0,
        "timestamp_missing": lambda: _np_mask(pc.is_null(ts_text)),
        "timestamp_unparseable": lambda: ts_ns == _NAT,
        "timestamp_after_arrival": lambda: (ts_ns > rows.arrived) & (rows.arrived != _NAT),
        "status_missing": lambda: _np_mask(pc.is_null(status)),
        "status_unknown": lambda: ~_np_mask(pc.is_in(status, value_set=pa.array(TRANSACTION_STATUSES))),
    }
    reason_code = np.zeros(rows.n, dtype=np.int8)
    for code, (check, _) in enumerate(_TX_CHECKS, start=1):
        reason_code[masks[check]() & (reason_code == 0)] = code
    keep = reason_code == 0
    dup_idx, kept_for_dup = _latest_wins(rows, tid_codes, np.flatnonzero(keep))
    keep[dup_idx] = False
    take = pa.array(np.flatnonzero(keep), type=pa.int64())

    parts = [
        _tx_drop_part(rows, np.flatnonzero(reason_code == code), check, field, tid, raw_cols[field], text[field])
        for code, (check, field) in enumerate(_TX_CHECKS, start=1)
    ]
    parts.append(_duplicate_part(rows, dup_idx, kept_for_dup, tid, "transaction_id"))

    clean = _to_frame(
        {
            "transaction_id": tid.take(take),
            "customer_id": cid.take(take),
            "amount": pa.array(amount[keep]),
            "timestamp": ts.take(take),
            "payment_method": pc.fill_null(payment.take(take), UNKNOWN_PAYMENT_METHOD),
            "status": status.take(take),
        }
    )
    stats = {
        "rows_read": rows.n,
        "rows_clean": len(clean),
        "rows_dropped": int(np.count_nonzero(reason_code)),
        "duplicates": len(dup_idx),
        "values_nulled": 0,
    }
    return CleanResult(clean=clean, quarantine=_quarantine_frame(parts), stats=stats)


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _text_and_codes(raw: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    text = _clean_text(raw)
    return text, _codes(text)


def _text_and_known(raw: pa.ChunkedArray, known: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    text = _clean_text(raw)
    known_set = pc.unique(_clean_text(known).cast(text.type).combine_chunks())
    return text, _np_mask(pc.is_in(text, value_set=known_set))


def _text_and_number(raw: pa.ChunkedArray, drop_chars: str) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray]:
    text = _clean_text(raw)
    return (text, *_parse_number(text, drop_chars))


def _text_and_time(raw: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray, np.ndarray]:
    text = _clean_text(raw)
    ts = parse_timestamps(text)
    return text, ts, _ts_ns(ts)


def _tx_drop_part(
    rows: _Rows,
    idx: np.ndarray,
    check: str,
    field: str,
    tid: pa.ChunkedArray,
    raw_value: pa.ChunkedArray,
    text: pa.ChunkedArray,
) -> pa.Table:
    """Quarantine rows (action row_dropped) for one drop reason; ``text`` is the stripped value."""
    if not len(idx):
        return _QUARANTINE_SCHEMA.empty_table()
    value = _take(text, idx)
    if check.endswith("_missing"):
        reason: pa.Array | str = f"{field} is missing"
    elif check == "timestamp_after_arrival":
        arrived = _utc_text(_arrived_array(rows, idx))
        reason = _sentence("timestamp ", value, " is after the drop arrived (", arrived, ")")
    else:
        before, after = {
            "customer_unknown": ("customer_id '", "' is not a known customer"),
            "amount_unparseable": ("amount '", "' is not a number"),
            "amount_not_positive": ("amount ", " is not positive"),
            "timestamp_unparseable": ("timestamp '", "' is not a valid ISO-8601 time"),
            "status_unknown": ("status '", f"' is not one of {', '.join(TRANSACTION_STATUSES)}"),
        }[check]
        reason = _sentence(before, value, after)
    return _quarantine_part(rows, idx, _take(tid, idx), field, _take(raw_value, idx), reason, ROW_DROPPED)
