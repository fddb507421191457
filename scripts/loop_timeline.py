"""Watch the self-updating loop of a running ``make run`` session and print its timeline.

Writes a later, drifted drop into the local raw folder (t0), then follows the Dagster instance (runs started by
the sensors), the registry (alias ``champion``) and the API (``GET /model``) until the API serves a new version:

    make run                                  # terminal 1: Dagster (daemon + UI) and the API on the sample data
    .venv/bin/python scripts/loop_timeline.py # terminal 2: drop at t0 -> ingest -> drift -> retrain -> API switch

Only reads the instance and the registry; the drop is the one thing it writes (``--no-drop`` to watch only).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import dagster as dg
import httpx
import pandas as pd

from hvbuyer_assets import datagen, registry
from hvbuyer_assets.settings import load_settings


@dataclass
class Timeline:
    """Events seen, relative to t0."""

    t0: float
    rows: list[tuple[float, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, key: str, when: float, text: str) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        self.rows.append((when - self.t0, text))
        print(f"t0 + {when - self.t0:7.1f} s  {text}", flush=True)


def _api_version(api: httpx.Client) -> str | None:
    try:
        response = api.get("/model")
    except httpx.TransportError:
        return None
    return response.json().get("version") if response.status_code == 200 else None


def _watch_runs(instance: dg.DagsterInstance, timeline: Timeline) -> bool:
    """Record run creation/start/end; True while a run created after t0 is still going."""
    going = False
    records = instance.get_run_records(filters=dg.RunsFilter(created_after=pd.Timestamp(timeline.t0, unit="s")))
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run = record.dagster_run
        label = f"{run.job_name} run {run.run_id[:8]}"
        sensor = run.tags.get("dagster/sensor_name", "manual")
        reason = run.tags.get("hvbuyer/trigger") or run.tags.get("hvbuyer/reason") or run.tags.get("hvbuyer/drop")
        extra = f" ({reason})" if reason else ""
        created = record.create_timestamp.timestamp()
        timeline.add(f"{run.run_id}:created", created, f"{label} requested by {sensor}{extra}")
        if record.start_time:
            timeline.add(f"{run.run_id}:started", record.start_time, f"{label} started")
        if record.end_time:
            timeline.add(f"{run.run_id}:ended", record.end_time, f"{label} {run.status.value.lower()}")
        else:
            going = True
    for asset in ("drift_report", "champion_model"):
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        if event is None or event.timestamp < timeline.t0 or event.asset_materialization is None:
            continue
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        if asset == "drift_report":
            text = f"drift_report: verdict {meta.get('verdict')} ({meta.get('reason', '')})"
        else:
            text = f"champion_model: {meta.get('decision')} v{meta.get('champion_version')} ({meta.get('reason', '')})"
        timeline.add(f"{asset}:{event.run_id}", event.timestamp, text)
    return going


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--customers", type=int, default=20000, help="customers of the sample drop (make run: 20000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the sample drop (make run: 7)")
    parser.add_argument("--as-of", default="2026-11-25", help="end of the later drop's window")
    parser.add_argument("--days", type=int, default=148, help="the later drop covers (as_of - days, as_of]")
    parser.add_argument("--drift", default="behaviour", choices=datagen.DRIFTS)
    parser.add_argument("--drop", default="q4drift")
    parser.add_argument("--no-drop", action="store_true", help="only watch")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)

    settings = load_settings()
    if settings.raw_is_s3 and not args.no_drop:
        parser.error("the drop is written to a local raw folder; use --no-drop with S3")
    client = registry.client(settings.mlflow_tracking_uri)
    api = httpx.Client(base_url=args.api, timeout=5)
    before_api = _api_version(api)
    champion = registry.champion(client)
    before_registry = None if champion is None else str(champion.version)
    print(f"before: API serves v{before_api}, registry champion v{before_registry}", flush=True)

    t0 = time.time()
    timeline = Timeline(t0)
    if not args.no_drop:
        datagen.write_drop(
            settings.raw_uri,
            args.customers,
            seed=args.seed,
            drift=args.drift,
            drop=args.drop,
            as_of=args.as_of,
            days=args.days,
        )
        timeline.add("drop", time.time(), f"drop {args.drop!r} written to {settings.raw_uri} ({args.drift} drift)")
    else:
        timeline.add("watch", t0, "watching")

    with dg.DagsterInstance.get() as instance:
        while time.time() - t0 < args.timeout:
            going = _watch_runs(instance, timeline)
            champion = registry.champion(client)
            now_registry = None if champion is None else str(champion.version)
            if now_registry != before_registry:
                timeline.add(f"alias:{now_registry}", time.time(), f"registry: alias champion -> v{now_registry}")
            now_api = _api_version(api)
            if now_api != before_api and now_api is not None:
                timeline.add(f"api:{now_api}", time.time(), f"API: GET /model answers version {now_api}")
                if not going:
                    break
            time.sleep(0.25)
        else:
            print(f"timeout after {args.timeout:.0f} s", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
