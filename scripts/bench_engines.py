"""`make bench-engines`: customer_features and training_set on the embedded engine and on Spark, side by side.

Clean data: the stored clean tables of ``make bench-pipeline`` (``--source``, default ``.bench/pipeline/data``;
1M customers / ~20M transactions). With ``--customers`` below the source's count, the first N clean customers and
their transactions are taken (a quick run: ``--customers 200000``). Without a source, a drop of ``--customers`` is
generated (``hvbuyer_assets.datagen``) and cleaned by the raw and processed assets (``dagster asset materialize``).

Each (engine, stage) runs in a fresh process doing what the asset does before storing: read the clean tables the
way ``engine_inputs`` does (``engines.inputs``), find T, compute the stage and bring it back as the pandas frame the
IO manager would store. Reported: wall seconds of that work (Spark's session start-up apart), peak RSS of the
process tree (the Spark JVM included; sampled every 50 ms) and the ratio Spark / embedded. Spark runs on
``HVBUYER_SPARK_MASTER`` (default ``local[2]``) with the ``HVBUYER_SPARK_*`` settings of the environment.

    python scripts/bench_engines.py [--customers 1000000] [--source .bench/pipeline/data] [--engines embedded,spark]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hvbuyer_assets.settings import child_environ

GIB = 1024**3
STAGES = ("customer_features", "training_set")
TABLES = ("clean_customers", "clean_transactions")
WORKDIR = Path(".bench/engines")

CHILD = """
import json, sys, time
from pathlib import Path
from hvbuyer_assets.core import features, training
from hvbuyer_assets.defs.problem import PredictionProblem
from hvbuyer_assets.engines import inputs, spark
from hvbuyer_assets.settings import load_settings

stage = sys.argv[1]
settings = load_settings()  # HVBUYER_ENGINE and HVBUYER_DATA_DIR set by the parent
engine, data_dir = settings.engine, settings.data_dir
options = inputs.EngineOptions.from_settings(settings)
started = time.perf_counter()
if engine == "spark":
    spark.session(options.spark)
session_seconds = time.perf_counter() - started
problem = PredictionProblem()
started = time.perf_counter()
# the stored drops of each clean table in the order they were written (bench-pipeline stores one drop)
stored = {a: sorted(Path(data_dir, "processed", a).glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns) for a in
          (inputs.TRANSACTIONS, inputs.CUSTOMERS)}
tables = {a: inputs.read_table(a, [str(p) for p in files], options) for a, files in stored.items()}
frames = inputs.frames(tables[inputs.TRANSACTIONS], tables[inputs.CUSTOMERS])
as_of = inputs.data_as_of(frames)
if stage == "customer_features":
    frame = features.features_frame(frames, as_of, large_amount=problem.large_purchase_threshold)
else:
    frame = training.training_frame(frames, as_of, horizon_days=problem.horizon_days,
        threshold=problem.large_purchase_threshold, train_snapshots=problem.train_snapshots,
        snapshot_step_days=problem.snapshot_step_days)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "session_seconds": session_seconds, "rows": len(frame)}))
