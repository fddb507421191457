"""Raw drops -> contract-checked raw tables -> clean tables + quarantine: two assets per raw source, built from
its declaration (`core.sources.SOURCES`), partitioned by drop (`defs.partitions.DROPS`): a run parses, checks and
cleans one drop; the clean data of the drops before it is read only for the ids its cross-drop rules need."""

import time
from collections.abc import Iterator, Mapping

import dagster as dg
import pandas as pd

from hvbuyer_assets.core import contract, drops
from hvbuyer_assets.core.cleaning import CleanResult
from hvbuyer_assets.core.cleaning.quarantine import common_reasons
from hvbuyer_assets.core.sources import BY_KIND, SOURCES, RawSource
from hvbuyer_assets.defs.checks_gate import gate
from hvbuyer_assets.defs.metadata import metadata_of
from hvbuyer_assets.defs.partitions import DROPS, earlier_drops
from hvbuyer_assets.defs.raw import checks
from hvbuyer_assets.defs.raw.history import StoredEarlierDrops
from hvbuyer_assets.defs.raw.resources import RawFileInfo, RawStorageResource
from hvbuyer_assets.memory import release_memory
from hvbuyer_assets.storage.catalog import source_assets


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
    )
    def _raw(
        context: dg.AssetExecutionContext, config: RawFilesConfig, raw_storage: RawStorageResource
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        raw, files, violations = _read_drops(raw_storage, source, context.partition_key, config.files)
        file_rows = _file_rows(raw, files)
        violations += drops.emptied_files(_stored_file_rows(context), file_rows, context.partition_key)
        outputs = _raw_output(raw, files, file_rows, violations)
        yield from gate(outputs, [checks.contract_result(spec.name, violations)], [spec])

    return _raw


def clean_asset(source: RawSource) -> dg.AssetsDefinition:
    """`clean_<kind>` + `quarantined_<kind>` of one drop: the source's cleaning rules applied to its raw table (and
    the clean tables of the sources it needs, same drop; ids of earlier drops), with the clean checks."""
    ins = {source.raw_asset: dg.AssetIn(dagster_type=pd.DataFrame)}
    ins.update({BY_KIND[kind].clean_asset: dg.AssetIn(dagster_type=pd.DataFrame) for kind in source.needs})
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
        # every source's contract check (blocking) gates every cleaning: a refused file of one source replaces
        # no clean table of another
        deps=[other.raw_asset for other in SOURCES if other.raw_asset not in ins],
        partitions_def=DROPS,
        required_resource_keys={"io_manager", "ingest"},
    )
    def _clean(context: dg.AssetExecutionContext, **inputs: pd.DataFrame) -> Iterator[dg.Output | dg.AssetCheckResult]:
        needed = [inputs[BY_KIND[kind].clean_asset] for kind in source.needs]
        earlier = StoredEarlierDrops(
            context.resources.io_manager, earlier_drops(context.instance, context.partition_key)
        )
        started = time.perf_counter()
        result = source.clean(inputs[source.raw_asset], *needed, earlier=earlier)
        _empty_in_place(inputs[source.raw_asset])
        metadata = {
            **_stats(result.stats),
            "clean_seconds": round(time.perf_counter() - started, 2),
            "earlier_drops": len(earlier.keys),
            "earlier_ids_seconds": round(earlier.seconds, 2),
        }
        outputs = [
            dg.Output(result.clean, output_name=source.clean_asset, metadata=metadata),
            dg.Output(result.quarantine, output_name=source.quarantine_asset, metadata=_reasons(result)),
        ]
        references = [result.references.get(kind, frame) for kind, frame in zip(source.needs, needed, strict=True)]
        min_rows = context.resources.ingest.quarantine_min_rows
        yield from gate(outputs, checks.clean_results(source, result, *references, min_rows=min_rows), specs)

    return _clean


ASSETS = [asset for source in SOURCES for asset in (raw_asset(source), clean_asset(source))]


def _empty_in_place(raw: pd.DataFrame) -> None:
    """Release a raw input once it is cleaned. Dagster holds a step's inputs until the step ends, so the raw drop
    (~2.5 GiB of text at 20M rows) would otherwise sit beside the checks' sort of the clean ids: the step's peak
    (bench-pipeline: the whole graph's peak). The frame was loaded for this step alone; nothing else reads it."""
    raw.drop(columns=list(raw.columns), inplace=True)
    release_memory()


def _read_drops(
    storage: RawStorageResource, source: RawSource, partition: str, only: list[str] | None = None
) -> tuple[pd.DataFrame, list[RawFileInfo], list[str]]:
    """Read the source's files of one drop (or only the named ones); files that break the contract are listed,
    not read."""
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
    names = [info.name for info in files]  # one categorical dtype for every frame: pd.concat keeps it
    frames = []
    for info in files:
        if info.problem:
            violations.append(f"{info.name}: {info.problem}")
            continue
        try:
            with storage.open(info.uri) as handle:
                table = source.reader(handle, info.name)
        except contract.ContractViolation as exc:
            violations.append(str(exc))
            continue
        frame = contract.raw_to_frame(table, source_files=names)
        del table
        frame["arrived_at"] = info.modified
        frames.append(frame)
    if not files and only is None and not _other_kinds(storage, source, drop):
        violations.append(f"{storage.uri}: no raw file of drop {partition} ({' or '.join(source.patterns)})")
    raw = pd.concat(frames, ignore_index=True) if frames else _empty(source)
    return raw, files, violations


def _other_kinds(storage: RawStorageResource, source: RawSource, drop: str) -> bool:
    """Whether the drop has files of other sources (a drop with a marker may lack a kind: that kind is empty)."""
    patterns = tuple(p for other in SOURCES if other is not source for p in other.patterns)
    return any(drops.drop_name(info.name) == drop for info in storage.list_files(patterns)) if patterns else False


def _empty(source: RawSource) -> pd.DataFrame:
    """The raw frame of a drop without files of this source: the contract columns, no rows."""
    text = pd.StringDtype("pyarrow")
    frame = pd.DataFrame({c: pd.Series([], dtype=text) for c in (*source.columns, "source_file")})
    frame["source_row"] = pd.Series([], dtype="int64")
    frame["arrived_at"] = pd.Series([], dtype="datetime64[ns, UTC]")
    return frame


def _file_rows(raw: pd.DataFrame, files: list[RawFileInfo]) -> dict[str, int]:
    """Rows per file read (a file that broke the contract is not in ``raw``: not counted)."""
    counts = raw["source_file"].astype("string").value_counts()
    read = set(counts.index) | {f.name for f in files if not f.problem}
    return {name: int(counts.get(name, 0)) for name in sorted(read)}


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
    raw: pd.DataFrame, files: list[RawFileInfo], file_rows: dict[str, int], violations: list[str]
) -> Iterator[dg.Output]:
    """The raw table (lazily: a refused drop never builds it; the failed check names file and problem)."""
    yield dg.Output(
        raw,
        metadata={
            "rows": len(raw),
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


def _reasons(result: CleanResult) -> dict[str, object]:
    """Quarantine counts by kind of reason (values masked), for the UI."""
    top = {r.reason: r.rows for r in common_reasons(result.quarantine, 20)}
    return {"rows": len(result.quarantine), "reasons": dg.MetadataValue.json(top)}
