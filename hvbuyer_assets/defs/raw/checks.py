"""Checks on raw and clean data, derived from each source's declaration (``core.sources``). Results are
computed in the asset bodies from the frames already in memory (re-reading 20M transactions per check would cost
more than the checks themselves)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core import checks as core_checks
from hvbuyer_assets.core.checks import QUARANTINE_ERROR_SHARE, QUARANTINE_WARN_SHARE
from hvbuyer_assets.core.cleaning import ROW_DROPPED, CleanResult
from hvbuyer_assets.core.cleaning.quarantine import common_reasons
from hvbuyer_assets.core.sources import RawSource

_SHARE_DESCRIPTION = (
    f"Warn above {QUARANTINE_WARN_SHARE:.0%} of rows dropped, fail above {QUARANTINE_ERROR_SHARE:.0%} "
    "(a drop smaller than HVBUYER_QUARANTINE_MIN_ROWS only warns). Names the most common reasons."
)
_SHARE_REASONS = 3  # most common (file, reason) pairs named by the quarantine share check


def contract_spec(source: RawSource) -> dg.AssetCheckSpec:
    """The blocking check that every file of the source follows the contract (on its raw asset)."""
    return dg.AssetCheckSpec(
        source.contract_check, asset=source.raw_asset, blocking=True, description=source.contract_description
    )


def clean_specs(source: RawSource) -> list[dg.AssetCheckSpec]:
    """The blocking checks of the source's clean asset: ids unique, its value checks, quarantine share."""
    return [
        dg.AssetCheckSpec(
            source.unique_check,
            asset=source.clean_asset,
            blocking=True,
            description=f"Every {source.key} is present and appears once (cleaning keeps the latest record).",
        ),
        *(
            dg.AssetCheckSpec(check.name, asset=source.clean_asset, blocking=True, description=check.description)
            for check in source.checks
        ),
        dg.AssetCheckSpec(source.share_check, asset=source.clean_asset, blocking=True, description=_SHARE_DESCRIPTION),
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


def clean_results(
    source: RawSource,
    result: CleanResult,
    *needed: pd.DataFrame,
    min_rows: int = core_checks.QUARANTINE_MIN_ROWS,
) -> Iterator[dg.AssetCheckResult]:
    """Results of :func:`clean_specs` for a cleaning result; ``needed`` are the clean frames of
    ``source.needs``; ``min_rows``: the quarantine share rule's minimum sample (``core.checks.quarantine_share``)."""
    clean = result.clean
    frames = dict(zip(source.needs, needed, strict=True))
    yield _unique(source.unique_check, clean[source.key])
    for check in source.checks:
        bad = check.bad_rows(clean, *(frames[kind] for kind in check.needs))
        yield _bad_count(check.name, pd.Series(bad), check.what)
    yield _share(source.share_check, result, min_rows)


def _arrow(values: pd.Series) -> pa.ChunkedArray:
    # Checks run on 20M-row columns: pyarrow kernels on the string[pyarrow] buffers are ~10x faster than the
    # pandas equivalents (which materialise Python objects).
    return pa.chunked_array([pa.array(values)])


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


def _share(check_name: str, result: CleanResult, min_rows: int) -> dg.AssetCheckResult:
    rows_read, rows_dropped = int(result.stats.get("rows_read", 0)), int(result.stats.get("rows_dropped", 0))
    reasons = common_reasons(result.quarantine, _SHARE_REASONS, by_file=True, action=ROW_DROPPED)
    outcome = core_checks.quarantine_share(rows_read, rows_dropped, reasons, min_rows)
    metadata = {**outcome.metadata, "common_reasons": dg.MetadataValue.json(outcome.metadata["common_reasons"])}
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata=metadata,
    )


def _bad_count(check_name: str, bad: pd.Series, what: str) -> dg.AssetCheckResult:
    count = int(bad.sum())
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=count == 0,
        description=f"{count} {what}" if count else "ok",
        metadata={"violations": count},
    )
