"""Cleaning of raw customers/transactions into typed frames plus a quarantine of rejected rows and values.

Everything is vectorised with pyarrow compute on the Arrow buffers behind ``string[pyarrow]`` columns
(no object dtype, no per-row Python). The quarantine is built only from the rows that failed a check.
Transactions are checked ``TX_CHUNK_ROWS`` rows at a time, so the working memory beyond the input and the
output is one chunk's temporaries plus 8 bytes per surviving row (the duplicate-id hashes). ``source_file``
may be a categorical (see :func:`contract.raw_to_frame`); the quarantine always holds it as text.

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

from hvbuyer_assets.core.contract import TRANSACTION_COLUMNS, TRANSACTION_STATUSES

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
    """Lineage of the raw rows: file (a code per row into a few names), row, arrival (ns) and the order used
    for "latest wins". A categorical ``source_file`` is used as is (no per-row strings)."""

    def __init__(self, raw: pd.DataFrame, arrived_at: pd.Series | None = None) -> None:
        n = len(raw)
        self.n = n
        self.file_codes, self.file_names = _file_codes(raw, n)
        if "source_row" not in raw.columns:
            self.row = np.arange(1, n + 1, dtype=np.int64)
        elif raw["source_row"].dtype == np.int64:
            self.row = raw["source_row"].to_numpy()  # a view, no copy
        else:
            self.row = raw["source_row"].to_numpy(dtype=np.int64, na_value=0)
        self.arrived = self._arrival(raw, arrived_at)
        # rank of each file name in sort order; a missing file (code -1: the extra last slot) sorts last
        order = np.asarray(pc.array_sort_indices(self.file_names).to_numpy(), dtype=np.int64)
        self._rank = np.empty(len(order) + 1, dtype=np.int64)
        self._rank[order] = np.arange(len(order))
        self._rank[-1] = len(order)

    def _arrival(self, raw: pd.DataFrame, arrived_at: pd.Series | None) -> np.ndarray:
        if arrived_at is None:
            if "arrived_at" not in raw.columns:
                return np.full(self.n, _NAT, dtype=np.int64)
            return _ns(raw["arrived_at"])
        if len(arrived_at) == self.n and arrived_at.index.equals(raw.index):
            return _ns(arrived_at)
        # otherwise: arrival per source_file (index = file name); files not in the index have no arrival
        names = pa.array([str(f) for f in arrived_at.index], type=pa.string())
        where = pc.fill_null(pc.index_in(self.file_names, value_set=names), len(names))
        per_file = np.append(_ns(arrived_at), _NAT)[np.asarray(where.to_numpy(), dtype=np.int64)]
        return np.append(per_file, _NAT)[self.file_codes]  # code -1 (no file) -> the appended NaT

    def file(self, idx: np.ndarray) -> pa.Array:
        """source_file of the rows ``idx`` (null where missing)."""
        codes = self.file_codes[idx]
        return self.file_names.take(pa.array(codes, mask=codes < 0))

    def file_rank(self, idx: np.ndarray) -> np.ndarray:
        """Sort rank of source_file for the rows ``idx``."""
        return self._rank[self.file_codes[idx]]


def _file_codes(raw: pd.DataFrame, n: int) -> tuple[np.ndarray, pa.Array]:
    """``source_file`` as (code per row, -1 where missing; the distinct names as a string array)."""
    if "source_file" not in raw.columns:
        return np.zeros(n, dtype=np.int8), pa.array([""], type=pa.string())
    files = raw["source_file"]
    if isinstance(files.dtype, pd.CategoricalDtype):
        names = pa.array([str(c) for c in files.cat.categories], type=pa.string())
        return files.cat.codes.to_numpy(), names
    encoded = pc.dictionary_encode(_arrow(files)).unify_dictionaries()
    if not encoded.num_chunks:
        return np.empty(0, dtype=np.int32), pa.array([], type=pa.string())
    codes = [np.asarray(pc.fill_null(c.indices, -1).to_numpy(), dtype=np.int32) for c in encoded.chunks]
    return np.concatenate(codes), encoded.chunk(0).dictionary.cast(pa.string())


def _codes(text: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Integer code per row (equal strings share a code; null -> -1), via one Arrow hash pass."""
    encoded = pc.dictionary_encode(text)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return np.empty(0, dtype=np.int32)
    # a chunked dictionary_encode shares one memo table, so indices are comparable across chunks
    return np.concatenate([np.asarray(pc.fill_null(c.indices, -1).to_numpy(), dtype=np.int32) for c in chunks])


