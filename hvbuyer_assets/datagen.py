"""Synthetic, deliberately messy raw data for hvbuyer: ``customers.csv`` + ``transactions.json`` (JSON Lines).

Usage::

    python -m hvbuyer_assets.datagen --customers 100000 --out data/raw
    python -m hvbuyer_assets.datagen --customers 100000 --out data/raw --as-of 2026-09-28 --days 90 --drop q3
    python -m hvbuyer_assets.datagen --customers 100000 --out data/raw --as-of 2026-09-28 --days 90 \\
        --drift behaviour --drop q3drift   # instead of q3: same quarter, drifted

Determinism: the same arguments give byte-identical files. Customers depend only on
``(seed, n_customers, drift)`` (``behaviour`` drift keeps the ``none`` customers), so a later drop
(``--as-of`` later, ``--days 90``) with the same seed describes the same customers (ids ``C0000001``..,
zero-padded to max(7, digits of N)) and brings NEW transactions with timestamps in
``(as_of - days, as_of]`` (``as_of`` = midnight UTC of that date). The transaction stream is seeded from
``(seed, as_of, days, drift)``; transaction ids embed the window end date (``T20260630-000000001``, with a
``D``/``B`` tag after the date for drifted drops), so windows ending on different dates never share an id.
Keep ``as_of`` at or before the day the drop lands: the pipeline sets aside transactions stamped after
their file arrived (the CLI warns).

The world (figures for ``drift="none"``):

- age = 18 + 68 * Beta(2, 4.5), integer in [18, 85]: skewed to the young, mean ~38.4.
- region shares North 30%, South 24%, East 20%, West 16%, Central 10%.
- signup dates over the 5 years before ``SIGNUP_ANCHOR`` (2026-06-30, fixed so that customers do not depend
  on ``as_of``); ~36% fall inside the default 730-day window, so part of the base has a short history.
  With an ``--as-of`` before the anchor, customers who sign up later simply have no transactions yet.
- a latent spend propensity ``z0`` = age effect (peak ~47 years) + region effect (West > Central > East >
  North > South) + N(0, 0.9). It drifts slowly per customer: ``z(t) = z0 + amp * sin(2 pi (t - anchor) /
  period + phase)`` with amp ~ U(0.2, 1.0), period ~ U(2, 6) years, so recent behaviour says more about the
  next 90 days than old behaviour.
- loyalty_points: lognormal in ``z0`` and tenure (heavy tail: median ~240, p99 ~4 000, max ~10^5 at 1M
  customers); 8% zero (30% for customers of less than 3 months).
- purchases: a Poisson process per customer with rate ``10/year * exp(0.55 z(t))`` (piecewise constant on
  15-day segments, only after signup): ~20 transactions per customer over 730 days. Amount =
  lognormal(log 55 + 0.40 z(t), 0.8), in cents, clipped to [1, 50 000] USD (~5.5% of purchases >= $300).
  Statuses completed 85%, pending 5%, refunded 6%, failed 4%; payment methods card 52%, paypal 20%,
  apple_pay 9%, bank_transfer 8%, google_pay 6%, gift_card 5% (independent of the amount).
- label signal (completed purchase >= $300 in the last 90 days of the window, features at the start of those
  90 days): prevalence ~10%; a random forest trained one horizon earlier reaches a hold-out ROC-AUC of
  ~0.81 with behaviour features and ~0.66 with age/region/loyalty only (measured at N = 50 000).

Drift:

- ``demographics``: age = 18 + 68 * Beta(2.7, 3.6) (mean ~46.7, i.e. +8 years) and region shares North 14%,
  South 18%, East 20%, West 28%, Central 20%. The spend model is unchanged, so propensities follow the new
  population (label prevalence ~12%).
- ``behaviour``: same customers as ``none``; amounts x1.6 and purchase rates x0.75 (~15 transactions per
  customer over 730 days, spend per customer ~x1.2, share of purchases >= $300 5.5% -> ~14%, label
  prevalence ~18%).

Mess (shares of rows; :func:`generate` returns exactly what is written):

- customers.csv: age missing 1% / impossible (-3, 0, 7, 150, 250, 999) 0.5%; region in other case or with
  spaces (" east", "WEST ", "north  ", "  Central") 1.5% / missing 0.8%; loyalty_points negative 0.5% /
  missing 0.3%; signup_date missing 0.5%; 1% of ids repeated at the end of the file with an updated
  loyalty_points (70%) or region (30%): the later row is the newer record; 0.1% extra rows without
  customer_id. A missing value is an empty field (nothing between the commas); nothing is quoted.
- transactions.json: amount always a JSON string: "123.45"; "$1,234.50" / "$45.10" 1.5%; "1,234.50" for
  30% of the other amounts >= 1000; " 12.5 " 0.3%; "" 0.2%; null 0.2%; "N/A" 0.1%; negative "-12.50" 0.1%.
  timestamp "2026-01-31T12:00:00Z" mostly; same instant as "...+02:00" 1.5% / "...-05:00" 1.5%;
  fractional seconds "...:00.123Z" 0.6%; unparseable ("not a date", "0000-00-00T00:00:00Z", "") 0.25%;
  null 0.25%. Exact duplicate lines (next to the original) 1%; transactions of unknown customers (ids above
  N) 0.4%; transaction_id null 0.15% / key omitted 0.1%; customer_id null 0.15% / key omitted 0.1%;
  status "Completed" / " COMPLETED " 0.8%; payment_method null 0.3% / " CARD " style 0.5%.
  Lines are in time order. A bare ``pyarrow.json.read_json`` of the file succeeds.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

DRIFTS = ("none", "demographics", "behaviour")
DEFAULT_AS_OF = "2026-06-30"
DEFAULT_DAYS = 730
SIGNUP_ANCHOR = pd.Timestamp("2026-06-30", tz="UTC")
SIGNUP_SPAN_DAYS = 5 * 365

REGIONS = ("North", "South", "East", "West", "Central")
REGION_SHARES = {"none": (0.30, 0.24, 0.20, 0.16, 0.10), "demographics": (0.14, 0.18, 0.20, 0.28, 0.20)}
REGION_EFFECT = np.array([0.0, -0.20, 0.10, 0.30, 0.15])
AGE_BETA = {"none": (2.0, 4.5), "demographics": (2.7, 3.6)}
STATUSES = ("completed", "pending", "refunded", "failed")
STATUS_SHARES = (0.85, 0.05, 0.06, 0.04)
PAYMENT_METHODS = ("card", "paypal", "apple_pay", "bank_transfer", "google_pay", "gift_card")
PAYMENT_SHARES = (0.52, 0.20, 0.09, 0.08, 0.06, 0.05)

RATE_PER_YEAR = 10.0  # purchases / year at z = 0
RATE_Z = 0.55
AMOUNT_LOG_MEAN = float(np.log(55.0))
AMOUNT_Z = 0.40
AMOUNT_SIGMA = 0.8
BEHAVIOUR_AMOUNT_MULT = 1.6
BEHAVIOUR_RATE_MULT = 0.75
SEGMENT_DAYS = 15
CUSTOMER_CHUNK = 50_000  # customers simulated per step (fixed: part of the determinism)
ROW_CHUNK = 500_000  # transaction lines rendered per step
WORKERS = 2  # threads rendering JSON lines (output does not depend on it)

CUSTOMER_HEADER = "customer_id,age,region,signup_date,loyalty_points\n"
TRANSACTION_COLUMNS = ("transaction_id", "customer_id", "amount", "timestamp", "payment_method", "status")
_DAY = 86_400
_YEAR = 365.25 * _DAY
_DRIFT_CODE = {"none": 0, "demographics": 1, "behaviour": 2}
_TID_TAG = {"none": "", "demographics": "D", "behaviour": "B"}
_BAD_AGES = np.array([-3, 0, 7, 150, 250, 999])
_BAD_TIMESTAMPS = ("not a date", "0000-00-00T00:00:00Z", "")

# Shares of the transaction mess kinds (index 0 = clean, rest as listed in the module docstring).
_AMOUNT_SHARES = {
    "dollar": 0.015,
    "padded": 0.003,
    "empty": 0.002,
    "null": 0.002,
    "na": 0.001,
    "negative": 0.001,
}
_TS_SHARES = {"plus2": 0.015, "minus5": 0.015, "frac": 0.006, "bad": 0.0025, "null": 0.0025}
_ID_SHARES = {"null": 0.0015, "omitted": 0.001}
_STATUS_MESS = {"title": 0.005, "upper": 0.003}
_PM_MESS = {"null": 0.003, "upper": 0.005}
_DUPLICATE_SHARE = 0.01
_UNKNOWN_SHARE = 0.004
_COMMA_SHARE = 0.30


@dataclass(frozen=True)
class _Customers:
    """Latent customer world (clean values; the CSV is rendered from it with mess)."""

    age: np.ndarray  # int16
    region: np.ndarray  # int8 code into REGIONS
    signup: np.ndarray  # int64 epoch seconds (midnight UTC)
    loyalty: np.ndarray  # int64
    z0: np.ndarray  # float64 latent spend propensity
    amp: np.ndarray
    period: np.ndarray  # seconds
    phase: np.ndarray


@dataclass(frozen=True)
class _Events:
    """Transactions sorted by time, plus per-row mess codes and the written row order (with duplicates)."""

    cust: np.ndarray  # int32 customer code (>= n_customers: unknown customer)
    t: np.ndarray  # int64 epoch seconds
    cents: np.ndarray  # int32
    status: np.ndarray  # int8
    method: np.ndarray  # int8
    amount_kind: np.ndarray  # int8
    ts_kind: np.ndarray
    tid_kind: np.ndarray
    cid_kind: np.ndarray
    status_kind: np.ndarray
    method_kind: np.ndarray
    rows: np.ndarray  # int64 indices into the arrays above, in file order


def _check_args(n_customers: int, seed: int, days: int, drift: str) -> None:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if drift not in DRIFTS:
        raise ValueError(f"drift must be one of {DRIFTS}, got {drift!r}")


def _as_of_timestamp(as_of: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(as_of)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.normalize()


def _categorical(rng: np.random.Generator, shares: Sequence[float], size: int) -> np.ndarray:
    cum = np.cumsum(np.asarray(shares, dtype=np.float64))
    return np.searchsorted(cum[:-1] / cum[-1], rng.random(size), side="right").astype(np.int8)


def _kinds(rng: np.random.Generator, shares: dict[str, float], size: int) -> np.ndarray:
    """int8 codes: 0 = clean, i = the i-th kind of ``shares`` (in insertion order)."""
    return _categorical(rng, (1.0 - sum(shares.values()), *shares.values()), size)


def _age_effect(age: np.ndarray) -> np.ndarray:
    return 0.45 * np.exp(-(((age - 47.0) / 14.0) ** 2)) - 0.2


def _customers(n_customers: int, seed: int, drift: str) -> _Customers:
    world = "demographics" if drift == "demographics" else "none"
    rng = np.random.default_rng([seed, n_customers, _DRIFT_CODE[world], 0xC057])
    a, b = AGE_BETA[world]
    age = (18 + np.floor(68 * rng.beta(a, b, n_customers))).clip(18, 85).astype(np.int16)
    region = _categorical(rng, REGION_SHARES[world], n_customers)
    days_before = np.floor(SIGNUP_SPAN_DAYS * rng.beta(1.1, 1.0, n_customers)).astype(np.int64)
    signup = SIGNUP_ANCHOR.value // 10**9 - days_before * _DAY
    z0 = _age_effect(age.astype(np.float64)) + REGION_EFFECT[region] + rng.normal(0.0, 0.9, n_customers)
    tenure_years = days_before / 365.25
    log_points = np.log(120.0) + 0.55 * z0 + 0.30 * tenure_years + rng.normal(0.0, 1.0, n_customers)
    p_zero = np.where(tenure_years < 0.25, 0.30, 0.08)
    loyalty = np.where(rng.random(n_customers) < p_zero, 0, np.floor(np.exp(log_points))).astype(np.int64)
    amp = rng.uniform(0.2, 1.0, n_customers)
    period = rng.uniform(2.0, 6.0, n_customers) * _YEAR
    phase = rng.uniform(0.0, 2 * np.pi, n_customers)
    return _Customers(age, region, signup, loyalty, z0, amp, period, phase)


def _propensity(c: _Customers, idx: np.ndarray | tuple[slice, None], t: np.ndarray) -> np.ndarray:
    """Latent spend propensity z(t) of customers ``idx`` at epoch seconds ``t``."""
    anchor = SIGNUP_ANCHOR.value // 10**9
    return c.z0[idx] + c.amp[idx] * np.sin(2 * np.pi * (t - anchor) / c.period[idx] + c.phase[idx])


def _time_order(offsets: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative int64 ``offsets``: one packed (offset, position) uint64 sort when the
    bits fit (~6x faster than ``np.argsort(kind="stable")`` on 20M rows), else the stable argsort."""
    pos_bits = max(1, int(offsets.size).bit_length())
    if offsets.size == 0 or int(offsets.max()).bit_length() + pos_bits > 64:
        return np.argsort(offsets, kind="stable")
    key = offsets.astype(np.uint64) << np.uint64(pos_bits)
    key |= np.arange(offsets.size, dtype=np.uint64)
    key.sort()
    key &= np.uint64((1 << pos_bits) - 1)
    return key.astype(np.int64)