"""


class TreeRss(threading.Thread):
    """Peak RSS of a process and all its descendants (the Spark JVM is a child of the Python process)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.process, self.interval, self.peak = psutil.Process(pid), interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def run_stage(engine: str, stage: str, data_dir: Path) -> dict[str, float]:
    env = child_environ({"HVBUYER_ENGINE": engine, "HVBUYER_DATA_DIR": str(data_dir.resolve())})
    cmd = [sys.executable, "-c", CHILD, stage]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeRss(child.pid)
    sampler.start()
    out, err = child.communicate()
    peak = sampler.stop()
    if child.returncode != 0:
        raise RuntimeError(f"{engine} {stage} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "peak_rss": peak}


def _rows(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def _generate(customers: int, data_dir: Path) -> None:
    """A generated drop, cleaned by the raw and processed assets as a user's run would."""
    raw = WORKDIR / f"raw-{customers}"
    if not (raw / "transactions.json").exists():
        cmd = [sys.executable, "-m", "hvbuyer_assets.datagen", "--customers", str(customers), "--out", str(raw)]
        subprocess.run(cmd, check=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "raw").unlink(missing_ok=True)
    (data_dir / "raw").symlink_to(raw.resolve())
    home = data_dir / ".dagster_home"
    home.mkdir(exist_ok=True)
    env = child_environ(
        {"HVBUYER_DATA_DIR": str(data_dir.resolve()), "DAGSTER_HOME": str(home.resolve())},
        unset=("MLFLOW_TRACKING_URI", "HVBUYER_RAW_URI"),
    )
    select = "group:raw or group:processed"
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "hvbuyer_assets.definitions", "--select"]
    subprocess.run([*cmd, select], check=True, env=env, stdout=subprocess.DEVNULL)


def _subset(source: Path, customers: int, data_dir: Path) -> None:
    """The first ``customers`` clean customers of ``source`` and their transactions."""
    out = data_dir / "processed"
    out.mkdir(parents=True, exist_ok=True)
    people = pq.read_table(source / "processed" / "clean_customers.parquet").slice(0, customers)
    tx = pq.read_table(source / "processed" / "clean_transactions.parquet")
    tx = tx.filter(pc.is_in(tx.column("customer_id"), value_set=people.column("customer_id")))
    pq.write_table(people, out / "clean_customers.parquet")
    pq.write_table(tx, out / "clean_transactions.parquet")


def prepare(source: Path, customers: int) -> Path:
    """A data dir whose ``processed/`` holds the clean tables to time (made once per size)."""
    clean = source / "processed" / "clean_customers.parquet"
    if clean.exists() and _rows(clean) == customers:
        return source
    data_dir = WORKDIR / f"clean-{customers}"
    if (data_dir / "processed" / "clean_transactions.parquet").exists():
        return data_dir
    if clean.exists() and _rows(clean) > customers:
        print(f"taking the first {customers:,} customers of {source}")
        _subset(source, customers, data_dir)
    else:
        print(f"no clean data of {customers:,} customers in {source}: generating and cleaning a drop")
        _generate(customers, data_dir)
    return data_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, default=Path(".bench/pipeline/data"))
    parser.add_argument("--engines", default="embedded,spark")
    args = parser.parse_args()

    data_dir = prepare(args.source, args.customers)
    n_customers = _rows(data_dir / "processed" / "clean_customers.parquet")
    n_tx = _rows(data_dir / "processed" / "clean_transactions.parquet")
    print(f"clean data: {data_dir} ({n_customers:,} customers, {n_tx:,} transactions); load {psutil.getloadavg()}")
    engines = args.engines.split(",")
    results = {(e, s): run_stage(e, s, data_dir) for s in STAGES for e in engines}

    print(f"\n{'stage':<19}{'engine':<10}{'rows':>11}{'wall s':>9}{'peak RSS GiB':>14}{'session s':>11}")
    for (engine, stage), r in results.items():
        session = f"{r['session_seconds']:>11.1f}" if engine == "spark" else ""
        print(f"{stage:<19}{engine:<10}{r['rows']:>11,}{r['seconds']:>9.1f}{r['peak_rss'] / GIB:>14.2f}{session}")
    if {"embedded", "spark"} <= set(engines):
        print("\nspark / embedded:")
        for stage in STAGES:
            e, s = results[("embedded", stage)], results[("spark", stage)]
            print(
                f"  {stage:<19} time {s['seconds'] / e['seconds']:.1f}x, peak RSS {s['peak_rss'] / e['peak_rss']:.1f}x"
            )
    if "embedded" in engines:
        peak = max(results[("embedded", s)]["peak_rss"] for s in STAGES)
        print(f"embedded peak RSS per million transactions: {peak / GIB / (n_tx / 1e6):.3f} GiB")
    print(f"load after: {psutil.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
