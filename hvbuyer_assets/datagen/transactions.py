"""The purchase process: Poisson arrivals per customer in the window, amounts, statuses and payment methods,
sorted by time, with the mess codes of every row drawn (rendered by ``rendering``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hvbuyer_assets.core.rules import TRANSACTION_STATUSES
from hvbuyer_assets.datagen.mess import (
    AMOUNT_MESS,
    DUPLICATE_SHARE,
    ID_MESS,
    PM_MESS,
    STATUS_MESS,
    TS_MESS,
    UNKNOWN_SHARE,
)
from hvbuyer_assets.datagen.people import Customers, propensity, shuffled_propensity
from hvbuyer_assets.datagen.world import DAY, DRIFT_CODE, YEAR, categorical, kinds

STATUSES = TRANSACTION_STATUSES
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


@dataclass(frozen=True)
class Events:
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


def simulate_transactions(c: Customers, seed: int, as_of: pd.Timestamp, days: int, drift: str) -> Events:
    """Poisson purchase arrivals per customer in (as_of - days, as_of], sorted by time, with mess codes."""
    n = len(c.age)
    if drift == "concept":
        c = shuffled_propensity(c, seed)
    end = as_of.value // 10**9
    start = end - days * DAY
    key = [seed, int(end // DAY), days, DRIFT_CODE[drift]]
    rng = np.random.default_rng([*key, 0x7A5])
    rate_mult = BEHAVIOUR_RATE_MULT if drift == "behaviour" else 1.0
    amount_mult = BEHAVIOUR_AMOUNT_MULT if drift == "behaviour" else 1.0
    n_seg = -(-days // SEGMENT_DAYS)
    seg_lo = start + np.arange(n_seg, dtype=np.int64) * SEGMENT_DAYS * DAY
    seg_hi = np.minimum(seg_lo + SEGMENT_DAYS * DAY, end)
    parts: list[tuple[np.ndarray, ...]] = []
    for lo_c in range(0, n, CUSTOMER_CHUNK):
        sl = slice(lo_c, min(lo_c + CUSTOMER_CHUNK, n))
        lo = np.maximum(seg_lo[None, :], c.signup[sl, None])  # (chunk, n_seg)
        length = np.maximum(seg_hi[None, :] - lo, 0)
        z_mid = propensity(c, (sl, None), lo + length / 2)
        lam = rate_mult * RATE_PER_YEAR / YEAR * np.exp(RATE_Z * z_mid) * length
        counts = rng.poisson(lam).ravel()
        flat = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
        cust = (flat // n_seg + lo_c).astype(np.int32)
        t = lo.ravel()[flat] + 1 + np.floor(rng.random(flat.size) * length.ravel()[flat]).astype(np.int64)
        t = np.minimum(t, seg_hi[flat % n_seg])
        z = propensity(c, cust, t)
        amount = amount_mult * np.exp(AMOUNT_LOG_MEAN + AMOUNT_Z * z + rng.normal(0.0, AMOUNT_SIGMA, t.size))
        cents = np.round(amount * 100).clip(100, 5_000_000).astype(np.int32)
        status = categorical(rng, STATUS_SHARES, t.size)
        method = categorical(rng, PAYMENT_SHARES, t.size)
        parts.append((cust, t, cents, status, method))

    mess = np.random.default_rng([*key, 0x3E55])
    n_known = sum(len(p[0]) for p in parts)
    n_unknown = int(round(UNKNOWN_SHARE * n_known))
    unknown_ids = max(10, n // 100)
    u_cust = (n + mess.integers(0, unknown_ids, n_unknown)).astype(np.int32)
    u_t = start + 1 + mess.integers(0, days * DAY, n_unknown)
    u_amount = amount_mult * np.exp(AMOUNT_LOG_MEAN + mess.normal(0, AMOUNT_SIGMA * 1.2, n_unknown))
    u_cents = np.round(u_amount * 100).clip(100, 5_000_000).astype(np.int32)
    parts.append(
        (
            u_cust,
            u_t,
            u_cents,
            categorical(mess, STATUS_SHARES, n_unknown),
            categorical(mess, PAYMENT_SHARES, n_unknown),
        )
    )
    cust, t, cents, status, method = (np.concatenate([p[i] for p in parts]) for i in range(5))
    del parts
    order = _time_order(t - start)
    cust, t, cents, status, method = cust[order], t[order], cents[order], status[order], method[order]
    del order
    total = t.size
    dup = (mess.random(total) < DUPLICATE_SHARE).astype(np.int64)
    rows = np.repeat(np.arange(total, dtype=np.int64), 1 + dup)
    return Events(
        cust=cust,
        t=t,
        cents=cents,
        status=status,
        method=method,
        amount_kind=kinds(mess, AMOUNT_MESS, total),
        ts_kind=kinds(mess, TS_MESS, total),
        tid_kind=kinds(mess, ID_MESS, total),
        cid_kind=kinds(mess, ID_MESS, total),
        status_kind=kinds(mess, STATUS_MESS, total),
        method_kind=kinds(mess, PM_MESS, total),
        rows=rows,
    )
