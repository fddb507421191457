"""Raw drops -> contract-checked raw tables -> clean tables + quarantine: two assets per raw source, built from
its declaration (`core.sources.SOURCES`), partitioned by drop (`defs.partitions.DROPS`): a run parses, checks and
cleans one drop; the clean data of the drops before it is read only for the ids its cross-drop rules need.

Both steps work a chunk at a time (``HVBUYER_RAW_CHUNK_BYTES`` of raw text): the raw step parses a chunk and
appends it to its stored table as one row group; the clean step cleans one stored row group at a time
(``core.cleaning.chunks``), staged a row group per month in time order, so that the staged file is the clean
table unless the rule across chunks removes rows. Each writes into a staged file (``storage.staged``) that the IO
manager moves into place only when the step's blocking checks pass, so a refused drop still replaces nothing."""

import time
from collections.abc import Iterator, Mapping

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from hvbuyer_assets.core import checks as core_checks
from hvbuyer_assets.core import contract, drops
from hvbuyer_assets.core.cleaning.chunks import clean_chunks, final_chunks
from hvbuyer_assets.core.cleaning.quarantine import common_reasons
from hvbuyer_assets.core.sources import BY_KIND, SOURCES, RawSource
from hvbuyer_assets.defs.checks_gate import gate
from hvbuyer_assets.defs.metadata import metadata_of
from hvbuyer_assets.defs.partitions import DROPS, earlier_drops
from hvbuyer_assets.defs.raw import checks
from hvbuyer_assets.defs.raw.history import StoredEarlierDrops
from hvbuyer_assets.defs.raw.resources import RawFileInfo, RawStorageResource
from hvbuyer_assets.defs.raw.stored import StoredRaw
from hvbuyer_assets.storage.catalog import source_assets
from hvbuyer_assets.storage.staged import StagedParquet
from hvbuyer_assets.storage.time_groups import by_month, month_order


class RawFilesConfig(dg.Config):
    """Which raw files to read. `files` unset: every file of the run's drop (partition), e.g. a backfill of one
    drop from the UI; `raw_drop_sensor` sets it to the files of the complete drop it saw, so a file still being
    written is never read."""

    files: list[str] | None = None


def raw_asset(source: RawSource) -> dg.AssetsDefinition:
    """`raw_<kind>` of one drop: the drop's files of the source, read and checked against the contract."""

    spec = checks.contract_spec(source)

    @dg.asset(
        name=source.raw_asset,
        group_name="raw",
        metadata=metadata_of(source_assets(source).raw),
        kinds={"pandas", "parquet"},
        check_specs=[spec],
        description=source.raw_description,
        output_required=False,  # a refused drop stores nothing: the interim copy of the last accepted one stays
        partitions_def=DROPS,
        required_resource_keys={"raw_storage", "io_manager", "ingest"},
    )
    def _raw(context: dg.AssetExecutionContext, config: RawFilesConfig) -> Iterator[dg.Output | dg.AssetCheckResult]:
        stage = context.resources.io_manager.staged(source_assets(source).raw, context.partition_key)
        try:
            files, file_rows, violations = _read_drops(
                context.resources.raw_storage,
                source,
                context.partition_key,
                config.files,
                stage,
                context.resources.ingest.chunk_bytes,
            )
            violations += drops.emptied_files(_stored_file_rows(context), file_rows, context.partition_key)
            outputs = _raw_output(stage, files, file_rows, violations)
            yield from gate(outputs, [checks.contract_result(spec.name, violations)], [spec])
        finally:
            stage.discard()  # nothing when committed

    return _raw