def _simulate(c: _Customers, seed: int, as_of: pd.Timestamp, days: int, drift: str) -> _Events:
    """Poisson purchase arrivals per customer in (as_of - days, as_of], sorted by time, with mess codes."""
    n = len(c.age)
    end = as_of.value // 10**9
    start = end - days * _DAY
    key = [seed, int(end // _DAY), days, _DRIFT_CODE[drift]]
    rng = np.random.default_rng([*key, 0x7A5])
    rate_mult = BEHAVIOUR_RATE_MULT if drift == "behaviour" else 1.0
    amount_mult = BEHAVIOUR_AMOUNT_MULT if drift == "behaviour" else 1.0
    n_seg = -(-days // SEGMENT_DAYS)
    seg_lo = start + np.arange(n_seg, dtype=np.int64) * SEGMENT_DAYS * _DAY
    seg_hi = np.minimum(seg_lo + SEGMENT_DAYS * _DAY, end)
    parts: list[tuple[np.ndarray, ...]] = []
    for lo_c in range(0, n, CUSTOMER_CHUNK):
        sl = slice(lo_c, min(lo_c + CUSTOMER_CHUNK, n))
        lo = np.maximum(seg_lo[None, :], c.signup[sl, None])  # (chunk, n_seg)
        length = np.maximum(seg_hi[None, :] - lo, 0)
        z_mid = _propensity(c, (sl, None), lo + length / 2)
        lam = rate_mult * RATE_PER_YEAR / _YEAR * np.exp(RATE_Z * z_mid) * length
        counts = rng.poisson(lam).ravel()
        flat = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
        cust = (flat // n_seg + lo_c).astype(np.int32)
        t = lo.ravel()[flat] + 1 + np.floor(rng.random(flat.size) * length.ravel()[flat]).astype(np.int64)
        t = np.minimum(t, seg_hi[flat % n_seg])
        z = _propensity(c, cust, t)
        amount = amount_mult * np.exp(AMOUNT_LOG_MEAN + AMOUNT_Z * z + rng.normal(0.0, AMOUNT_SIGMA, t.size))
        cents = np.round(amount * 100).clip(100, 5_000_000).astype(np.int32)
        status = _categorical(rng, STATUS_SHARES, t.size)
        method = _categorical(rng, PAYMENT_SHARES, t.size)
        parts.append((cust, t, cents, status, method))

    mess = np.random.default_rng([*key, 0x3E55])
    n_known = sum(len(p[0]) for p in parts)
    n_unknown = int(round(_UNKNOWN_SHARE * n_known))
    unknown_ids = max(10, n // 100)
    u_cust = (n + mess.integers(0, unknown_ids, n_unknown)).astype(np.int32)
    u_t = start + 1 + mess.integers(0, days * _DAY, n_unknown)
    u_amount = amount_mult * np.exp(AMOUNT_LOG_MEAN + mess.normal(0, AMOUNT_SIGMA * 1.2, n_unknown))
    u_cents = np.round(u_amount * 100).clip(100, 5_000_000).astype(np.int32)
    parts.append(
        (
            u_cust,
            u_t,
            u_cents,
            _categorical(mess, STATUS_SHARES, n_unknown),
            _categorical(mess, PAYMENT_SHARES, n_unknown),
        )
    )
    cust, t, cents, status, method = (np.concatenate([p[i] for p in parts]) for i in range(5))
    del parts
    order = _time_order(t - start)
    cust, t, cents, status, method = cust[order], t[order], cents[order], status[order], method[order]
    del order
    total = t.size
    dup = (mess.random(total) < _DUPLICATE_SHARE).astype(np.int64)
    rows = np.repeat(np.arange(total, dtype=np.int64), 1 + dup)
    return _Events(
        cust=cust,
        t=t,
        cents=cents,
        status=status,
        method=method,
        amount_kind=_kinds(mess, _AMOUNT_SHARES, total),
        ts_kind=_kinds(mess, _TS_SHARES, total),
        tid_kind=_kinds(mess, _ID_SHARES, total),
        cid_kind=_kinds(mess, _ID_SHARES, total),
        status_kind=_kinds(mess, _STATUS_MESS, total),
        method_kind=_kinds(mess, _PM_MESS, total),
        rows=rows,
    )


# ---------------------------------------------------------------------------------------------- rendering


def _str(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return _join(prefix, pc.utf8_lpad(_str(numbers), width, "0"))


def _null_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
    if not mask.any():
        return values
    return pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), values)


def _put(values: pa.Array, mask: np.ndarray, replacements: pa.Array | str) -> pa.Array:
    """Replace ``values`` where ``mask`` with ``replacements`` (one per masked row, or one string)."""
    if not mask.any():
        return values
    if isinstance(replacements, str):
        return pc.if_else(pa.array(mask), pa.scalar(replacements, pa.string()), values)
    return pc.replace_with_mask(values, pa.array(mask), replacements)


def _lookup(table: Sequence[str | None], codes: np.ndarray) -> pa.Array:
    return pa.array(table, pa.string()).take(pa.array(codes))


def _dates(seconds: np.ndarray) -> pa.Array:
    """'YYYY-MM-DD' of epoch seconds, via a lookup table of the distinct days (fast for millions of rows)."""
    if seconds.size == 0:
        return pa.array([], pa.string())
    day = seconds // _DAY
    first = int(day.min())
    table = np.datetime_as_string(np.arange(first, int(day.max()) + 1).astype("datetime64[D]"))
    return _lookup(table.tolist(), day - first)


@functools.cache
def _time_of_day() -> pa.Array:
    return pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(_DAY)], pa.string())


def _iso(seconds: np.ndarray) -> pa.Array:
    """'YYYY-MM-DDTHH:MM:SS' (UTC wall time of epoch seconds), no zone suffix."""
    return pc.binary_join_element_wise(_dates(seconds), _time_of_day().take(pa.array(seconds % _DAY)), "T")


def _money(cents: np.ndarray, commas: bool = False) -> pa.Array:
    """'1234.50' (or '1,234.50' with ``commas``) from integer cents (< 100 million dollars)."""
    dollars = cents // 100
    whole = _str(dollars)
    big = dollars >= 1000
    if commas and big.any():
        grouped = _join(_str(dollars[big] // 1000), ",", pc.utf8_lpad(_str(dollars[big] % 1000), 3, "0"))
        whole = _put(whole, big, grouped)
    return pc.binary_join_element_wise(whole, pc.utf8_lpad(_str(cents % 100), 2, "0"), ".")


def _hash_share(idx: np.ndarray, share: float) -> np.ndarray:
    """Deterministic pseudo-random subset of row indices (no RNG state needed per chunk)."""
    return (idx.astype(np.uint64) * np.uint64(2654435761) % np.uint64(10_000)) < int(share * 10_000)


def _render_transactions(
    ev: _Events, rows: np.ndarray, n_customers: int, id_prefix: str
) -> tuple[dict[str, pa.Array], dict[str, np.ndarray]]:
    """String columns for the given file rows, plus masks of rows whose id key is omitted from the JSON."""
    i = ev.rows[rows]
    width = max(7, len(str(n_customers)))
    tid = _null_where(_ids(id_prefix, i + 1, 9), ev.tid_kind[i] > 0)
    cid = _null_where(_ids("C", ev.cust[i].astype(np.int64) + 1, width), ev.cid_kind[i] > 0)

    cents, kind = ev.cents[i], ev.amount_kind[i]
    amount = _money(cents)
    comma = (kind == 0) & (cents >= 100_000) & _hash_share(i, _COMMA_SHARE)
    amount = _put(amount, comma, _money(cents[comma], commas=True))
    amount = _put(amount, kind == 1, _join("$", _money(cents[kind == 1], commas=True)))
    padded = kind == 2
    short = pc.utf8_rtrim(pc.utf8_rtrim(_money(cents[padded]), "0"), ".")  # "12.50" -> "12.5", "7.00" -> "7"
    amount = _put(amount, padded, _join(" ", short, " "))
    amount = _put(amount, kind == 3, "")
    amount = _null_where(amount, kind == 4)
    amount = _put(amount, kind == 5, "N/A")
    amount = _put(amount, kind == 6, _join("-", _money(cents[kind == 6])))

    t, kind = ev.t[i], ev.ts_kind[i]
    ts = _join(_iso(t), "Z")
    for code, shift, suffix in ((1, 7200, "+02:00"), (2, -18000, "-05:00")):
        m = kind == code
        if m.any():
            ts = _put(ts, m, _join(_iso(t[m] + shift), suffix))
    frac = kind == 3
    if frac.any():
        millis = pc.utf8_lpad(_str(i[frac] * 7919 % 1000), 3, "0")
        ts = _put(ts, frac, _join(_iso(t[frac]), ".", millis, "Z"))
    bad = kind == 4
    if bad.any():
        ts = _put(ts, bad, _lookup(_BAD_TIMESTAMPS, i[bad] % len(_BAD_TIMESTAMPS)))
    ts = _null_where(ts, kind == 5)

    method_table = [v for m in PAYMENT_METHODS for v in (m, None, f" {m.upper()} ")]
    status_table = [v for s in STATUSES for v in (s, s.title(), f" {s.upper()} ")]
    columns = {
        "transaction_id": tid,
        "customer_id": cid,
        "amount": amount,
        "timestamp": ts,
        "payment_method": _lookup(method_table, ev.method[i].astype(np.int64) * 3 + ev.method_kind[i]),
        "status": _lookup(status_table, ev.status[i].astype(np.int64) * 3 + ev.status_kind[i]),
    }
    omitted = {"transaction_id": ev.tid_kind[i] == 2, "customer_id": ev.cid_kind[i] == 2}
    return columns, omitted


def _json_lines(columns: dict[str, pa.Array], omitted: dict[str, np.ndarray]) -> pa.Array:
    """One JSON object + newline per row. Values are plain strings without quotes/backslashes: no escaping."""
    fragments = []
    for pos, (key, values) in enumerate(columns.items()):
        sep = "," if pos < len(columns) - 1 else ""
        fragment = pc.binary_join_element_wise(f'"{key}":"', values, f'"{sep}', "")
        missing: pa.Array | pa.Scalar = pa.scalar(f'"{key}":null{sep}')
        if key in omitted and omitted[key].any():
            missing = pc.if_else(pa.array(omitted[key]), "", missing)
        fragments.append(pc.coalesce(fragment, missing))
    return _join("{", *fragments, "}\n")


def _string_bytes(values: pa.Array) -> memoryview:
    """The concatenated UTF-8 bytes of a string array (no copy)."""
    raw_offsets = values.buffers()[1]
    offsets = np.frombuffer(raw_offsets, dtype=np.int32, count=len(values) + 1, offset=values.offset * 4)
    return memoryview(values.buffers()[2])[offsets[0] : offsets[-1]]


def _write_lines(fh: BinaryIO, events: _Events, n_customers: int, prefix: str) -> None:
    """Render blocks of ROW_CHUNK lines on worker threads (pyarrow compute releases the GIL) and write them
    in order; at most WORKERS + 1 blocks are held in memory."""

    def render(first: int) -> pa.Array:
        rows = np.arange(first, min(first + ROW_CHUNK, events.rows.size))
        return _json_lines(*_render_transactions(events, rows, n_customers, prefix))

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        pending: deque[Future[pa.Array]] = deque()
        for first in range(0, events.rows.size, ROW_CHUNK):
            pending.append(pool.submit(render, first))
            if len(pending) > WORKERS:
                fh.write(_string_bytes(pending.popleft().result()))
        while pending:
            fh.write(_string_bytes(pending.popleft().result()))


def _customer_table(c: _Customers, seed: int, drift: str) -> pa.Table:
    """customers.csv content as string columns, with the documented mess."""
    n = len(c.age)
    world = "demographics" if drift == "demographics" else "none"
    rng = np.random.default_rng([seed, n, _DRIFT_CODE[world], 0x3E55C])
    ids = _ids("C", np.arange(1, n + 1), max(7, len(str(n))))

    age_kind = _kinds(rng, {"missing": 0.01, "impossible": 0.005}, n)
    ages = c.age.astype(np.int64)
    ages[age_kind == 2] = rng.choice(_BAD_AGES, int((age_kind == 2).sum()))
    age = _null_where(_str(ages), age_kind == 1)

    region_kind = _kinds(rng, {"variant": 0.015, "missing": 0.008}, n)
    forms = [v for r in REGIONS for v in (r, f" {r.lower()}", f"{r.upper()} ", f"{r.lower()}  ", f"  {r}")]
    form = np.where(region_kind == 1, 1 + rng.integers(0, 4, n), 0)
    region = _null_where(_lookup(forms, c.region.astype(np.int64) * 5 + form), region_kind == 2)

    signup = _null_where(_dates(c.signup), rng.random(n) < 0.005)

    loyalty_kind = _kinds(rng, {"negative": 0.005, "missing": 0.003}, n)
    points = c.loyalty.copy()
    neg = loyalty_kind == 1
    points[neg] = -(1 + rng.integers(0, 2000, int(neg.sum())))
    loyalty = _null_where(_str(points), loyalty_kind == 2)

    base = pa.table(
        {"customer_id": ids, "age": age, "region": region, "signup_date": signup, "loyalty_points": loyalty}
    )
    dup = np.flatnonzero(rng.random(n) < 0.01)
    updated = base.take(pa.array(dup))
    new_points = rng.random(dup.size) < 0.7
    updated = updated.set_column(
        4,
        "loyalty_points",
        pc.if_else(
            pa.array(new_points),
            _str(c.loyalty[dup] + rng.integers(10, 2000, dup.size)),
            updated["loyalty_points"].combine_chunks(),
        ),
    )
    moved = _lookup(REGIONS, (c.region[dup].astype(np.int64) + rng.integers(1, 5, dup.size)) % 5)
    updated = updated.set_column(
        2, "region", pc.if_else(pa.array(~new_points), moved, updated["region"].combine_chunks())
    )
    no_id = base.take(pa.array(np.flatnonzero(rng.random(n) < 0.001)))
    no_id = no_id.set_column(0, "customer_id", pa.nulls(no_id.num_rows, pa.string()))
    return pa.concat_tables([base, updated, no_id]).combine_chunks()


# ---------------------------------------------------------------------------------------------- public API


def _world(
    n_customers: int, seed: int, as_of: str | pd.Timestamp, days: int, drift: str
) -> tuple[_Customers, _Events, str]:
    _check_args(n_customers, seed, days, drift)
    end = _as_of_timestamp(as_of)
    if end - pd.Timedelta(days=days) < pd.Timestamp("1971-01-01", tz="UTC"):
        raise ValueError(f"the window ({days} days before {end:%Y-%m-%d}) must start after 1971")
    customers = _customers(n_customers, seed, drift)
    events = _simulate(customers, seed, end, days, drift)
    return customers, events, f"T{end:%Y%m%d}{_TID_TAG[drift]}-"


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    string = pd.StringDtype("pyarrow")
    return table.to_pandas(types_mapper={pa.string(): string, pa.large_string(): string}.get)


def generate(
    n_customers: int,
    *,
    seed: int = 0,
    as_of: str | pd.Timestamp = DEFAULT_AS_OF,
    days: int = DEFAULT_DAYS,
    drift: str = "none",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Messy (customers, transactions) frames exactly as :func:`write_drop` writes them.

    All columns are ``string[pyarrow]``; a JSON key that the file omits appears as ``<NA>`` here.
    Meant for tests and small N: :func:`write_drop` streams large outputs in chunks instead.
    """
    customers, events, prefix = _world(n_customers, seed, as_of, days, drift)
    chunks = [
        pa.table(
            _render_transactions(events, np.arange(a, min(a + ROW_CHUNK, events.rows.size)), n_customers, prefix)[0]
        )
        for a in range(0, events.rows.size, ROW_CHUNK)
    ]
    schema = pa.schema([(name, pa.string()) for name in TRANSACTION_COLUMNS])
    transactions = pa.concat_tables(chunks) if chunks else schema.empty_table()
    return _to_pandas(_customer_table(customers, seed, drift)), _to_pandas(transactions)


def drop_paths(out_dir: str | os.PathLike[str], drop: str | None = None) -> tuple[Path, Path]:
    """Target paths of one drop: customers[_NAME].csv and transactions[_NAME].json in ``out_dir``."""
    if drop is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", drop):
        raise ValueError(f"drop name must be letters, digits, '_', '-' or '.', got {drop!r}")
    suffix = f"_{drop}" if drop else ""
    out = Path(out_dir)
    return out / f"customers{suffix}.csv", out / f"transactions{suffix}.json"


def _write_drop(
    out_dir: str | os.PathLike[str],
    n_customers: int,
    *,
    seed: int,
    as_of: str | pd.Timestamp,
    days: int,
    drift: str,
    drop: str | None,
    force: bool,
) -> tuple[Path, Path, int, int]:
    customers_path, transactions_path = drop_paths(out_dir, drop)
    existing = [str(p) for p in (customers_path, transactions_path) if p.exists()]
    if existing and not force:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (use --force / force=True)")
    customers, events, prefix = _world(n_customers, seed, as_of, days, drift)
    customers_path.parent.mkdir(parents=True, exist_ok=True)
    # Write to hidden temp files and rename: a sensor watching the folder never sees a half-written drop,
    # and customers land before the transactions that reference them.
    tmp_c = customers_path.with_name(f".{customers_path.name}.{os.getpid()}.tmp")
    tmp_t = transactions_path.with_name(f".{transactions_path.name}.{os.getpid()}.tmp")
    try:
        table = _customer_table(customers, seed, drift)
        with open(tmp_c, "wb") as fh:
            fh.write(CUSTOMER_HEADER.encode())
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        with open(tmp_t, "wb") as fh:
            _write_lines(fh, events, n_customers, prefix)
        os.replace(tmp_c, customers_path)
        os.replace(tmp_t, transactions_path)
    finally:
        for tmp in (tmp_c, tmp_t):
            tmp.unlink(missing_ok=True)
    return customers_path, transactions_path, table.num_rows, int(events.rows.size)


def write_drop(
    out_dir: str | os.PathLike[str],
    n_customers: int,
    *,
    seed: int = 0,
    as_of: str | pd.Timestamp = DEFAULT_AS_OF,
    days: int = DEFAULT_DAYS,
    drift: str = "none",
    drop: str | None = None,
    force: bool = False,
) -> tuple[Path, Path]:
    """Write one drop (customers CSV + transactions JSON Lines) into ``out_dir``; returns both paths.

    Raises FileExistsError if a target exists and ``force`` is false (nothing is written then).
    """
    c_path, t_path, _, _ = _write_drop(
        out_dir, n_customers, seed=seed, as_of=as_of, days=days, drift=drift, drop=drop, force=force
    )
    return c_path, t_path


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m hvbuyer_assets.datagen", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--customers", type=int, required=True, help="number of customers N")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", choices=DRIFTS, default="none")
    parser.add_argument("--as-of", default=DEFAULT_AS_OF, help="window end date YYYY-MM-DD (UTC midnight)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="window length in days")
    parser.add_argument("--drop", default=None, help="write customers_NAME.csv / transactions_NAME.json")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if _as_of_timestamp(args.as_of) > pd.Timestamp.now(tz="UTC"):
            print(
                f"datagen: warning: --as-of {args.as_of} is in the future; the pipeline will set aside "
                "transactions stamped after the files arrive",
                file=sys.stderr,
            )
        c_path, t_path, n_c, n_t = _write_drop(
            args.out,
            args.customers,
            seed=args.seed,
            as_of=args.as_of,
            days=args.days,
            drift=args.drift,
            drop=args.drop,
            force=args.force,
        )
    except (FileExistsError, ValueError) as exc:
        print(f"datagen: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"datagen: wrote {n_c:,} customer rows to {c_path} and {n_t:,} transaction rows to {t_path} "
        f"(seed={args.seed}, as_of={args.as_of}, days={args.days}, drift={args.drift}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
