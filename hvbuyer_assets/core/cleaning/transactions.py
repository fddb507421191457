"""Cleaning rules of the transactions source: typed, valid, de-duplicated transactions of known customers.

Rows are checked ``TX_CHUNK_ROWS`` at a time, so the working memory beyond the input and the output is one
chunk's temporaries plus 8 bytes per surviving row (the duplicate-id hashes). A dropped row goes to the
quarantine once, with the first reason of ``_TX_CHECKS`` that applies.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.cleaning.dedup import StringSet, key_codes, latest_wins, repeated_hashes, string_hashes
from hvbuyer_assets.core.cleaning.history import first_drop_of
from hvbuyer_assets.core.cleaning.lineage import Rows, arrived_array
from hvbuyer_assets.core.cleaning.quarantine import (
    DUPLICATE_DROPPED,
    QUARANTINE_SCHEMA,
    ROW_DROPPED,
    CleanResult,
    duplicate_part,
    quarantine_frame,
    quarantine_part,
    sentence,
)
from hvbuyer_assets.core.contract import TRANSACTION_COLUMNS
from hvbuyer_assets.core.rules import TRANSACTION_STATUSES, UNKNOWN_PAYMENT_METHOD
from hvbuyer_assets.core.text import (
    NAT,
    TS,
    arrow,
    clean_text,
    column,
    is_in,
    np_mask,
    parse_number,
    parse_timestamps,
    take,
    to_frame,
    ts_ns,
    utc_text,
)

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
    hashes: np.ndarray  # uint64, see string_hashes (emptied once duplicates are resolved)

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
    raw: pd.DataFrame,
    known_customer_ids: pd.Series | StringSet,
    arrived_at: pd.Series | None = None,
    earlier_ids: pa.Table | None = None,
) -> CleanResult:
    """Typed, valid, de-duplicated transactions; every dropped row goes to the quarantine with one reason.

    ``arrived_at`` (when the drop landed) defaults to ``raw["arrived_at"]``; if given it is either a Series
    aligned with ``raw`` (same index) or a Series indexed by ``source_file``. Rows with a timestamp after
    their arrival are dropped (no check where the arrival is unknown). Duplicate transaction_ids are
    resolved among the rows that passed every check: the latest (arrived_at, source_file, source_row) wins.
    Output: transaction_id, customer_id, amount (float64 > 0), timestamp (datetime64[ns, UTC]),
    payment_method (lower case, missing -> "unknown"), status (one of TRANSACTION_STATUSES).

    ``earlier_ids`` (``core.cleaning.history.earlier_matches``: value, drop) are the transaction_ids of this
    drop already received in an earlier drop: such a row is a duplicate (the earlier record stays; the reason
    names the earlier drop), before the repeats within this drop are resolved. ``known_customer_ids`` may be a
    :class:`StringSet` of clean ids built once for every chunk of a drop (``core.sources``).

    Rows are checked ``TX_CHUNK_ROWS`` at a time, keeping only each chunk's typed survivors and quarantine
    rows; duplicates are then resolved over all survivors (exactly, via a hash pre-filter).
    """
    rows = Rows(raw, arrived_at)
    columns = {c: column(raw, c) for c in TRANSACTION_COLUMNS}
    known = known_ids(known_customer_ids) if isinstance(known_customer_ids, pd.Series) else known_customer_ids
    dropped: list[list[pa.Table]] = [[] for _ in _TX_CHECKS]  # per check, then per chunk: the original order
    survivors: list[_TxSurvivors] = []
    step = max(1, int(TX_CHUNK_ROWS))
    # Independent per-column work runs in threads: pyarrow kernels release the GIL (the hash passes dominate).
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for start in range(0, rows.n, step):
            chunk = {c: arr.slice(start, step) for c, arr in columns.items()}
            survivors.append(_clean_tx_chunk(pool, rows, start, chunk, known, dropped))
    seen, survivors = _drop_earlier_ids(rows, survivors, earlier_ids)
    duplicates, survivors = _drop_duplicate_ids(rows, survivors)
    duplicates = pa.concat_tables([seen, duplicates])
    drop_parts = [part for per_check in dropped for part in per_check]
    positions = np.concatenate([s.pos for s in survivors]) if survivors else np.empty(0, dtype=np.int64)
    clean = _tx_frame(survivors)
    stats = {
        "rows_read": rows.n,
        "rows_clean": len(clean),
        "rows_dropped": sum(part.num_rows for part in drop_parts),
        "duplicates": duplicates.num_rows,
        "values_nulled": 0,
    }
    quarantine = quarantine_frame([*drop_parts, duplicates])
    return CleanResult(clean=clean, quarantine=quarantine, stats=stats, positions=positions)


def known_ids(customer_ids: pd.Series) -> StringSet:
    """The customer ids transactions are checked against, as cleaning reads them (stripped, missing dropped)."""
    return StringSet(clean_text(arrow(customer_ids)))


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _clean_tx_chunk(
    pool: ThreadPoolExecutor,
    rows: Rows,
    start: int,
    raw_cols: dict[str, pa.ChunkedArray],
    known: StringSet,
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
        "transaction_id_missing": lambda: np_mask(pc.is_null(tid)),
        "customer_id_missing": lambda: np_mask(pc.is_null(cid)),
        "customer_unknown": lambda: ~cid_known,
        "amount_missing": lambda: np_mask(pc.is_null(amount_text)),
        "amount_unparseable": lambda: amount_bad,
        "amount_not_positive": lambda: amount <= 0,
        "timestamp_missing": lambda: np_mask(pc.is_null(ts_text)),
        "timestamp_unparseable": lambda: ts_ns == NAT,
        "timestamp_after_arrival": lambda: (ts_ns > arrived) & (arrived != NAT),
        "status_missing": lambda: np_mask(pc.is_null(status)),
        "status_unknown": lambda: ~np_mask(pc.is_in(status, value_set=pa.array(TRANSACTION_STATUSES))),
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
    text = clean_text(raw)
    return text, string_hashes(text)


def _text_and_known(raw: pa.ChunkedArray, known: StringSet) -> tuple[pa.ChunkedArray, np.ndarray]:
    text = clean_text(raw)
    return text, known.contains(text)


def _text_and_number(raw: pa.ChunkedArray, drop_chars: str) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray]:
    text = clean_text(raw)
    return (text, *parse_number(text, drop_chars))


def _text_and_time(raw: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    text = clean_text(raw)
    return text, ts_ns(parse_timestamps(text))


def _text_and_lower(raw: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    text = clean_text(raw)
    return text, pc.utf8_lower(text)


def _tx_drop_part(
    rows: Rows,
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
        return QUARANTINE_SCHEMA.empty_table()
    idx = start + local
    value = take(text[field], local)
    if check.endswith("_missing"):
        reason: pa.Array | str = f"{field} is missing"
    elif check == "timestamp_after_arrival":
        arrived = utc_text(arrived_array(rows, idx))
        reason = sentence("timestamp ", value, " is after the drop arrived (", arrived, ")")
    else:
        before, after = {
            "customer_unknown": ("customer_id '", "' is not a known customer"),
            "amount_unparseable": ("amount '", "' is not a number"),
            "amount_not_positive": ("amount ", " is not positive"),
            "timestamp_unparseable": ("timestamp '", "' is not a valid ISO-8601 time"),
            "status_unknown": ("status '", f"' is not one of {', '.join(TRANSACTION_STATUSES)}"),
        }[check]
        reason = sentence(before, value, after)
    raw_value = take(raw_cols[field], local)
    return quarantine_part(rows, idx, take(tid, local), field, raw_value, reason, ROW_DROPPED)


def _drop_earlier_ids(
    rows: Rows, survivors: list[_TxSurvivors], earlier: pa.Table | None
) -> tuple[pa.Table, list[_TxSurvivors]]:
    """Survivors whose transaction_id an earlier drop already holds: quarantined (the first record is kept)."""
    if earlier is None or not earlier.num_rows:
        return QUARANTINE_SCHEMA.empty_table(), survivors
    parts = []
    for i, s in enumerate(survivors):
        drop = first_drop_of(earlier, s.transaction_id)
        hit = np.flatnonzero(np_mask(pc.is_valid(drop)))
        if not len(hit):
            continue
        ids = take(s.transaction_id, hit)
        reason = sentence(
            "transaction_id ", ids, " was already received in drop ", take(drop, hit), "; the earlier record was kept"
        )
        parts.append(quarantine_part(rows, s.pos[hit], ids, "transaction_id", ids, reason, DUPLICATE_DROPPED))
        survivors[i] = s.without(hit)
    return (pa.concat_tables(parts) if parts else QUARANTINE_SCHEMA.empty_table()), survivors


def _drop_duplicate_ids(rows: Rows, survivors: list[_TxSurvivors]) -> tuple[pa.Table, list[_TxSurvivors]]:
    """Resolve repeated transaction_ids over all chunks' survivors: the latest row wins.

    Only survivors whose id hash occurs more than once are compared (exactly, by their text), so the cost
    is a sort of 8-byte hashes rather than a hash table of every id. Returns the quarantine rows of the
    superseded copies and the survivors without them.
    """
    candidates = repeated_hashes([s.hashes for s in survivors])
    for i in range(len(survivors)):
        survivors[i].hashes = np.empty(0, dtype=np.uint64)  # no longer needed
    if not sum(len(c) for c in candidates):
        return QUARANTINE_SCHEMA.empty_table(), survivors
    owner = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c in enumerate(candidates)])
    local = np.concatenate(candidates)
    pos = np.concatenate([s.pos[c] for s, c in zip(survivors, candidates, strict=True)])
    ids = pa.chunked_array(
        [
            piece.cast(pa.large_string())
            for s, c in zip(survivors, candidates, strict=True)
            for piece in take(s.transaction_id, c).chunks
        ],
        type=pa.large_string(),
    )
    dup, kept = latest_wins(rows, pos, key_codes(ids))
    part = duplicate_part(rows, pos[dup], pos[kept], take(ids, dup), "transaction_id")
    for i in np.unique(owner[dup]):
        survivors[i] = survivors[i].without(local[dup[owner[dup] == i]])
    return part, survivors


def _tx_frame(survivors: list[_TxSurvivors]) -> pd.DataFrame:
    """The clean frame from the chunks' survivors (in raw order), one contiguous array per column as if
    cleaned in one piece (consumers such as sort/take on a column then work without a hidden concatenation).
    ``survivors`` is emptied, so each column's chunk pieces are freed once the column is joined."""
    amount = np.concatenate([s.amount for s in survivors]) if survivors else np.empty(0, dtype=np.float64)
    timestamp = np.concatenate([s.timestamp for s in survivors]) if survivors else np.empty(0, dtype=np.int64)
    text = {c: [piece for s in survivors for piece in getattr(s, c).chunks] for c in _TX_TEXT_COLUMNS}
    survivors.clear()
    columns: dict[str, pa.Array] = {"amount": pa.array(amount), "timestamp": pa.array(timestamp).view(TS)}
    for c in _TX_TEXT_COLUMNS:
        # return the pieces joined so far to the OS first: the pool would otherwise keep them beside the new
        # column, and the peak would grow by the whole output instead of by one column
        pa.default_memory_pool().release_unused()
        columns[c] = pa.chunked_array(text.pop(c), type=pa.large_string()).combine_chunks()
    return to_frame({c: columns[c] for c in TRANSACTION_COLUMNS})


def invalid_values(clean: pd.DataFrame) -> np.ndarray:
    """Rows of a clean transactions frame breaking its value rules: amount not finite and > 0, timestamp
    missing, or a status outside TRANSACTION_STATUSES."""
    amount = clean["amount"].to_numpy(dtype="float64", na_value=np.nan)
    return (
        ~(np.isfinite(amount) & (amount > 0))
        | clean["timestamp"].isna().to_numpy()
        | ~is_in(clean["status"], TRANSACTION_STATUSES)
    )


def unknown_customers(clean: pd.DataFrame, customers: pd.DataFrame | StringSet) -> np.ndarray:
    """Rows of a clean transactions frame whose customer_id is not in the clean ``customers`` frame (or the set
    of known ids built once for a drop's chunks)."""
    if isinstance(customers, StringSet):
        return ~customers.contains(arrow(clean["customer_id"]))
    return ~is_in(clean["customer_id"], customers["customer_id"])
