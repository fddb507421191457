"""Per-drop customer state (``core.customer_state``): what each drop adds to every customer, and the running total
``customer_features`` reads instead of the whole history.

- ``customer_state`` (one partition per drop): the drop's state, computed by the deployment's engine from that
  drop's clean transactions only; its file's metadata (``STATE_KEY``) says which drop, which computation
  (``state_id``) and the time range of the drop's transactions.
- ``customer_totals``: every drop's state combined. The previous total plus the new drops' states when the
  previous total's drops are unchanged; every drop's state again when one was re-cleaned or backfilled in place
  (its ``state_id`` changed) or removed (``customer_state.plan_totals``). Its metadata lists the drops it holds.
- ``latest_customers``: each customer's record of the latest drop (the catalog's latest-wins key of
  ``clean_customers``), the engine inputs' columns only. Kept like ``customer_totals`` (``update_running``): the
  previous table plus the new drops' clean customers, latest wins; every drop's again when a drop's clean file was
  written again (its ``DropVersion``: size and modification time) or removed (``customer_state.plan_running``).
  ``customer_features`` and ``model_performance`` read this one table instead of every drop's customers.

All store their own values (``storage.catalog``: ``features/customer_state/<drop>.parquet``,
``features/customer_totals.parquet``, ``features/latest_customers.parquet``) through the engine (``Engine.stage_*``
into a ``storage.staged.StagedTable``, committed once the metadata is known), so they never pass through pandas;
on Spark the executors write them as directories of part files and the driver gets row counts and time ranges only.
"""

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from hvbuyer_assets.core.customer_state import (
    DropState,
    DropVersion,
    TotalsPlan,
    drops_between,
    drops_in_window,
    latest_of,
    plan_running,
    plan_totals,
)
from hvbuyer_assets.core.engine import Frames
from hvbuyer_assets.core.features import to_utc
from hvbuyer_assets.defs.features.inputs import ENGINE_INPUTS, EngineInputManager
from hvbuyer_assets.defs.metadata import stored
from hvbuyer_assets.defs.partitions import DROPS, drop_order
from hvbuyer_assets.defs.problem import PROBLEM, PredictionProblem
from hvbuyer_assets.engines.interface import CUSTOMERS, TRANSACTIONS
from hvbuyer_assets.storage import location
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_assets.storage.files import read_table_metadata
from hvbuyer_assets.storage.location import arrow_filesystem
from hvbuyer_assets.storage.staged import StagedTable

STATE, TOTALS, LATEST = entry("customer_state"), entry("customer_totals"), entry("latest_customers")
STATE_KEY = "hvbuyer.customer_state"  # parquet schema metadata: JSON list of the DropState the file holds
LATEST_KEY = "hvbuyer.latest_customers"  # parquet schema metadata: JSON list of the DropVersion the table holds


def read_drop_states(path: str, endpoint_url: str | None = None) -> list[DropState] | None:
    """The drops a stored state file holds (its metadata); None when the file is absent."""
    value = read_table_metadata(location(path, endpoint_url), STATE_KEY, endpoint_url)
    return None if value is None else [DropState.from_json(item) for item in json.loads(value)]


def state_metadata(drops: Sequence[DropState]) -> dict[str, str]:
    """The schema metadata of a stored state: which drops it holds (``read_drop_states``)."""
    return {STATE_KEY: json.dumps([d.to_json() for d in drops])}


def read_drop_versions(path: str, endpoint_url: str | None = None) -> list[DropVersion] | None:
    """The drops' clean customer files a stored ``latest_customers`` holds (its metadata); None when absent."""
    value = read_table_metadata(location(path, endpoint_url), LATEST_KEY, endpoint_url)
    return None if value is None else [DropVersion.from_json(item) for item in json.loads(value)]


def latest_metadata(drops: Sequence[DropVersion]) -> dict[str, str]:
    """The schema metadata of a stored ``latest_customers``: which drops' files it holds."""
    return {LATEST_KEY: json.dumps([d.to_json() for d in drops])}


def customer_versions(manager: EngineInputManager, drops: list[str]) -> list[tuple[str, DropVersion]]:
    """The stored clean customers file of each of ``drops`` (arrival order) and its version: its size and
    modification time (one listing call; a re-clean or backfill writes the file again). FileNotFoundError when no
    drop has one."""
    files = entry(CUSTOMERS).drop_files(manager.base_uri, drops, manager.s3_endpoint_url)
    if not files:
        raise FileNotFoundError(f"no stored clean_customers under {entry(CUSTOMERS).stem(manager.base_uri)}/")
    fs, _ = arrow_filesystem(files[0], manager.s3_endpoint_url)
    infos = fs.get_file_info([arrow_filesystem(f, manager.s3_endpoint_url)[1] for f in files])
    by_path = dict(zip(files, infos, strict=True))
    drop_of = {entry(CUSTOMERS).drop_path(manager.base_uri, d): d for d in drops}
    return [(f, DropVersion(drop_of[f], f"{by_path[f].size}:{by_path[f].mtime_ns}")) for f in files]


