"""Rendering the world as raw text with the mess injected: Arrow string columns of the transactions (and their
JSON Lines) and of the customers CSV. Vectorised with pyarrow compute, no per-row Python."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.datagen.mess import BAD_AGES, BAD_TIMESTAMPS, COMMA_SHARE
from hvbuyer_assets.datagen.people import REGIONS, Customers
from hvbuyer_assets.datagen.transactions import PAYMENT_METHODS, STATUSES, Events
from hvbuyer_assets.datagen.world import DAY, DRIFT_CODE, kinds


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
    day = seconds // DAY
    first = int(day.min())
    table = np.datetime_as_string(np.arange(first, int(day.max()) + 1).astype("datetime64[D]"))
    return _lookup(table.tolist(), day - first)


@functools.cache
def _time_of_day() -> pa.Array:
    return pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)], pa.string())


def _iso(seconds: np.ndarray) -> pa.Array:
    """'YYYY-MM-DDTHH:MM:SS' (UTC wall time of epoch seconds), no zone suffix."""
    return pc.binary_join_element_wise(_dates(seconds), _time_of_day().take(pa.array(seconds % DAY)), "T")


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


def render_transactions(
    ev: Events, rows: np.ndarray, n_customers: int, id_prefix: str
) -> tuple[dict[str, pa.Array], dict[str, np.ndarray]]:
    """String columns for the given file rows, plus masks of rows whose id key is omitted from the JSON."""
    i = ev.rows[rows]
    width = max(7, len(str(n_customers)))
    tid = _null_where(_ids(id_prefix, i + 1, 9), ev.tid_kind[i] > 0)
    cid = _null_where(_ids("C", ev.cust[i].astype(np.int64) + 1, width), ev.cid_kind[i] > 0)

    cents, kind = ev.cents[i], ev.amount_kind[i]
    amount = _money(cents)
    comma = (kind == 0) & (cents >= 100_000) & _hash_share(i, COMMA_SHARE)
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
        ts = _put(ts, bad, _lookup(BAD_TIMESTAMPS, i[bad] % len(BAD_TIMESTAMPS)))
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


def json_lines(columns: dict[str, pa.Array], omitted: dict[str, np.ndarray]) -> pa.Array:
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


def customer_table(c: Customers, seed: int, drift: str) -> pa.Table:
    """customers.csv content as string columns, with the documented mess."""
    n = len(c.age)
    world = "demographics" if drift == "demographics" else "none"
    rng = np.random.default_rng([seed, n, DRIFT_CODE[world], 0x3E55C])
    ids = _ids("C", np.arange(1, n + 1), max(7, len(str(n))))

    age_kind = kinds(rng, {"missing": 0.01, "impossible": 0.005}, n)
    ages = c.age.astype(np.int64)
    ages[age_kind == 2] = rng.choice(BAD_AGES, int((age_kind == 2).sum()))
    age = _null_where(_str(ages), age_kind == 1)

    region_kind = kinds(rng, {"variant": 0.015, "missing": 0.008}, n)
    forms = [v for r in REGIONS for v in (r, f" {r.lower()}", f"{r.upper()} ", f"{r.lower()}  ", f"  {r}")]
    form = np.where(region_kind == 1, 1 + rng.integers(0, 4, n), 0)
    region = _null_where(_lookup(forms, c.region.astype(np.int64) * 5 + form), region_kind == 2)

    signup = _null_where(_dates(c.signup), rng.random(n) < 0.005)

    loyalty_kind = kinds(rng, {"negative": 0.005, "missing": 0.003}, n)
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
