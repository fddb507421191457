"""What the monitoring says about one later drop: build the sample, land a later drop, ingest it, print the drift
report, the realised performance and the retraining sensor's decision.

    .venv/bin/python scripts/drift_scenarios.py --drift none --as-of 2026-09-28 --days 90
    .venv/bin/python scripts/drift_scenarios.py --drift behaviour --as-of 2026-11-25 --days 148

Runs in a temporary data dir and a temporary Dagster instance (nothing of ./data is touched).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import dagster as dg
import mlflow

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hvbuyer_assets import datagen  # noqa: E402
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources  # noqa: E402
from hvbuyer_assets.defs.jobs import JOBS  # noqa: E402
from hvbuyer_assets.defs.sensors.raw import add_complete_drops  # noqa: E402
from hvbuyer_assets.defs.sensors.retraining import retraining_sensor  # noqa: E402
from hvbuyer_tests.pipeline import SAMPLE_CUSTOMERS, SAMPLE_SEED, Workspace, write_sample  # noqa: E402


def run_job(defs: dg.Definitions, job: str, instance: dg.DagsterInstance) -> None:
    """Run ``job`` for the latest drop of the raw folder (each complete drop a partition, as the sensor adds)."""
    drop = add_complete_drops(instance, defs.resources["raw_storage"])[-1]
    try:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=drop, raise_on_error=False
        )
    finally:
        mlflow.end_run()
    if not result.success:
        raise SystemExit(f"{job} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--drift", choices=datagen.DRIFTS, default="none")
    parser.add_argument("--as-of", default="2026-09-28")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--customers", type=int, default=SAMPLE_CUSTOMERS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        workspace = Workspace(Path(tmp) / "data")
        write_sample(workspace.raw, customers=args.customers)
        resources = build_resources(workspace.settings)
        defs = dg.Definitions(assets=ALL_ASSETS, jobs=JOBS, resources=resources, executor=dg.in_process_executor)
        run_job(defs, "full_build", instance)
        datagen.write_drop(
            workspace.raw,
            args.customers,
            seed=SAMPLE_SEED,
            drift=args.drift,
            drop="later",
            as_of=args.as_of,
            days=args.days,
        )
        run_job(defs, "ingest_drop", instance)
        report = json.loads((workspace.root / "monitoring" / "drift_report.json").read_text())
        print(f"drift={args.drift} as_of={args.as_of} days={args.days} customers={args.customers}")
        print(f"verdict: {report['verdict']} ({report['reason']}); model age {report['model_age_days']:.1f} d")
        rows = [*report["features"], *report["time_indexed_features"], {**report["prediction"], "feature": "score"}]
        for row in rows:
            ks = row.get("ks_statistic")
            print(
                f"  {row['feature']:26s} votes={str(row.get('votes', True)):5s} psi={row['psi']:.3f} "
                f"ks={'-' if ks is None else f'{ks:.3f}'} drifted={row['drifted']}"
            )
        performance = json.loads((workspace.root / "monitoring" / "model_performance.json").read_text())
        print(f"performance: {performance['status']}: {performance['reason']}")
        context = dg.build_sensor_context(
            instance=instance, resources={k: resources[k] for k in ("retraining_policy", "model_registry")}
        )
        tick = retraining_sensor.evaluate_tick(context)
        if tick.run_requests:
            print(f"retraining sensor: retrain ({tick.run_requests[0].tags['hvbuyer/trigger']})")
        else:
            print(f"retraining sensor: skip ({tick.skip_message})")


if __name__ == "__main__":
    main()