def clean_asset(source: RawSource) -> dg.AssetsDefinition:
    """`clean_<kind>` + `quarantined_<kind>` of one drop: the source's cleaning rules applied to its raw table (and
    the clean tables of the sources it needs, same drop; ids of earlier drops), with the clean checks."""
    ins = {BY_KIND[kind].clean_asset: dg.AssetIn(dagster_type=pd.DataFrame) for kind in source.needs}
    specs = checks.clean_specs(source)

    @dg.multi_asset(
        name=source.clean_asset,
        group_name="processed",
        ins=ins,
        outs={
            source.clean_asset: dg.AssetOut(
                is_required=False,  # a failed blocking check stores neither table (defs.checks_gate)
                metadata=metadata_of(source_assets(source).clean),
                kinds={"pandas", "parquet"},
                description=f"{source.clean_description} Rows set aside are in {source.quarantine_asset}.",
            ),
            source.quarantine_asset: dg.AssetOut(
                is_required=False,
                metadata=metadata_of(source_assets(source).quarantine),
                kinds={"pandas", "parquet"},
                description=f"What cleaning set aside from {source.raw_asset}: one row per problem (file, row, "
                f"record id, field, value as sent, reason, action taken); {source.clean_asset} holds the rest.",
            ),
        },
        check_specs=specs,
        description=source.clean_description,
        # its raw table (read a row group at a time, not as an input), and every source's contract check
        # (blocking) gates every cleaning: a refused file of one source replaces no clean table of another
        deps=[source.raw_asset, *(other.raw_asset for other in SOURCES if other is not source)],
        partitions_def=DROPS,
        required_resource_keys={"io_manager", "ingest"},
    )
    def _clean(context: dg.AssetExecutionContext, **inputs: pd.DataFrame) -> Iterator[dg.Output | dg.AssetCheckResult]:
        store, partition = context.resources.io_manager, context.partition_key
        needed = [inputs[BY_KIND[kind].clean_asset] for kind in source.needs]
        earlier = StoredEarlierDrops(store, earlier_drops(context.instance, partition))
        raw = StoredRaw(store, source_assets(source).raw, partition)
        started = time.perf_counter()
        prepared = source.prepare(raw.ids, *needed, earlier) if source.prepare else earlier
        # each chunk's clean rows, a row group per month in time order (the clean table as stored, unless the
        # rule across chunks removes rows: then rewritten into `out`); their lineage in a local temporary file
        stage = store.staged(source_assets(source).clean, partition)
        out = store.staged(source_assets(source).clean, partition)
        lineage = StagedParquet()
        time_column = source.time_column
        try:
            result = clean_chunks(
                raw.chunks(),
                lambda chunk: source.clean(chunk, *needed, earlier=prepared),
                source.key,
                stage,
                bad_rows=lambda chunk: checks.bad_rows(source, chunk, *needed),
                lineage=lineage,
                arrange=(lambda table: month_order(table, time_column)) if time_column else None,
            )
            lineage.discard()
            if any(len(rows) for rows in result.removed):
                for table in final_chunks(stage, result.removed):
                    for group in by_month(table, time_column) if time_column else [table]:
                        out.write(group)
                stage.discard()
            else:
                stage, out = out, stage  # nothing removed: the stage is the clean table
            stats = _stats(result.stats)
            metadata = {
                **stats,
                # a float, so the asset's Plots tab charts it across drops (the share check judges the same figure)
                "quarantine_share": core_checks.dropped_share(stats.get("rows_read", 0), stats.get("rows_dropped", 0)),
                "chunks": result.chunks,
                "clean_seconds": round(time.perf_counter() - started, 2),
                "earlier_drops": len(earlier.keys),
                "earlier_ids_seconds": round(earlier.seconds, 2),
            }
            outputs = [
                dg.Output(out, output_name=source.clean_asset, metadata=metadata),
                dg.Output(result.quarantine, output_name=source.quarantine_asset, metadata=_reasons(result.quarantine)),
            ]
            min_rows = context.resources.ingest.quarantine_min_rows
            yield from gate(outputs, checks.clean_results(source, result, min_rows=min_rows), specs)
        finally:
            lineage.discard()
            stage.discard()
            out.discard()  # nothing when committed

    return _clean


ASSETS = [asset for source in SOURCES for asset in (raw_asset(source), clean_asset(source))]


