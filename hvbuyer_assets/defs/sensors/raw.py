"""``raw_drop_sensor``: a new complete raw drop (local folder or S3, ``HVBUYER_RAW_URI``) -> its partition and one
run for it.

A thin shell over ``core.drops``: it lists the raw location, reads what the latest successful raw
materializations consumed and the runs it requested earlier from the Dagster instance, and lets
``core.drops.plan`` / ``decide`` say what to do. The cursor (JSON) holds the file versions seen at the previous
tick, for the "unchanged across two ticks" completion rule. Every tick without a request says why.
"""

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource
from dagster_aws.s3.sensor import get_objects

from hvbuyer_assets import registry
from hvbuyer_assets.core import drops
from hvbuyer_assets.core.sources import SOURCES
from hvbuyer_assets.defs.jobs import IN_FLIGHT_STATUSES, full_build_job, ingest_job, with_quiet_console
from hvbuyer_assets.defs.model.resources import ModelRegistryResource
from hvbuyer_assets.defs.partitions import DROPS, drop_order
from hvbuyer_assets.defs.raw.resources import RawStorageResource
from hvbuyer_assets.settings import load_settings

RAW_ASSETS = {source.kind: source.raw_asset for source in SOURCES}
RUN_KEY_TAG = "dagster/run_key"
DROP_TAG = "hvbuyer/drop"
FILES_TAG = "hvbuyer/files"
ATTEMPT_TAG = "hvbuyer/attempt"
MAX_TAG_CHARS = 255


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b/``); the prefix is empty for a bucket root."""
    if not uri.startswith("s3://"):
        raise ValueError(f"HVBUYER_RAW_URI={uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"HVBUYER_RAW_URI={uri!r} names no bucket")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def observe_local(storage: RawStorageResource) -> tuple[dict[str, str], dict[str, float]]:
    """Raw drop files (data and markers) in a local folder: name -> version, name -> arrival (epoch seconds);
    hidden files are skipped."""
    files = storage.list_files(drops.ALL_PATTERNS)
    return {info.name: info.version for info in files}, {info.name: info.modified.timestamp() for info in files}


def observe_s3(uri: str, s3_client: Any) -> tuple[dict[str, str], dict[str, float]]:
    """Raw drop objects directly under an ``s3://bucket/prefix``: name -> version (ETag + LastModified), name ->
    LastModified (epoch seconds: the order drops landed in).

    The whole prefix is listed each tick: ``get_objects`` pages through every object anyway (its
    ``since_*`` filters are applied client-side and lose same-second uploads, dagster-io/dagster#22892), and
    the completion rule needs the full picture; the JSON cursor keeps the versions seen at the last tick.
    """
    bucket, prefix = split_s3_uri(uri)
    observed, landed = {}, {}
    for obj in get_objects(bucket=bucket, prefix=prefix, client=s3_client):
        name = obj["Key"][len(prefix) :]
        if drops.file_kind(name) is not None:
            observed[name] = drops.s3_version(obj["ETag"], obj["LastModified"])
            landed[name] = obj["LastModified"].timestamp()
    return observed, landed


def add_complete_drops(
    instance: dg.DagsterInstance, raw_storage: RawStorageResource, s3_client: Any = None
) -> list[str]:
    """Add every complete drop of the raw location that is not yet a partition (arrival order; files are taken
    as settled: for a build from the command line, not for the sensor); every drop partition key, in order."""
    if raw_storage.uri.startswith("s3://"):
        observed, arrivals = observe_s3(raw_storage.uri, s3_client)
    else:
        observed, arrivals = observe_local(raw_storage)
    known = drop_order(instance)
    ready = drops.plan(observed, observed, {}, arrivals).ready
    added = [key for key in (drops.label(d.name) for d in ready) if key not in known]
    if added:
        instance.add_dynamic_partitions(DROPS.name, added)
    return drop_order(instance)


def consumed_versions(instance: dg.DagsterInstance, partitions: list[str], per_partition: int = 5) -> dict[str, str]:
    """File versions read by the raw_* materializations of *successful* runs (metadata ``file_versions``) of
    the drop partitions ``partitions``, the newest such run per file: a run that failed after reading a drop has
    not consumed it."""
    consumed: dict[str, str] = {}
    if not partitions:
        return consumed
    succeeded: dict[str, bool] = {}
    for asset in RAW_ASSETS.values():
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=partitions),
            limit=per_partition * len(partitions),
        ).records
        for record in records:  # newest first
            if record.run_id not in succeeded:
                run = instance.get_run_by_id(record.run_id)
                succeeded[record.run_id] = run is not None and run.status == dg.DagsterRunStatus.SUCCESS
            materialization = record.asset_materialization
            versions = materialization.metadata.get("file_versions") if materialization else None
            if succeeded[record.run_id] and versions is not None and isinstance(versions.value, Mapping):
                for name, version in versions.value.items():
                    consumed.setdefault(str(name), str(version))
    return consumed


def past_runs(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, drops.PastRun]:
    """The newest run per run key, as the state ``core.drops.decide`` needs."""
    found = {}
    for key in keys:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: key}), limit=1)
        if not runs:
            continue
        status = runs[0].status
        if status == dg.DagsterRunStatus.SUCCESS:
            state = drops.SUCCEEDED
        elif status in IN_FLIGHT_STATUSES:
            state = drops.IN_PROGRESS
        else:
            state = drops.FAILED
        found[key] = drops.PastRun(state, runs[0].run_id)
    return found


def raw_run_config(files: Mapping[str, str]) -> dict[str, Any]:
    """Run config telling each raw asset exactly which files to read (those of the complete drops), at the jobs'
    console level."""
    by_kind = drops.split_by_kind(files)
    return with_quiet_console(
        {"ops": {asset: {"config": {"files": by_kind[kind]}} for kind, asset in RAW_ASSETS.items()}}
    )


def _tag(values: list[str]) -> str:
    text = ",".join(values)
    return text if len(text) <= MAX_TAG_CHARS else text[: MAX_TAG_CHARS - 3] + "..."


def _seen(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        seen = json.loads(cursor).get("seen", {})
    except (ValueError, AttributeError):
        return {}  # an unreadable cursor only costs one extra tick for new files to settle
    return {str(k): str(v) for k, v in seen.items()} if isinstance(seen, dict) else {}


@dg.sensor(
    name="raw_drop_sensor",
    jobs=[full_build_job, ingest_job],
    minimum_interval_seconds=load_settings().raw_sensor_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "New complete raw drop (customers_NAME.csv + transactions_NAME.json, unchanged across two ticks, or a "
        "_SUCCESS_NAME marker) -> a partition of the raw/clean assets and a run for it alone: full_build until a "
        "champion exists, then ingest_drop. Drops in arrival order, one run at a time; one run per set of file "
        "versions (run key); a failed run is retried twice, then waits for new files."
    ),
)
def raw_drop_sensor(
    context: dg.SensorEvaluationContext,
    raw_storage: RawStorageResource,
    s3: S3Resource,
    model_registry: ModelRegistryResource,
) -> dg.SensorResult:
    previous = _seen(context.cursor)
    try:
        if raw_storage.uri.startswith("s3://"):
            observed, arrivals = observe_s3(raw_storage.uri, s3.get_client())
        else:
            observed, arrivals = observe_local(raw_storage)
    except (BotoCoreError, ClientError, OSError) as exc:
        return dg.SensorResult(skip_reason=f"raw location {raw_storage.uri} not readable: {exc}")
    cursor = json.dumps({"seen": observed}, sort_keys=True)
    known = drop_order(context.instance)
    consumed = consumed_versions(context.instance, known)
    plan = drops.plan(observed, previous, consumed, arrivals)
    added = [key for key in (drops.label(d.name) for d in plan.ready) if key not in known]
    new_partitions = [DROPS.build_add_request(added)] if added else []
    decision = drops.decide(plan, past_runs(context.instance, plan.keys()) if plan.new else {})
    if decision.run_key is None or decision.drop is None:
        return dg.SensorResult(
            skip_reason=decision.skip_reason, cursor=cursor, dynamic_partitions_requests=new_partitions
        )

    job = drops.choose_job(
        champion_exists=registry.champion(model_registry.client()) is not None,
        champion_materialized=context.instance.get_latest_materialization_event(dg.AssetKey("champion_model"))
        is not None,
    )
    drop, partition = decision.drop, drops.label(decision.drop.name)
    fresh = sorted(name for name, version in drop.files.items() if consumed.get(name) != version)
    context.log.info(
        f"drop {partition}: {job} ({decision.run_key}, attempt {decision.attempt}) reading "
        f"{', '.join(sorted(drop.files))}; new: {', '.join(fresh)}"
    )
    request = dg.RunRequest(
        run_key=decision.run_key,
        job_name=job,
        partition_key=partition,
        run_config=raw_run_config(drop.files),
        tags={DROP_TAG: partition, FILES_TAG: _tag(fresh), ATTEMPT_TAG: str(decision.attempt)},
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor, dynamic_partitions_requests=new_partitions)
