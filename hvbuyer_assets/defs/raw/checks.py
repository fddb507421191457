"""Checks on raw and clean data, derived from each source's declaration (``core.sources``). Results are
computed in the asset bodies as the data passes (value checks on each chunk's clean rows, ids from the rule across
chunks: re-reading 20M transactions per check would cost more than the checks themselves)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from hvbuyer_assets.core import checks as core_checks
from hvbuyer_assets.core.checks import QUARANTINE_ERROR_SHARE, QUARANTINE_WARN_SHARE
from hvbuyer_assets.core.cleaning import ROW_DROPPED, CleanResult
from hvbuyer_assets.core.cleaning.chunks import ChunkedClean
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


def bad_rows(source: RawSource, result: CleanResult, *needed: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per value check of the source, the rows of one cleaning result (a chunk's) breaking it; ``needed`` are the
    clean frames of ``source.needs`` (the result's ``references`` replace them where wider)."""
    frames = {kind: result.references.get(kind, frame) for kind, frame in zip(source.needs, needed, strict=True)}
    return {
        check.name: np.asarray(check.bad_rows(result.clean, *(frames[kind] for kind in check.needs)), dtype=bool)
        for check in source.checks
    }


def clean_results(
    source: RawSource, result: ChunkedClean, min_rows: int = core_checks.QUARANTINE_MIN_ROWS
) -> Iterator[dg.AssetCheckResult]:
    """Results of :func:`clean_specs` for a drop cleaned chunk by chunk; ``min_rows``: the quarantine share rule's
    minimum sample (``core.checks.quarantine_share``)."""
    yield _unique(source.unique_check, result.repeated_keys, result.missing_keys)
    for check in source.checks:
        count = result.bad_count(check.name)
        yield dg.AssetCheckResult(
            check_name=check.name,
            passed=count == 0,
            description=f"{count} {check.what}" if count else "ok",
            metadata={"violations": count},
        )
    yield _share(source.share_check, result, min_rows)


def _unique(check_name: str, repeated: list[str], missing: int) -> dg.AssetCheckResult:
    """``repeated``: every copy of a key present more than once."""
    examples = sorted(set(repeated))
    duplicates = len(repeated) - len(examples)
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=duplicates == 0 and missing == 0,
        description=f"{duplicates} duplicate and {missing} missing ids",
        metadata={"duplicates": duplicates, "missing": missing, "examples": dg.MetadataValue.json(examples[:5])},
    )


def _share(check_name: str, result: ChunkedClean, min_rows: int) -> dg.AssetCheckResult:
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
