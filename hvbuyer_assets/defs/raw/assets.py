"""Raw drops -> contract-checked raw tables -> clean tables + quarantine."""

import time
from collections.abc import Callable, Iterator

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hvbuyer_assets.core import cleaning, contract
from hvbuyer_assets.core.drops import CUSTOMER_PATTERNS, TRANSACTION_PATTERNS
from hvbuyer_assets.defs.raw import checks
from hvbuyer_assets.defs.resources import RawFileInfo, RawStorageResource, layer


class RawFilesConfig(dg.Config):
    """Which raw files to read. ``files`` unset: every matching file (a full build from the CLI or the UI);
    ``raw_drop_sensor`` sets it to the files of the complete drops, so a file still being written is never read."""

    files: list[str] | None = None


def _read_drops(
    storage: RawStorageResource,
    patterns: tuple[str, ...],
    reader: Callable[[object, str], pa.Table],
    only: list[str] | None = None,
) -> tuple[pd.DataFrame, list[RawFileInfo], list[str]]:
    """Read every matching raw file (or only the named ones); files that break the contract are listed, not read."""
    files = storage.list_files(patterns)
    violations = []
    if only is not None:
        present = {info.name for info in files}
        violations = [
            f"{storage.uri}/{name}: listed for this run but not in the raw location"
            for name in only
            if name not in present
        ]
        files = [info for info in files if info.name in set(only)]
    names = [info.name for info in files]  # one categorical dtype for every frame: pd.concat keeps it
    frames = []
    for info in files:
        try:
            with storage.open(info.uri) as source:
                table = reader(source, info.name)
        except contract.ContractViolation as exc:
            violations.append(str(exc))
            continue
        frame = contract.raw_to_frame(table, source_files=names)
        del table
        frame["arrived_at"] = info.modified
        frames.append(frame)
    if not files:
        violations.append(f"{storage.uri}: no file matching {' or '.join(patterns)}")
    raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return raw, files, violations


def _raw_output(
    raw: pd.DataFrame, files: list[RawFileInfo], violations: list[str], check_name: str
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    yield dg.Output(
        raw,
        metadata={
            "rows": len(raw),
            "files": dg.MetadataValue.json([f.name for f in files]),
            # What was read, by version: raw_drop_sensor treats these as consumed once the run succeeded.
            "file_versions": dg.MetadataValue.json({f.name: f.version for f in files}),
            "contract_violations": len(violations),
        },
    )
    yield checks.contract_result(check_name, violations)


@dg.asset(
    group_name="raw",
    metadata=layer("interim"),
    kinds={"pandas", "parquet"},
    check_specs=[checks.CUSTOMERS_CONTRACT],
    description="Every customers*.csv in the raw location, read with pyarrow and checked against the contract.",
)
def raw_customers(config: RawFilesConfig, raw_storage: RawStorageResource) -> Iterator[dg.Output | dg.AssetCheckResult]:
    raw, files, violations = _read_drops(raw_storage, CUSTOMER_PATTERNS, contract.read_customers_file, config.files)
    yield from _raw_output(raw, files, violations, checks.CUSTOMERS_CONTRACT.name)


@dg.asset(
    group_name="raw",
    metadata=layer("interim"),
    kinds={"pandas", "parquet"},
    check_specs=[checks.TRANSACTIONS_CONTRACT],
    description="Every transactions*.json / *.jsonl in the raw location (JSON Lines or array), contract-checked.",
)
def raw_transactions(
    config: RawFilesConfig, raw_storage: RawStorageResource
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    raw, files, violations = _read_drops(
        raw_storage, TRANSACTION_PATTERNS, contract.read_transactions_file, config.files
    )
    yield from _raw_output(raw, files, violations, checks.TRANSACTIONS_CONTRACT.name)


@dg.multi_asset(
    group_name="processed",
    outs={
        "clean_customers": dg.AssetOut(metadata=layer("processed"), kinds={"pandas", "parquet"}),
        "quarantined_customers": dg.AssetOut(metadata=layer("quarantine"), kinds={"pandas", "parquet"}),
    },
    check_specs=checks.CUSTOMER_CHECKS,
    description="Typed, normalised, de-duplicated customers (latest record wins) and their quarantine rows.",
)
def clean_customers(raw_customers: pd.DataFrame) -> Iterator[dg.Output | dg.AssetCheckResult]:
    result = cleaning.clean_customers(raw_customers)
    yield dg.Output(result.clean, output_name="clean_customers", metadata=_stats(result.stats))
    yield dg.Output(result.quarantine, output_name="quarantined_customers", metadata=_reasons(result))
    yield from checks.customer_results(result)


@dg.multi_asset(
    group_name="processed",
    outs={
        "clean_transactions": dg.AssetOut(metadata=layer("processed"), kinds={"pandas", "parquet"}),
        "quarantined_transactions": dg.AssetOut(metadata=layer("quarantine"), kinds={"pandas", "parquet"}),
    },
    check_specs=checks.TRANSACTION_CHECKS,
    description="Typed, UTC, de-duplicated usable transactions of known customers and their quarantine rows.",
)
def clean_transactions(
    raw_transactions: pd.DataFrame, clean_customers: pd.DataFrame
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    started = time.perf_counter()
    result = cleaning.clean_transactions(raw_transactions, clean_customers["customer_id"])
    metadata = {**_stats(result.stats), "clean_seconds": round(time.perf_counter() - started, 2)}
    yield dg.Output(result.clean, output_name="clean_transactions", metadata=metadata)
    yield dg.Output(result.quarantine, output_name="quarantined_transactions", metadata=_reasons(result))
    yield from checks.transaction_results(result, clean_customers["customer_id"])


def _stats(stats: dict[str, int]) -> dict[str, int]:
    return {key: int(value) for key, value in stats.items()}


def _reasons(result: cleaning.CleanResult) -> dict[str, object]:
    """Quarantine counts by kind of reason (values masked), for the UI; pyarrow: ~400k rows at 20M input."""
    reasons = pa.array(result.quarantine["reason"], type=pa.string())
    kinds = pc.value_counts(pc.replace_substring_regex(reasons, r"'[^']*'|\d[\d.,:TZ+-]*", "…"))
    top = sorted(
        zip(kinds.field("values").to_pylist(), kinds.field("counts").to_pylist(), strict=True), key=lambda kv: -kv[1]
    )[:20]
    return {"rows": len(result.quarantine), "reasons": dg.MetadataValue.json(dict(top))}
