"""Cleaning rules of the customers source: typed, de-duplicated customer records; bad values become missing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core.cleaning.dedup import key_codes, latest_wins
from hvbuyer_assets.core.cleaning.lineage import Rows, arrived_array
from hvbuyer_assets.core.cleaning.quarantine import (
    ROW_DROPPED,
    VALUE_NULLED,
    CleanResult,
    duplicate_part,
    quarantine_frame,
    quarantine_part,
    sentence,
)
from hvbuyer_assets.core.rules import AGE_MAX, AGE_MIN, normalise_region
from hvbuyer_assets.core.text import (
    NAT,
    TS,
    arrow,
    clean_text,
    column,
    np_mask,
    parse_number,
    parse_timestamps,
    take,
    to_frame,
    ts_ns,
    utc_text,
)


def clean_customers(raw: pd.DataFrame) -> CleanResult:
    """Typed, de-duplicated customers. Only rows without customer_id are dropped; bad fields become missing.

    Output: customer_id (string, unique), age (float64, NaN outside [AGE_MIN, AGE_MAX]), region (normalised),
    signup_date (datetime64[ns, UTC]; NaT if unparseable or after the drop arrived), loyalty_points (float64,
    NaN if negative). Duplicate ids: the latest record wins as a whole. Missing values are not quarantined;
    impossible or unparseable ones are (action ``value_nulled``).
    """
    rows = Rows(raw)
    raw_cid = column(raw, "customer_id")
    cid = clean_text(raw_cid)
    parts: list[pa.Table] = []

    no_id = np_mask(pc.is_null(cid))
    no_id_idx = np.flatnonzero(no_id)
    parts.append(
        quarantine_part(
            rows,
            no_id_idx,
            take(cid, no_id_idx),
            "customer_id",
            take(raw_cid, no_id_idx),
            "customer_id is missing",
            ROW_DROPPED,
        )
    )
    with_id = np.flatnonzero(~no_id)
    dup, kept_of_dup = latest_wins(rows, with_id, key_codes(cid)[with_id])
    dup_idx, kept_for_dup = with_id[dup], with_id[kept_of_dup]
    parts.append(duplicate_part(rows, dup_idx, kept_for_dup, take(cid, dup_idx), "customer_id"))
    keep = ~no_id
    keep[dup_idx] = False
    kept = np.flatnonzero(keep)

    k_cid = take(cid, kept)
    fields = {c: take(column(raw, c), kept) for c in ("age", "loyalty_points", "signup_date", "region")}
    text = {c: clean_text(v) for c, v in fields.items() if c != "region"}
    age, age_bad = parse_number(text["age"], None)
    age_out = (age < AGE_MIN) | (age > AGE_MAX)
    points, points_bad = parse_number(text["loyalty_points"], r"[,\s]")
    points_neg = points < 0
    signup = parse_timestamps(text["signup_date"])
    signup_bad = np_mask(pc.and_(pc.is_null(signup), pc.is_valid(text["signup_date"])))
    arrived = rows.arrived[kept]
    signup_future = (ts_ns(signup) > arrived) & (arrived != NAT)

    def arrived_text(local: np.ndarray) -> pa.Array:
        return utc_text(arrived_array(rows, kept[local]))

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
        reason = sentence(before, take(text[name], local), *tail)
        parts.append(
            quarantine_part(
                rows, kept[local], take(k_cid, local), name, take(fields[name], local), reason, VALUE_NULLED
            )
        )

    age[age_out] = np.nan
    points[points_neg] = np.nan
    signup = pc.if_else(pa.array(signup_future), pa.scalar(None, TS), signup.combine_chunks())
    clean = to_frame(
        {
            "customer_id": k_cid,
            "age": pa.array(age),
            "region": arrow(normalise_region(_series(fields["region"]))),
            "signup_date": signup,
            "loyalty_points": pa.array(points),
        }
    )
    quarantine = quarantine_frame(parts)
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


def out_of_range(clean: pd.DataFrame) -> pd.Series:
    """Rows of a clean customers frame breaking its value rules: age outside [AGE_MIN, AGE_MAX] or negative
    loyalty_points (missing values are allowed)."""
    bad_age = clean["age"].notna() & ~clean["age"].between(AGE_MIN, AGE_MAX)
    bad_points = clean["loyalty_points"].notna() & (clean["loyalty_points"] < 0)
    return bad_age | bad_points