def update_running(
    path: str,
    endpoint_url: str | None,
    plan: TotalsPlan,
    files: Sequence[tuple[str, Any]],
    stage: Callable[[list[str], StagedTable], int],
    metadata: dict[str, str],
) -> int | None:
    """Bring the running table at ``path`` up to date by ``plan``: ``stage`` (an engine's) combines the previous
    table with the new drops' ``files`` (incremental), or every drop's files (rebuild), in drop order; the result
    is committed with ``metadata`` (what it now holds). Its rows; None when unchanged."""
    if plan.mode == "unchanged":
        return None
    combining = {item.drop for item in plan.drops}
    chosen = [f for f, item in files if item.drop in combining]
    staged = StagedTable(path, endpoint_url)
    try:
        rows = stage([path, *chosen] if plan.mode == "incremental" else chosen, staged)
        staged.commit(metadata)
    finally:
        staged.discard()
    return rows


def stored_states(manager: EngineInputManager, drops: list[str]) -> list[tuple[str, DropState]]:
    """The state file of each of ``drops`` (arrival order) and what it holds; ValueError naming every drop whose
    clean transactions are stored without a state (a total without them would silently miss their transactions)."""
    base, endpoint = manager.base_uri, manager.s3_endpoint_url
    states = []
    for path in STATE.drop_files(base, drops, endpoint):
        held = read_drop_states(path, endpoint) or []
        states += [(path, state) for state in held]
    clean = entry(TRANSACTIONS)
    cleaned = set(clean.drop_files(base, drops, endpoint))
    have = {state.drop for _, state in states}
    missing = [d for d in drops if d not in have and clean.drop_path(base, d) in cleaned]
    if missing:
        raise ValueError(
            f"drop(s) {', '.join(missing)} have clean transactions but no customer_state: materialize customer_state "
            "for them first (`dagster asset materialize --select customer_state --partition <drop>`)"
        )
    return states


@dataclass(frozen=True)
class StateInputs:
    """What ``customer_features`` reads: the running total, the clean transactions of the drops whose time range
    reaches into the longest window before T (``customer_state.drops_in_window``), the latest customers table."""

    totals: str
    window_files: list[str]
    customer_files: list[str]
    drops: int


def state_inputs(manager: EngineInputManager, drops: list[str], large_amount: float) -> StateInputs:
    """The stored files ``customer_features`` reads; ValueError when ``customer_totals`` does not hold every drop's
    current state (it is stale: materialize it first)."""
    base, endpoint = manager.base_uri, manager.s3_endpoint_url
    states = [state for _, state in stored_states(manager, drops)]
    held = read_drop_states(TOTALS.path(base), endpoint)
    if held is None or plan_totals(held, states, large_amount).mode != "unchanged":
        raise ValueError("customer_totals does not hold every drop's current customer_state: materialize it first")
    latest = latest_of(states)
    if latest is None:
        raise ValueError("no transaction with a valid timestamp: the as-of time is undefined")
    window = {s.drop for s in drops_in_window(states, latest)}
    window_files = entry(TRANSACTIONS).drop_files(base, [d for d in drops if d in window], endpoint)
    return StateInputs(TOTALS.path(base), window_files, [latest_customers_file(manager, drops)], len(states))


def latest_customers_file(manager: EngineInputManager, drops: list[str]) -> str:
    """The stored ``latest_customers`` table; FileNotFoundError when no drop has clean customers, ValueError when
    the table does not hold every drop's current clean customers (it is stale: materialize it first)."""
    current = [version for _, version in customer_versions(manager, drops)]
    path = LATEST.path(manager.base_uri)
    held = read_drop_versions(path, manager.s3_endpoint_url)
    if held is None or plan_running(held, current).mode != "unchanged":
        raise ValueError("latest_customers does not hold every drop's current clean_customers: materialize it first")
    return path


