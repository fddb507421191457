"""`make bench-pipeline`: the whole asset graph on 1M customers / ~20M transactions.

Prints per-stage wall time and peak RSS (sampled every 50 ms from the `dagster asset materialize` process), the
whole-graph figures, and the time of a bare ``pyarrow.json.read_json`` of the same transactions file, measured
in a separate process, as the anchor of the clean-stage ratio. Targets on the 2-core reference box: whole graph
<= 20 min, peak RSS <= 8 GiB, clean stage <= 3x the bare parse.

    python scripts/bench_pipeline.py [--customers 1000000] [--workdir .bench/pipeline]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from hvbuyer_assets.settings import child_environ

GIB = 1024**3
ANCHOR = """
import json, resource, sys, time
import pyarrow.json
t = time.perf_counter()
table = pyarrow.json.read_json(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t, "rows": table.num_rows,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


class RssSampler(threading.Thread):
    """Records (wall time, RSS of a process and its children) every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self._stop_event = interval, [], threading.Event()
        self._process = psutil.Process(pid)

    def _rss(self) -> int:
        try:
            procs = [self._process, *self._process.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return 0

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.time(), self._rss()))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peak(self, start: float, end: float) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside) if inside else 0


def ensure_data(raw: Path, customers: int) -> None:
    if (raw / "transactions.json").exists():
        print(f"using existing drop in {raw}")
        return
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "hvbuyer_assets.datagen", "--customers", str(customers), "--out", str(raw)]
    subprocess.run(cmd, check=True)
    print(f"generated the drop in {time.perf_counter() - started:.1f} s")


def anchor(transactions: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", ANCHOR, str(transactions)], check=True, capture_output=True)
    return json.loads(out.stdout)


def first_drop(env: dict[str, str]) -> str:
    """The raw location's drops as partitions of the instance (``hvbuyer_assets.register_drops``): the first."""
    out = subprocess.run(
        [sys.executable, "-m", "hvbuyer_assets.register_drops"], env=env, check=True, capture_output=True
    )
    return out.stdout.decode().split()[0]


def step_seconds_and_peaks(instance: Any, run_id: str, sampler: RssSampler) -> dict[str, tuple[float, int]]:
    """(seconds, peak RSS sampled meanwhile) of each step of the run that ended, from its STEP_START to its
    STEP_SUCCESS or STEP_FAILURE event."""
    starts: dict[str, float] = {}
    steps: dict[str, tuple[float, int]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            begin = starts[event.step_key]
            steps[event.step_key] = (entry.timestamp - begin, sampler.peak(begin, entry.timestamp))
    return steps


def run_graph(data_dir: Path) -> tuple[dict[str, tuple[float, int]], float, bool, int]:
    """Run the graph exactly as users do (`dagster asset materialize`, a persistent instance) in a child
    process; `dg.materialize` would keep every step's output in memory for its result object."""
    import dagster as dg

    home = data_dir / ".dagster_home"
    home.mkdir()
    env = child_environ(
        {"HVBUYER_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home)}, unset=("MLFLOW_TRACKING_URI", "HVBUYER_RAW_URI")
    )
    drop = first_drop(env)
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "hvbuyer_assets.definitions", "--select", "*"]
    cmd += ["--partition", drop]
    started = time.perf_counter()
    with open(data_dir / "materialize.log", "w") as log:
        child = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = RssSampler(child.pid)
        sampler.start()
        code = child.wait()
    total = time.perf_counter() - started
    sampler.stop()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest child's exact peak

    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.get_runs(limit=1)[0]
    stages = step_seconds_and_peaks(instance, run.run_id, sampler)
    cleaning = float("nan")
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization and materialization.asset_key.to_user_string() == "clean_transactions":
            cleaning = float(materialization.metadata["clean_seconds"].value)
    stages["  (cleaning function)"] = (cleaning, 0)
    return stages, total, code == 0, max(peak, max((rss for _, rss in sampler.samples), default=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/pipeline"))
    args = parser.parse_args()

    raw = args.workdir / f"raw-{args.customers}"
    ensure_data(raw, args.customers)
    data_dir = args.workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    (data_dir / "raw").symlink_to(raw.resolve())

    stages, total, ok, peak = run_graph(data_dir.resolve())  # first: RUSAGE_CHILDREN must see only the graph
    parse = anchor(raw / "transactions.json")

    print(f"\n{'stage':<22}{'wall s':>10}{'peak RSS GiB':>14}")
    for name, (seconds, rss) in stages.items():
        print(f"{name:<22}{seconds:>10.1f}" + (f"{rss / GIB:>14.2f}" if rss else ""))
    clean = stages.get("clean_transactions", (float("nan"), 0))[0]
    cleaning = stages.get("  (cleaning function)", (float("nan"), 0))[0]
    print(
        f"\nbare pyarrow.json.read_json: {parse['seconds']:.1f} s for {parse['rows']:,} rows "
        f"(peak RSS {parse['peak_rss'] / GIB:.2f} GiB)"
    )
    print(
        f"clean stage / bare parse: cleaning {cleaning / parse['seconds']:.2f}x (target <= 3x); whole "
        f"clean_transactions step incl. parquet load/write and 4 checks {clean / parse['seconds']:.2f}x"
    )
    print(
        f"whole graph: {total / 60:.1f} min (target <= 20), peak RSS {peak / GIB:.2f} GiB (target <= 8)"
        f", run {'succeeded' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