def _latest_wins(rows: _Rows, pos: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Among the raw rows ``pos`` with key codes ``codes`` (aligned; -1 = no key), find those superseded by a
    later row with the same key.

    Returns (indices into ``pos`` of the superseded rows, index into ``pos`` of the kept row for each). Only
    keys that occur more than once are sorted, so the cost is one bincount when there are few duplicates.
    """
    empty = np.empty(0, dtype=np.int64)
    present = codes >= 0
    if present.sum() < 2:
        return empty, empty
    counts = np.bincount(codes[present])
    multi = np.flatnonzero(present & (counts[np.where(present, codes, 0)] > 1))
    if not len(multi):
        return empty, empty
    grp, at = codes[multi], pos[multi]
    order = np.lexsort((rows.row[at], rows.file_rank(at), rows.arrived[at], grp))
    multi, grp = multi[order], grp[order]
    is_last = np.append(grp[1:] != grp[:-1], True)
    group_of = np.concatenate(([0], np.cumsum(is_last[:-1])))
    kept = multi[np.flatnonzero(is_last)][group_of]
    return multi[~is_last], kept[~is_last]


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
    return pa.table(
        {
            "source_file": rows.file(idx),
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
    with_id = np.flatnonzero(~no_id)
    dup, kept_of_dup = _latest_wins(rows, with_id, _codes(cid)[with_id])
    dup_idx, kept_for_dup = with_id[dup], with_id[kept_of_dup]
    parts.append(_duplicate_part(rows, dup_idx, kept_for_dup, _take(cid, dup_idx), "customer_id"))
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
    rows: _Rows, dup_idx: np.ndarray, kept_for_dup: np.ndarray, ids: pa.ChunkedArray | pa.Array, name: str
) -> pa.Table:
    """Quarantine rows (action duplicate_dropped) for the superseded raw rows ``dup_idx``; ``ids`` are their
    keys and ``kept_for_dup`` the raw row kept instead of each."""
    if not len(dup_idx):
        return _QUARANTINE_SCHEMA.empty_table()
    reason = _sentence(
        f"{name} ",
        ids,
        " is repeated; the later record (",
        rows.file(kept_for_dup),
        " row ",
        pa.array(rows.row[kept_for_dup]).cast(pa.string()),
        ") was kept",
    )
    return _quarantine_part(rows, dup_idx, ids, name, ids, reason, DUPLICATE_DROPPED)


# ----------------------------------------------------------------------------------------------------
# transactions

TX_CHUNK_ROWS = 1 << 20
"""Raw rows validated at a time by :func:`clean_transactions`: only one chunk's stripped text copies and
numpy temporaries exist at once, so the working memory does not grow with the input."""

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
_TX_TEXT_COLUMNS = ("transaction_id", "customer_id", "payment_method", "status")


@dataclass
class _TxSurvivors:
    """The rows of one chunk that passed every check, typed as in the output, plus what de-duplication
    needs: their raw positions (``start + local``) and a 64-bit hash of each transaction_id."""

    start: int
    local: np.ndarray  # int32 positions within the chunk
    transaction_id: pa.ChunkedArray
    customer_id: pa.ChunkedArray
    amount: np.ndarray  # float64
    timestamp: np.ndarray  # int64 ns since the epoch (UTC)
    payment_method: pa.ChunkedArray
    status: pa.ChunkedArray
    hashes: np.ndarray  # uint64, see _string_hashes (emptied once duplicates are resolved)

    def __len__(self) -> int:
        return len(self.local)

    @property
    def pos(self) -> np.ndarray:
        return self.start + self.local.astype(np.int64)

    def without(self, drop: np.ndarray) -> _TxSurvivors:
        """These survivors except those at ``drop`` (indices into this chunk's survivors)."""
        keep = np.ones(len(self), dtype=bool)
        keep[drop] = False
        mask = pa.array(keep)
        return _TxSurvivors(
            start=self.start,
            local=self.local[keep],
            transaction_id=self.transaction_id.filter(mask),
            customer_id=self.customer_id.filter(mask),
            amount=self.amount[keep],
            timestamp=self.timestamp[keep],
            payment_method=self.payment_method.filter(mask),
            status=self.status.filter(mask),
            hashes=self.hashes[keep] if len(self.hashes) == len(self) else self.hashes,
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

    Rows are checked ``TX_CHUNK_ROWS`` at a time, keeping only each chunk's typed survivors and quarantine
    rows; duplicates are then resolved over all survivors (exactly, via a hash pre-filter).
    """
    rows = _Rows(raw, arrived_at)
    columns = {c: _column(raw, c) for c in TRANSACTION_COLUMNS}
    known = pc.unique(_clean_text(_arrow(known_customer_ids)).combine_chunks())
    dropped: list[list[pa.Table]] = [[] for _ in _TX_CHECKS]  # per check, then per chunk: the original order
    survivors: list[_TxSurvivors] = []
    step = max(1, int(TX_CHUNK_ROWS))
    # Independent per-column work runs in threads: pyarrow kernels release the GIL (the hash passes dominate).
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for start in range(0, rows.n, step):
            chunk = {c: arr.slice(start, step) for c, arr in columns.items()}
            survivors.append(_clean_tx_chunk(pool, rows, start, chunk, known, dropped))
    duplicates, survivors = _drop_duplicate_ids(rows, survivors)
    drop_parts = [part for per_check in dropped for part in per_check]
    clean = _tx_frame(survivors)
    stats = {
        "rows_read": rows.n,
        "rows_clean": len(clean),
        "rows_dropped": sum(part.num_rows for part in drop_parts),
        "duplicates": duplicates.num_rows,
        "values_nulled": 0,
    }
    return CleanResult(clean=clean, quarantine=_quarantine_frame([*drop_parts, duplicates]), stats=stats)


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _clean_tx_chunk(
    pool: ThreadPoolExecutor,
    rows: _Rows,
    start: int,
    raw_cols: dict[str, pa.ChunkedArray],
    known: pa.Array,
    dropped: list[list[pa.Table]],
) -> _TxSurvivors:
    """Check the raw rows ``start, start + 1, ...`` (``raw_cols`` is their slice of every column).

    Returns the typed survivors; the quarantine rows go to ``dropped[i]`` for the i-th of ``_TX_CHECKS``.
    """
    tid_job = pool.submit(_text_and_hashes, raw_cols["transaction_id"])
    cid_job = pool.submit(_text_and_known, raw_cols["customer_id"], known)
    amount_job = pool.submit(_text_and_number, raw_cols["amount"], r"[$,\s]")
    ts_job = pool.submit(_text_and_time, raw_cols["timestamp"])
    status_job = pool.submit(_text_and_lower, raw_cols["status"])
    payment_job = pool.submit(_text_and_lower, raw_cols["payment_method"])
    (tid, tid_hashes), (cid, cid_known) = tid_job.result(), cid_job.result()
    amount_text, amount, amount_bad = amount_job.result()
    ts_text, ts_ns = ts_job.result()
    (status_text, status), (_, payment) = status_job.result(), payment_job.result()
    arrived = rows.arrived[start : start + len(tid)]
    text = {
        "transaction_id": tid,
        "customer_id": cid,
        "amount": amount_text,
        "timestamp": ts_text,
        "status": status_text,
    }

    masks = {
        "transaction_id_missing": lambda: _np_mask(pc.is_null(tid)),
        "customer_id_missing": lambda: _np_mask(pc.is_null(cid)),
        "customer_unknown": lambda: ~cid_known,
        "amount_missing": lambda: _np_mask(pc.is_null(amount_text)),
        "amount_unparseable": lambda: amount_bad,
        "amount_not_positive": lambda: amount <= 0,
        "timestamp_missing": lambda: _np_mask(pc.is_null(ts_text)),
        "timestamp_unparseable": lambda: ts_ns == _NAT,
        "timestamp_after_arrival": lambda: (ts_ns > arrived) & (arrived != _NAT),
        "status_missing": lambda: _np_mask(pc.is_null(status)),
        "status_unknown": lambda: ~_np_mask(pc.is_in(status, value_set=pa.array(TRANSACTION_STATUSES))),
    }
    reason_code = np.zeros(len(tid), dtype=np.int8)
    for code, (check, _) in enumerate(_TX_CHECKS, start=1):
        reason_code[masks[check]() & (reason_code == 0)] = code
    for code, (check, name) in enumerate(_TX_CHECKS, start=1):
        local = np.flatnonzero(reason_code == code)
        dropped[code - 1].append(_tx_drop_part(rows, start, local, check, name, tid, raw_cols, text))

    keep = np.flatnonzero(reason_code == 0)
    take = pa.array(keep, type=pa.int64())
    return _TxSurvivors(
        start=start,
        local=keep.astype(np.int32),
        transaction_id=tid.take(take),
        customer_id=cid.take(take),
        amount=amount[keep],
        timestamp=ts_ns[keep],
        payment_method=pc.fill_null(payment.take(take), UNKNOWN_PAYMENT_METHOD),
        status=status.take(take),
        hashes=tid_hashes[keep],
    )


def _text_and_hashes(raw: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    text = _clean_text(raw)
    return text, _string_hashes(text)


def _text_and_known(raw: pa.ChunkedArray, known: pa.Array) -> tuple[pa.ChunkedArray, np.ndarray]:
    text = _clean_text(raw)
    value_set = known if known.type == text.type else known.cast(text.type)
    return text, _np_mask(pc.is_in(text, value_set=value_set))


def _text_and_number(raw: pa.ChunkedArray, drop_chars: str) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray]:
    text = _clean_text(raw)
    return (text, *_parse_number(text, drop_chars))


def _text_and_time(raw: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    text = _clean_text(raw)
    return text, _ts_ns(parse_timestamps(text))


def _text_and_lower(raw: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    text = _clean_text(raw)
    return text, pc.utf8_lower(text)


def _tx_drop_part(
    rows: _Rows,
    start: int,
    local: np.ndarray,
    check: str,
    field: str,
    tid: pa.ChunkedArray,
    raw_cols: dict[str, pa.ChunkedArray],
    text: dict[str, pa.ChunkedArray],
) -> pa.Table:
    """Quarantine rows (action row_dropped) for one drop reason; ``local`` indexes the chunk starting at raw
    row ``start`` (``tid``, ``raw_cols`` and the stripped ``text`` are that chunk's)."""
    if not len(local):
        return _QUARANTINE_SCHEMA.empty_table()
    idx = start + local
    value = _take(text[field], local)
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
    raw_value = _take(raw_cols[field], local)
    return _quarantine_part(rows, idx, _take(tid, local), field, raw_value, reason, ROW_DROPPED)


def _drop_duplicate_ids(rows: _Rows, survivors: list[_TxSurvivors]) -> tuple[pa.Table, list[_TxSurvivors]]:
    """Resolve repeated transaction_ids over all chunks' survivors: the latest row wins.

    Only survivors whose id hash occurs more than once are compared (exactly, by their text), so the cost
    is a sort of 8-byte hashes rather than a hash table of every id. Returns the quarantine rows of the
    superseded copies and the survivors without them.
    """
    candidates = _repeated_hashes([s.hashes for s in survivors])
    for i in range(len(survivors)):
        survivors[i].hashes = np.empty(0, dtype=np.uint64)  # no longer needed
    if not sum(len(c) for c in candidates):
        return _QUARANTINE_SCHEMA.empty_table(), survivors
    owner = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c in enumerate(candidates)])
    local = np.concatenate(candidates)
    pos = np.concatenate([s.pos[c] for s, c in zip(survivors, candidates, strict=True)])
    ids = pa.chunked_array(
        [
            piece.cast(pa.large_string())
            for s, c in zip(survivors, candidates, strict=True)
            for piece in _take(s.transaction_id, c).chunks
        ],
        type=pa.large_string(),
    )
    dup, kept = _latest_wins(rows, pos, _codes(ids))
    part = _duplicate_part(rows, pos[dup], pos[kept], _take(ids, dup), "transaction_id")
    for i in np.unique(owner[dup]):
        survivors[i] = survivors[i].without(local[dup[owner[dup] == i]])
    return part, survivors


_HASH_FILTER_BITS = 24  # a bool per value of the top hash bits (16 MiB) rules out most non-repeated hashes


def _repeated_hashes(parts: list[np.ndarray]) -> list[np.ndarray]:
    """For each array of hashes, the positions of the values that occur more than once over all arrays."""
    if not parts:
        return []
    everything = np.concatenate(parts)
    everything.sort()
    repeated = np.unique(everything[1:][everything[1:] == everything[:-1]])
    del everything
    if not len(repeated):
        return [np.empty(0, dtype=np.int64) for _ in parts]
    shift = np.uint64(64 - _HASH_FILTER_BITS)
    maybe_repeated = np.zeros(1 << _HASH_FILTER_BITS, dtype=bool)
    maybe_repeated[repeated >> shift] = True
    out = []
    for hashes in parts:
        maybe = np.flatnonzero(maybe_repeated[hashes >> shift])
        found = np.minimum(np.searchsorted(repeated, hashes[maybe]), len(repeated) - 1)
        out.append(maybe[repeated[found] == hashes[maybe]])
    return out


_HASH_BYTES = 64  # leading bytes hashed per string: longer strings equal in them only cost an exact compare
_BYTE_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(9)], dtype=np.uint64)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def _string_hashes(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A 64-bit hash per string (equal strings hash equal; null and "" hash to 0), vectorised in numpy."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    if not chunks:
        return np.empty(0, dtype=np.uint64)
    return np.concatenate([_hash_chunk(c.cast(pa.large_string())) for c in chunks])


def _hash_chunk(arr: pa.Array) -> np.ndarray:
    n = len(arr)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    padded = np.zeros((hi - lo + 15) // 8 * 8, dtype=np.uint8)  # room for an 8-byte read at every byte
    if hi > lo:
        padded[: hi - lo] = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[lo:hi]
    # the little-endian 8-byte word starting at each byte
    words = np.lib.stride_tricks.as_strided(padded.view("<u8"), shape=(len(padded) - 7,), strides=(1,))
    starts = offsets[:-1] - lo
    lengths = np.diff(offsets)
    mul, mix1, mix2 = _MIX
    h = lengths.astype(np.uint64) * mul
    for k in range(0, min(int(lengths.max()), _HASH_BYTES), 8):
        rest = lengths - k
        word = words[np.minimum(starts + k, len(words) - 1)] & _BYTE_MASKS[np.clip(rest, 0, 8)]
        mixed = (h ^ word) * mul
        mixed ^= mixed >> np.uint64(29)
        h = np.where(rest > 0, mixed, h)  # a string's hash never depends on longer neighbours
    h ^= h >> np.uint64(30)
    h *= mix1
    h ^= h >> np.uint64(27)
    h *= mix2
    h ^= h >> np.uint64(31)
    return h


def _tx_frame(survivors: list[_TxSurvivors]) -> pd.DataFrame:
    """The clean frame from the chunks' survivors (in raw order), one contiguous array per column as if
    cleaned in one piece (consumers such as sort/take on a column then work without a hidden concatenation).
    ``survivors`` is emptied, so each column's chunk pieces are freed once the column is joined."""
    amount = np.concatenate([s.amount for s in survivors]) if survivors else np.empty(0, dtype=np.float64)
    timestamp = np.concatenate([s.timestamp for s in survivors]) if survivors else np.empty(0, dtype=np.int64)
    text = {c: [piece for s in survivors for piece in getattr(s, c).chunks] for c in _TX_TEXT_COLUMNS}
    survivors.clear()
    columns: dict[str, pa.Array] = {"amount": pa.array(amount), "timestamp": pa.array(timestamp).view(_TS)}
    for c in _TX_TEXT_COLUMNS:
        # return the pieces joined so far to the OS first: the pool would otherwise keep them beside the new
        # column, and the peak would grow by the whole output instead of by one column
        pa.default_memory_pool().release_unused()
        columns[c] = pa.chunked_array(text.pop(c), type=pa.large_string()).combine_chunks()
    return _to_frame({c: columns[c] for c in TRANSACTION_COLUMNS})