def _read_drops(
    storage: RawStorageResource,
    source: RawSource,
    partition: str,
    only: list[str] | None,
    stage: StagedParquet,
    chunk_bytes: int,
) -> tuple[list[RawFileInfo], dict[str, int], list[str]]:
    """Read the source's files of one drop (or only the named ones) a chunk at a time into ``stage``; files that
    break the contract are listed (once one does, the rest are still checked but no longer staged: the drop is
    refused). Returns the files, the rows read per file and the violations."""
    drop = drops.drop_of_partition(partition)
    files = [info for info in storage.list_files(source.patterns) if drops.drop_of_file(info.name, source.kind) == drop]
    violations = []
    if only is not None:
        present = {info.name for info in files}
        violations = [
            f"{storage.uri}/{name}: listed for this run but not in the raw location"
            for name in only
            if name not in present
        ]
        files = [info for info in files if info.name in set(only)]
    stage.schema = _raw_schema(source)
    rows: dict[str, int] = {}
    for info in files:
        if info.problem:
            violations.append(f"{info.name}: {info.problem}")
            continue
        read = 0
        try:
            with storage.open(info.uri) as handle:
                for table in source.reader(handle, info.name, chunk_bytes=chunk_bytes):
                    read += table.num_rows
                    if not violations:
                        arrived = pa.array(np.full(table.num_rows, info.modified.value), pa.timestamp("ns", tz="UTC"))
                        stage.write(table.append_column("arrived_at", arrived))
        except contract.ContractViolation as exc:
            violations.append(str(exc))
            continue
        rows[info.name] = read
    if not files and only is None and not _other_kinds(storage, source, drop):
        violations.append(f"{storage.uri}: no raw file of drop {partition} ({' or '.join(source.patterns)})")
    return files, rows, violations


def _other_kinds(storage: RawStorageResource, source: RawSource, drop: str) -> bool:
    """Whether the drop has files of other sources (a drop with a marker may lack a kind: that kind is empty)."""
    patterns = tuple(p for other in SOURCES if other is not source for p in other.patterns)
    return any(drops.drop_name(info.name) == drop for info in storage.list_files(patterns)) if patterns else False


def _raw_schema(source: RawSource) -> pa.Schema:
    """A stored raw table: the contract columns and ``source_file`` as text, ``source_row``, ``arrived_at``."""
    text = [(c, pa.string()) for c in (*source.columns, "source_file")]
    return pa.schema([*text, ("source_row", pa.int64()), ("arrived_at", pa.timestamp("ns", tz="UTC"))])


def _stored_file_rows(context: dg.AssetExecutionContext) -> dict[str, int]:
    """Rows per file of the drop's stored raw table: metadata ``file_rows`` of the partition's latest
    materialization (empty when it was never stored)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    value = materialization.metadata.get("file_rows") if materialization else None
    if value is None or not isinstance(value.value, Mapping):
        return {}
    return {str(name): int(rows) for name, rows in value.value.items()}


def _raw_output(
    raw: StagedParquet, files: list[RawFileInfo], file_rows: dict[str, int], violations: list[str]
) -> Iterator[dg.Output]:
    """The staged raw table (lazily: a refused drop never stores it; the failed check names file and problem)."""
    yield dg.Output(
        raw,
        metadata={
            "rows": raw.rows,
            "chunks": raw.row_groups,
            "files": dg.MetadataValue.json([f.name for f in files]),
            # Rows per file: a rebuild of the drop that would empty a file's rows is refused (drops.emptied_files).
            "file_rows": dg.MetadataValue.json(file_rows),
            # What was read, by version: raw_drop_sensor treats these as consumed once the run succeeded.
            "file_versions": dg.MetadataValue.json({f.name: f.version for f in files}),
            "contract_violations": len(violations),
        },
    )


def _stats(stats: dict[str, int]) -> dict[str, int]:
    return {key: int(value) for key, value in stats.items()}


def _reasons(quarantine: pd.DataFrame) -> dict[str, object]:
    """Quarantine counts by kind of reason (values masked), for the UI."""
    top = {r.reason: r.rows for r in common_reasons(quarantine, 20)}
    return {"rows": len(quarantine), "reasons": dg.MetadataValue.json(top)}
