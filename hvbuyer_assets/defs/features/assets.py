"""Point-in-time features: customer features as of T (scoring) and the temporal training set.

The deployment's engine (``engines.interface.Engine``, chosen by ``HVBUYER_ENGINE``: embedded polars or Spark)
computes the declaration. ``customer_features`` reads the running total of the per-drop customer state and the
latest customers table (``defs.features.state``) and only the clean transactions of the drops whose time range
reaches into the longest window; the engine stages it (``Engine.stage_features``: pandas in this process on the
embedded engine, part files written by the executors on Spark) and the IO manager commits it once the leakage guard
passed. ``training_set``
reads the clean tables through ``engine_inputs`` (``defs.features.inputs``) and comes back as pandas: features at
past cutoffs and labels need the rows themselves.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from hvbuyer_assets.defs.checks_gate import gate
from hvbuyer_assets.defs.features import checks
from hvbuyer_assets.defs.features.inputs import ENGINE_INPUTS, ENGINE_INS, EngineInputManager
from hvbuyer_assets.defs.features.state import customer_totals, latest_customers, state_inputs
from hvbuyer_assets.defs.metadata import stored
from hvbuyer_assets.defs.partitions import drop_order
from hvbuyer_assets.defs.problem import PROBLEM, PredictionProblem
from hvbuyer_assets.engines.interface import TRANSACTIONS, StoredTable
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_assets.storage.staged import StagedTable


@dg.asset(
    deps=[latest_customers, TRANSACTIONS, customer_totals],
    group_name="features",
    metadata=stored("customer_features"),
    kinds={"pandas", "parquet"},
    check_specs=[checks.FEATURES_NOT_AFTER_CUTOFF],
    output_required=False,  # a failed leakage guard stores nothing (defs.checks_gate)
    required_resource_keys={ENGINE_INPUTS, PROBLEM},
    description="Every known customer's features as of T, the latest valid transaction time (not the clock): the "
    "totals from customer_totals, the customers from latest_customers, the window sums from the clean "
    "transactions of the longest window only.",
)
def customer_features(context: dg.AssetExecutionContext) -> Iterator[dg.Output | dg.AssetCheckResult]:
    manager: EngineInputManager = getattr(context.resources, ENGINE_INPUTS)
    problem: PredictionProblem = getattr(context.resources, PROBLEM)
    engine, large = manager.engine, problem.large_purchase_threshold
    inputs = state_inputs(manager, drop_order(context.instance), large)
    staged = StagedTable(entry("customer_features").path(manager.base_uri), manager.s3_endpoint_url)
    try:
        summary = engine.stage_features([inputs.totals], inputs.window_files, inputs.customer_files, large, staged)
        output = dg.Output(
            staged,  # committed by the io_manager, only when the leakage guard passed (defs.checks_gate)
            metadata={
                "as_of": summary.as_of.isoformat(),
                "customers": summary.rows,
                "customers_with_history": summary.with_history,
                "engine": engine.name,
                "drops": inputs.drops,
                "drops_read_for_windows": len(inputs.window_files),
                "customer_files_read": len(inputs.customer_files),
            },
        )
        check = checks.late_rows(checks.FEATURES_NOT_AFTER_CUTOFF.name, summary.after_as_of)
        yield from gate([output], [check], [checks.FEATURES_NOT_AFTER_CUTOFF])
    finally:
        staged.discard()


@dg.asset(
    ins=ENGINE_INS,
    group_name="features",
    metadata=stored("training_set"),
    kinds={"pandas", "parquet"},
    check_specs=checks.TRAINING_SET_CHECKS,
    output_required=False,  # a failed leakage guard or prevalence check stores nothing (defs.checks_gate)
    description="Features at cutoffs with labels from (cutoff, cutoff + H]: train rows at C - H (and earlier), "
    "hold-out rows at C = T - H, so the hold-out is strictly later in time than anything trained on.",
)
def training_set(
    clean_customers: StoredTable, clean_transactions: StoredTable, problem: PredictionProblem
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    engine = clean_transactions.engine
    inputs = engine.frames(clean_transactions, clean_customers)
    as_of = engine.data_as_of(inputs)
    frame = engine.training_rows(
        inputs,
        as_of,
        horizon_days=problem.horizon_days,
        threshold=problem.large_purchase_threshold,
        train_snapshots=problem.train_snapshots,
        snapshot_step_days=problem.snapshot_step_days,
    )
    summary = frame.groupby("split", observed=True)["label"].agg(["size", "mean"])
    output = dg.Output(
        frame,
        metadata={
            "as_of": as_of.isoformat(),
            "horizon_days": problem.horizon_days,
            "threshold": problem.large_purchase_threshold,
            "engine": engine.name,
            "rows": dg.MetadataValue.json({s: int(r["size"]) for s, r in summary.iterrows()}),
            "cutoffs": dg.MetadataValue.json(sorted(pd.Timestamp(c).isoformat() for c in frame["cutoff"].unique())),
        },
    )
    results = [
        checks.not_after_cutoff(
            checks.TRAINING_FEATURES_NOT_AFTER_CUTOFF.name, frame["last_event_at"], frame["cutoff"]
        ),
        checks.label_prevalence(frame),
    ]
    yield from gate([output], results, checks.TRAINING_SET_CHECKS)
