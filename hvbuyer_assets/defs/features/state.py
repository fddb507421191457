"""Per-drop customer state (``core.customer_state``): what each drop adds to every customer, and the running total
``customer_features`` reads instead of the whole history.

- ``customer_state`` (one partition per drop): the drop's state, computed by the deployment's engine from that
  drop's clean transactions only; its file's metadata (``STATE_KEY``) says which drop, which computation
  (``state_id``) and the time range of the drop's transactions.
- ``customer_totals``: every drop's state combined. The previous total plus the new drops' states when the
  previous total's drops are unchanged; every drop's state again when one was re-cleaned or backfilled in place
  (its ``state_id`` changed) or removed (``customer_state.plan_totals``). Its metadata lists the drops it holds.

Both store their own values (``storage.catalog``: ``features/customer_state/<drop>.parquet``,
``features/customer_totals.parquet``) through the engine (``Engine.stage_*`` into a ``storage.staged.StagedTable``,
committed once the metadata is known), so a state never passes through pandas; on Spark the executors write it as
a directory of part files and the driver gets its row count and time range only.
"""

import json
import time
import uuid
from dataclasses import dataclass

import dagster as dg

from hvbuyer_assets.core.customer_state import DropState, drops_in_window, plan_totals
from hvbuyer_assets.defs.features.inputs import ENGINE_INPUTS, EngineInputManager
from hvbuyer_assets.defs.metadata import stored
from hvbuyer_assets.defs.partitions import DROPS, drop_order
from hvbuyer_assets.defs.problem import PROBLEM, PredictionProblem
from hvbuyer_assets.engines.interface import CUSTOMERS, TRANSACTIONS
from hvbuyer_assets.storage import location
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_assets.storage.files import read_table_metadata
from hvbuyer_assets.storage.staged import StagedTable

STATE, TOTALS = entry("customer_state"), entry("customer_totals")
STATE_KEY = "hvbuyer.customer_state"  # parquet schema metadata: JSON list of the DropState the file holds


def read_drop_states(path: str, endpoint_url: str | None = None) -> list[DropState] | None:
    """The drops a stored state file holds (its metadata); None when the file is absent."""
    value = read_table_metadata(location(path, endpoint_url), STATE_KEY, endpoint_url)
    return None if value is None else [DropState.from_json(item) for item in json.loads(value)]


def state_metadata(drops: list[DropState]) -> dict[str, str]:
    """The schema metadata of a stored state: which drops it holds (``read_drop_states``)."""
    return {STATE_KEY: json.dumps([d.to_json() for d in drops])}


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
    reaches into the longest window before T (``customer_state.drops_in_window``), every drop's clean customers."""

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
    customers = entry(CUSTOMERS)
    customer_files = customers.drop_files(base, drops, endpoint)
    if not customer_files:
        raise FileNotFoundError(f"no stored clean_customers under {customers.stem(base)}/")
    latest = max((s.max_ns for s in states if s.max_ns is not None), default=None)
    if latest is None:
        raise ValueError("no transaction with a valid timestamp: the as-of time is undefined")
    window = {s.drop for s in drops_in_window(states, latest)}
    window_files = entry(TRANSACTIONS).drop_files(base, [d for d in drops if d in window], endpoint)
    return StateInputs(TOTALS.path(base), window_files, customer_files, len(states))


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
    combined = None
    if plan.mode != "unchanged":
        combining = {state.drop for state in plan.drops}
        files = [f for f, state in states if state.drop in combining]
        staged = StagedTable(path, manager.s3_endpoint_url)
        try:
            combined = manager.engine.stage_combined_states(
                [path, *files] if plan.mode == "incremental" else files, staged
            )
            staged.commit(state_metadata(current))
        finally:
            staged.discard()
    context.log.info(f"customer_totals: {plan.mode} ({plan.why})")
    return dg.MaterializeResult(
        metadata={
            "mode": plan.mode,
            "why": plan.why,
            "drops": len(current),
            "drops_combined": len(plan.drops),
            **({"customers": combined} if combined is not None else {}),
            "engine": manager.engine.name,
            "seconds": round(time.perf_counter() - started, 2),
            "path": dg.MetadataValue.path(path),
        }
    )