@dg.asset(
    partitions_def=DROPS,
    deps=[TRANSACTIONS],
    group_name="features",
    metadata=stored(STATE.name),
    kinds={"parquet"},
    required_resource_keys={ENGINE_INPUTS, PROBLEM},
    description="Each drop's per-customer aggregates that combine exactly (counts, micro-unit sums, maxima, first "
    "and last purchase times, amount at the last purchase), from that drop's clean transactions only.",
)
def customer_state(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    manager: EngineInputManager = getattr(context.resources, ENGINE_INPUTS)
    problem: PredictionProblem = getattr(context.resources, PROBLEM)
    drop, started = context.partition_key, time.perf_counter()
    files = entry(TRANSACTIONS).drop_files(manager.base_uri, [drop], manager.s3_endpoint_url)
    if not files:
        raise FileNotFoundError(f"drop {drop} has no stored clean_transactions: materialize it first")
    large = float(problem.large_purchase_threshold)
    path = STATE.drop_path(manager.base_uri, drop)
    staged = StagedTable(path, manager.s3_endpoint_url)
    try:
        rows, min_ns, max_ns = manager.engine.stage_drop_state(files, large, staged)
        state = DropState(drop, uuid.uuid4().hex, min_ns, max_ns, large)
        staged.commit(state_metadata([state]))
    finally:
        staged.discard()
    return dg.MaterializeResult(
        metadata={
            "customers": rows,
            "first_transaction_ns": min_ns,
            "last_transaction_ns": max_ns,
            "state_id": state.state_id,
            "engine": manager.engine.name,
            "seconds": round(time.perf_counter() - started, 2),
            "path": dg.MetadataValue.path(path),
        }
    )


@dg.asset(
    deps=[customer_state],
    group_name="features",
    metadata=stored(TOTALS.name),
    kinds={"parquet"},
    required_resource_keys={ENGINE_INPUTS, PROBLEM},
    description="Every drop's customer_state combined: the previous total plus the new drops' states, or every "
    "drop's state again after a drop was re-cleaned, backfilled in place or removed.",
)
def customer_totals(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    manager: EngineInputManager = getattr(context.resources, ENGINE_INPUTS)
    problem: PredictionProblem = getattr(context.resources, PROBLEM)
    started = time.perf_counter()
    states = stored_states(manager, drop_order(context.instance))
    current = [state for _, state in states]
    path = TOTALS.path(manager.base_uri)
    plan = plan_totals(read_drop_states(path, manager.s3_endpoint_url), current, problem.large_purchase_threshold)
    combined = update_running(
        path, manager.s3_endpoint_url, plan, states, manager.engine.stage_combined_states, state_metadata(current)
    )
    return _running_result(context, manager, plan, len(current), combined, started, path)


def _running_result(
    context: dg.AssetExecutionContext,
    manager: EngineInputManager,
    plan: TotalsPlan,
    drops: int,
    rows: int | None,
    started: float,
    path: str,
) -> dg.MaterializeResult:
    context.log.info(f"{context.asset_key.to_user_string()}: {plan.mode} ({plan.why})")
    return dg.MaterializeResult(
        metadata={
            "mode": plan.mode,
            "why": plan.why,
            "drops": drops,
            "drops_combined": len(plan.drops),
            **({"customers": rows} if rows is not None else {}),
            "engine": manager.engine.name,
            "seconds": round(time.perf_counter() - started, 2),
            "path": dg.MetadataValue.path(path),
        }
    )


@dg.asset(
    deps=[CUSTOMERS],
    group_name="features",
    metadata=stored(LATEST.name),
    kinds={"parquet"},
    required_resource_keys={ENGINE_INPUTS},
    description="Each customer's record of the latest drop (the engine inputs' columns): the previous table plus "
    "the new drops' clean customers, or every drop's again after a drop was re-cleaned, backfilled or removed.",
)
def latest_customers(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    manager: EngineInputManager = getattr(context.resources, ENGINE_INPUTS)
    started = time.perf_counter()
    versions = customer_versions(manager, drop_order(context.instance))
    current = [version for _, version in versions]
    path = LATEST.path(manager.base_uri)
    plan = plan_running(read_drop_versions(path, manager.s3_endpoint_url), current)
    rows = update_running(
        path, manager.s3_endpoint_url, plan, versions, manager.engine.stage_latest_customers, latest_metadata(current)
    )
    return _running_result(context, manager, plan, len(current), rows, started, path)


@dataclass(frozen=True)
class LabelInputs:
    """What ``model_performance`` reads: T from the drops' stored time ranges (no transaction read), and how to
    read the clean tables of the label windows only."""

    manager: EngineInputManager
    drops: list[str]
    states: list[DropState]
    as_of: pd.Timestamp

    def frames(self, start_ns: int, end_ns: int) -> tuple[Frames, int]:
        """The transactions with ``start_ns < ts <= end_ns`` (the drops whose time range meets it, read with
        parquet statistics pruning) and the latest customers table, as the engine's ``Frames``; and how many
        drops' transaction files were read."""
        manager, engine = self.manager, self.manager.engine
        inside = {s.drop for s in drops_between(self.states, start_ns, end_ns)}
        tx = entry(TRANSACTIONS)
        files = tx.drop_files(manager.base_uri, [d for d in self.drops if d in inside], manager.s3_endpoint_url)
        read = len(files)
        if not files:  # no row in the range: any one file read empty by the same filter (same columns and types)
            files = tx.drop_files(manager.base_uri, self.drops, manager.s3_endpoint_url)[-1:]
        customers = engine.read(entry(CUSTOMERS), [latest_customers_file(manager, self.drops)])
        return engine.frames(engine.read_between(files, start_ns, end_ns), customers), read


def label_inputs(manager: EngineInputManager, drops: list[str]) -> LabelInputs:
    """``LabelInputs`` of the stored drops; ValueError when no drop has a transaction time."""
    states = [state for _, state in stored_states(manager, drops)]
    latest = latest_of(states)
    if latest is None:
        raise ValueError("no transaction with a valid timestamp: the as-of time is undefined")
    return LabelInputs(manager, drops, states, to_utc(pd.Timestamp(latest, unit="ns", tz="UTC")))
