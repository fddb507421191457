"""Checks on raw and clean data. Results are computed in the asset bodies from the frames already in memory
(re-reading 20M transactions per check would cost more than the checks themselves)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core import cleaning, contract

# Share of rows set aside (duplicates excluded): real exports lose a few percent; far more means a broken export.
QUARANTINE_WARN_SHARE = 0.05
QUARANTINE_ERROR_SHARE = 0.30

CUSTOMERS_CONTRACT = dg.AssetCheckSpec(
    "customers_contract",
    asset="raw_customers",
    blocking=True,
    description="Every customers*.csv parses and has the contract columns; at least one file exists.",
)
TRANSACTIONS_CONTRACT = dg.AssetCheckSpec(
    "transactions_contract",
    asset="raw_transactions",
    blocking=True,
    description="Every transactions*.json(l) parses and has the contract columns; at least one file exists.",
)
CUSTOMER_CHECKS = [
    dg.AssetCheckSpec("customer_ids_unique", asset="clean_customers", blocking=True),
    dg.AssetCheckSpec(
        "customer_values_in_range",
        asset="clean_customers",
        blocking=True,
        description=f"age in [{cleaning.AGE_MIN}, {cleaning.AGE_MAX}] or missing, loyalty_points >= 0 or missing.",
    ),
    dg.AssetCheckSpec(
        "customer_quarantine_share",
        asset="clean_customers",
        blocking=True,
        description=f"Warn above {QUARANTINE_WARN_SHARE:.0%} of rows dropped, fail above {QUARANTINE_ERROR_SHARE:.0%}.",
    ),
]
TRANSACTION_CHECKS = [
    dg.AssetCheckSpec("transaction_ids_unique", asset="clean_transactions", blocking=True),
    dg.AssetCheckSpec(
        "transaction_values_valid",
        asset="clean_transactions",
        blocking=True,
        description="amount > 0 and finite, timestamp present, status one of the contract's values.",
    ),
    dg.AssetCheckSpec(
        "transactions_reference_known_customers",
        asset="clean_transactions",
        blocking=True,
        description="Referential integrity: every transaction's customer_id is a clean customer.",
    ),
    dg.AssetCheckSpec(
        "transaction_quarantine_share",
        asset="clean_transactions",
        blocking=True,
        description=f"Warn above {QUARANTINE_WARN_SHARE:.0%} of rows dropped, fail above {QUARANTINE_ERROR_SHARE:.0%}.",
    ),
]


def contract_result(check_name: str, violations: list[str]) -> dg.AssetCheckResult:
    """Pass when no raw file broke the contract; the description names each file and its problem."""
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not violations,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(violations) if violations else "all files follow the contract",
        metadata={"violations": dg.MetadataValue.json(violations)},
    )


def _arrow(values: pd.Series) -> pa.ChunkedArray:
    # Checks run on 20M-row columns: pyarrow kernels on the string[pyarrow] buffers are ~10x faster than the
    # pandas equivalents (which materialise Python objects).
    return pa.chunked_array([pa.array(values)])


def _in(values: pd.Series, allowed: pd.Series | tuple[str, ...]) -> np.ndarray:
    value_set = pa.array(list(allowed), type=pa.string()) if isinstance(allowed, tuple) else pa.array(allowed)
    mask = pc.is_in(_arrow(values).cast(pa.string()), value_set=value_set.cast(pa.string()))
    return mask.to_numpy(zero_copy_only=False).astype(bool)


def duplicated_values(values: pd.Series) -> pa.ChunkedArray:
    """Values present more than once (each extra copy listed once); sort-based, faster than hashing here."""
    arr = _arrow(values)
    ordered = arr.take(pc.sort_indices(arr))
    if len(ordered) < 2:
        return ordered.slice(0, 0)
    same = pc.fill_null(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1)), False)
    return ordered.slice(1).filter(same)


def _unique(check_name: str, ids: pd.Series) -> dg.AssetCheckResult:
    duplicated = duplicated_values(ids)
    missing = int(ids.isna().sum())
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=len(duplicated) == 0 and missing == 0,
        description=f"{len(duplicated)} duplicate and {missing} missing ids",
        metadata={
            "duplicates": len(duplicated),
            "missing": missing,
            "examples": dg.MetadataValue.json(duplicated.slice(0, 5).to_pylist()),
        },
    )


def _share(check_name: str, stats: dict[str, int]) -> dg.AssetCheckResult:
    rows = max(int(stats.get("rows_read", 0)), 1)
    share = int(stats.get("rows_dropped", 0)) / rows
    severity = dg.AssetCheckSeverity.ERROR if share > QUARANTINE_ERROR_SHARE else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=share <= QUARANTINE_WARN_SHARE,
        severity=severity,
        description=f"{share:.2%} of {rows} rows quarantined",
        metadata={"share": float(share), "rows_dropped": int(stats.get("rows_dropped", 0))},
    )


def _bad_count(check_name: str, bad: pd.Series, what: str) -> dg.AssetCheckResult:
    count = int(bad.sum())
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=count == 0,
        description=f"{count} {what}" if count else "ok",
        metadata={"violations": count},
    )


def customer_results(result: cleaning.CleanResult) -> Iterator[dg.AssetCheckResult]:
    """Results of CUSTOMER_CHECKS for a cleaning result."""
    clean = result.clean
    yield _unique("customer_ids_unique", clean["customer_id"])
    bad_age = clean["age"].notna() & ~clean["age"].between(cleaning.AGE_MIN, cleaning.AGE_MAX)
    bad_points = clean["loyalty_points"].notna() & (clean["loyalty_points"] < 0)
    yield _bad_count("customer_values_in_range", bad_age | bad_points, "customers with out-of-range values")
    yield _share("customer_quarantine_share", result.stats)


def transaction_results(result: cleaning.CleanResult, customer_ids: pd.Series) -> Iterator[dg.AssetCheckResult]:
    """Results of TRANSACTION_CHECKS for a cleaning result."""
    clean = result.clean
    yield _unique("transaction_ids_unique", clean["transaction_id"])
    amount = clean["amount"].to_numpy(dtype="float64", na_value=np.nan)
    bad = (
        ~(np.isfinite(amount) & (amount > 0))
        | clean["timestamp"].isna().to_numpy()
        | ~_in(clean["status"], contract.TRANSACTION_STATUSES)
    )
    yield _bad_count("transaction_values_valid", pd.Series(bad), "transactions with invalid values")
    orphans = ~_in(clean["customer_id"], customer_ids)
    yield _bad_count("transactions_reference_known_customers", pd.Series(orphans), "transactions of unknown customers")
    yield _share("transaction_quarantine_share", result.stats)
