"""`make bench-engines`: customer_features and training_set on the embedded engine and on Spark, side by side.

Clean data: the clean tables of ``make bench-pipeline`` (``--source``, default ``.bench/pipeline/data``; 1M
customers / ~20M transactions), stored per drop (``processed/<asset>/<drop>.parquet``) in the drop order of the data
dir's Dagster instance (``<data dir>/.dagster_home``). With ``--customers`` below the source's count, the first N clean
customers (in drop order) and their transactions are taken, drop by drop (a quick run: ``--customers 200000``).
Without a source, a drop of ``--customers`` is generated (``hvbuyer_assets.datagen``), registered as a partition
(``python -m hvbuyer_assets.register_drops``) and cleaned by the raw and processed assets of its partition
(``dagster asset materialize --partition``).

Each (engine, stage) runs in a fresh process doing what the asset does before storing: read the clean tables the
way ``engine_inputs`` does (``Engine.read`` of the engine ``engines.engine_for`` builds), find T, compute the stage
and bring it back as the pandas frame the IO manager would store. Reported: wall seconds of that work (Spark's
session start-up apart), peak RSS of the process tree (the Spark JVM included; sampled every 50 ms) and the ratio
Spark / embedded. Spark runs on
``HVBUYER_SPARK_MASTER`` (default ``local[2]``) with the ``HVBUYER_SPARK_*`` settings of the environment.

``--stages state`` times the per-drop state path instead, each stage storing its value as its asset does
(``Engine.stage_*`` into a ``StagedTable``, committed under ``.bench/engines/stored-<customers>-<engine>``):
``customer_state`` of every drop, ``customer_totals`` (every drop's state combined), ``customer_features`` (from
the total and the longest window's drops). On Spark the executors write them; the step process (Python and the
driver JVM) holds metadata only, so its peak should not grow with the customers (``--customers 200000`` against
``1000000`` on the cluster of ``make spark-up``: the ratio is printed when both are given, ``--customers
200000,1000000``).

    python scripts/bench_engines.py [--customers 1000000] [--source .bench/pipeline/data] [--engines embedded,spark]
        [--stages features|state]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hvbuyer_assets.defs.partitions import DROPS, drop_order
from hvbuyer_assets.settings import child_environ
from hvbuyer_assets.storage.catalog import entry

GIB = 1024**3
STAGES = ("customer_features", "training_set")
TABLES = ("clean_customers", "clean_transactions")
WORKDIR = Path(".bench/engines")

CHILD = """
import json, sys, time
from hvbuyer_assets.defs.problem import PredictionProblem
from hvbuyer_assets.engines import engine_for
from hvbuyer_assets.engines.interface import CUSTOMERS, TRANSACTIONS, input_asset
from hvbuyer_assets.settings import load_settings

stage, stored = sys.argv[1], json.loads(sys.argv[2])  # each clean table's files, in drop order
engine = engine_for(load_settings())  # HVBUYER_ENGINE set by the parent
started = time.perf_counter()
engine.start()
session_seconds = time.perf_counter() - started
problem = PredictionProblem()
started = time.perf_counter()
tables = {a: engine.read(input_asset(a), files) for a, files in stored.items()}
frames = engine.frames(tables[TRANSACTIONS], tables[CUSTOMERS])
as_of = engine.data_as_of(frames)
if stage == "customer_features":
    frame = engine.features(frames, as_of, large_amount=problem.large_purchase_threshold)
else:
    frame = engine.training_rows(frames, as_of, horizon_days=problem.horizon_days,
        threshold=problem.large_purchase_threshold, train_snapshots=problem.train_snapshots,
        snapshot_step_days=problem.snapshot_step_days)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "session_seconds": session_seconds, "rows": len(frame)}))
"""


STATE_STAGES = ("customer_state", "customer_totals", "customer_features")
STATE_CHILD = """
import json, sys, time, uuid
from hvbuyer_assets.core.customer_state import DropState, drops_in_window
from hvbuyer_assets.defs.features.state import read_drop_states, state_metadata
from hvbuyer_assets.defs.problem import PredictionProblem
from hvbuyer_assets.engines import engine_for
from hvbuyer_assets.settings import load_settings
from hvbuyer_assets.storage.catalog import entry
from hvbuyer_assets.storage.staged import StagedTable

stage, out, stored = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])  # drops and clean files, in drop order
engine = engine_for(load_settings())  # HVBUYER_ENGINE set by the parent
started = time.perf_counter()
engine.start()
session_seconds = time.perf_counter() - started
large = float(PredictionProblem().large_purchase_threshold)
state_files = [entry("customer_state").drop_path(out, d) for d in stored["drops"]]
totals = entry("customer_totals").path(out)
started = time.perf_counter()

def commit(staged, rows, metadata=None):
    staged.commit(metadata)
    return rows

if stage == "customer_state":
    rows = 0
    for drop, tx, path in zip(stored["drops"], stored["clean_transactions"], state_files):
        staged = StagedTable(path)
        n, low, high = engine.stage_drop_state([tx], large, staged)
        rows += commit(staged, n, state_metadata([DropState(drop, uuid.uuid4().hex, low, high, large)]))
else:
    states = [read_drop_states(p)[0] for p in state_files]
    if stage == "customer_totals":
        staged = StagedTable(totals)
        rows = commit(staged, engine.stage_combined_states(state_files, staged), state_metadata(states))
    else:
        latest = max(s.max_ns for s in states if s.max_ns is not None)
        window = {s.drop for s in drops_in_window(states, latest)}
        tx = [f for d, f in zip(stored["drops"], stored["clean_transactions"]) if d in window]
        staged = StagedTable(entry("customer_features").path(out))
        summary = engine.stage_features([totals], tx, stored["clean_customers"], large, staged)
        rows = commit(staged, summary.rows)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "session_seconds": session_seconds, "rows": rows}))
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


def run_stage(
    engine: str, stage: str, data_dir: Path, files: dict[str, list[str]], out: Path | None = None
) -> dict[str, float]:
    """One stage in a fresh process: ``CHILD`` (features as pandas), or with ``out`` ``STATE_CHILD`` (the per-drop
    state path, storing under ``out``)."""
    env = child_environ({"HVBUYER_ENGINE": engine, "HVBUYER_DATA_DIR": str(data_dir.resolve())})
    if out is None:
        cmd = [sys.executable, "-c", CHILD, stage, json.dumps(files)]
    else:
        stored = {**files, "drops": [Path(f).stem for f in files["clean_transactions"]]}
        cmd = [sys.executable, "-c", STATE_CHILD, stage, str(out.resolve()), json.dumps(stored)]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeRss(child.pid)
    sampler.start()
    out, err = child.communicate()
    peak = sampler.stop()
    if child.returncode != 0:
        raise RuntimeError(f"{engine} {stage} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "peak_rss": peak}


def _home(data_dir: Path) -> Path:
    """The data dir's Dagster instance (as ``make bench-pipeline`` and ``_generate`` make it)."""
    return data_dir / ".dagster_home"


def drops_of(data_dir: Path) -> list[str]:
    """The drop partitions of the data dir's Dagster instance, in drop order (none without an instance)."""
    if not _home(data_dir).exists():
        return []
    with dg.DagsterInstance.from_config(str(_home(data_dir).resolve())) as instance:
        return drop_order(instance)


def clean_files(data_dir: Path) -> dict[str, list[str]]:
    """Each clean table's stored drop files (``storage.catalog``, as ``engine_inputs`` finds them)."""
    drops = drops_of(data_dir)
    return {table: entry(table).drop_files(str(data_dir.resolve()), drops) for table in TABLES}


def _ids(files: list[str]) -> pa.Array:
    """The distinct customer ids of clean customer files, first seen first (drop order)."""
    if not files:
        return pa.array([], pa.large_string())
    ids = pa.concat_arrays([pq.read_table(f, columns=["customer_id"]).column(0).combine_chunks() for f in files])
    return pc.unique(ids)


def _rows(files: list[str]) -> int:
    return sum(pq.read_metadata(f).num_rows for f in files)


def _generate(customers: int, data_dir: Path) -> None:
    """A generated drop, registered as a partition and cleaned by the raw and processed assets of that partition,
    as a user's run would."""
    raw = WORKDIR / f"raw-{customers}"
    if not (raw / "transactions.json").exists():
        cmd = [sys.executable, "-m", "hvbuyer_assets.datagen", "--customers", str(customers), "--out", str(raw)]
        subprocess.run(cmd, check=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "raw").symlink_to(raw.resolve())
    _home(data_dir).mkdir()
    env = child_environ(
        {"HVBUYER_DATA_DIR": str(data_dir.resolve()), "DAGSTER_HOME": str(_home(data_dir).resolve())},
        unset=("MLFLOW_TRACKING_URI", "HVBUYER_RAW_URI"),
    )
    register = [sys.executable, "-m", "hvbuyer_assets.register_drops"]
    drops = subprocess.run(register, check=True, env=env, capture_output=True, text=True).stdout.split()
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "hvbuyer_assets.definitions", "--select"]
    with open(data_dir / "materialize.log", "w") as log:
        for drop in drops:  # one run per drop, in drop order, as the raw sensor launches them
            run = [*cmd, "group:raw or group:processed", "--partition", drop]
            if subprocess.run(run, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
                raise RuntimeError(f"cleaning drop {drop} failed: see {data_dir / 'materialize.log'}")


def _subset(source: Path, customers: int, data_dir: Path) -> None:
    """The first ``customers`` clean customers of ``source`` (in drop order) and their transactions, drop by drop,
    with the source's drops registered in the data dir's own instance."""
    drops = drops_of(source)
    ids = _ids(clean_files(source)["clean_customers"]).slice(0, customers)
    for drop in drops:
        for table in TABLES:
            path = Path(entry(table).drop_path(str(source), drop))
            if not path.exists():
                continue
            rows = pq.read_table(path)
            out = Path(entry(table).drop_path(str(data_dir), drop))
            out.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows.filter(pc.is_in(rows.column("customer_id"), value_set=ids)), out)
    _home(data_dir).mkdir(parents=True)
    with dg.DagsterInstance.from_config(str(_home(data_dir).resolve())) as instance:
        instance.add_dynamic_partitions(DROPS.name, drops)


def prepare(source: Path, customers: int) -> Path:
    """A data dir whose ``processed/`` holds the clean tables to time, per drop (made once per size)."""
    available = len(_ids(clean_files(source)["clean_customers"]))
    if available == customers:
        return source
    data_dir = WORKDIR / f"clean-{customers}"
    if len(_ids(clean_files(data_dir)["clean_customers"])) == customers:
        return data_dir
    shutil.rmtree(data_dir, ignore_errors=True)  # an unfinished or older-layout preparation
    if available > customers:
        print(f"taking the first {customers:,} customers of {source}")
        _subset(source, customers, data_dir)
    else:
        print(f"no clean data of {customers:,} customers in {source}: generating and cleaning a drop")
        _generate(customers, data_dir)
    return data_dir


def state_stages(customers: list[int], source: Path, engines: list[str]) -> int:
    """``--stages state``: the per-drop state path at each size, each engine; the peak ratio largest / smallest."""
    results = {}
    for n in customers:
        data_dir = prepare(source, n)
        files = clean_files(data_dir)
        n_tx = _rows(files["clean_transactions"])
        print(f"clean data: {data_dir} ({n:,} customers, {n_tx:,} transactions); load {psutil.getloadavg()}")
        for engine in engines:
            out = WORKDIR / f"stored-{n}-{engine}"
            shutil.rmtree(out, ignore_errors=True)
            for stage in STATE_STAGES:
                results[(n, engine, stage)] = r = run_stage(engine, stage, data_dir, files, out)
                print(
                    f"  {stage:<19}{engine:<10}{r['rows']:>11,}{r['seconds']:>9.1f} s"
                    f"{r['peak_rss'] / GIB:>8.2f} GiB peak RSS  (session {r['session_seconds']:.1f} s); "
                    f"load {psutil.getloadavg()[0]:.1f}"
                )
    print(f"\n{'stage':<19}{'engine':<10}{'customers':>11}{'rows':>11}{'wall s':>9}{'peak RSS GiB':>14}")
    for (n, engine, stage), r in results.items():
        print(f"{stage:<19}{engine:<10}{n:>11,}{r['rows']:>11,}{r['seconds']:>9.1f}{r['peak_rss'] / GIB:>14.2f}")
    if len(customers) > 1:
        low, high = min(customers), max(customers)
        print(f"\npeak RSS at {high:,} / at {low:,} customers:")
        for engine in engines:
            for stage in STATE_STAGES:
                ratio = results[(high, engine, stage)]["peak_rss"] / results[(low, engine, stage)]["peak_rss"]
                print(f"  {stage:<19}{engine:<10}{ratio:.2f}x")
    print(f"load after: {psutil.getloadavg()}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", default="1000000", help="a count, or counts separated by commas (state)")
    parser.add_argument("--source", type=Path, default=Path(".bench/pipeline/data"))
    parser.add_argument("--engines", default="embedded,spark")
    parser.add_argument("--stages", choices=("features", "state"), default="features")
    args = parser.parse_args()
    sizes = [int(n) for n in args.customers.split(",")]
    if args.stages == "state":
        return state_stages(sizes, args.source, args.engines.split(","))
    if len(sizes) != 1:
        parser.error("--stages features takes one --customers count")

    data_dir = prepare(args.source, sizes[0])
    files = clean_files(data_dir)
    n_customers, n_tx = len(_ids(files["clean_customers"])), _rows(files["clean_transactions"])
    print(
        f"clean data: {data_dir} ({n_customers:,} customers, {n_tx:,} transactions, "
        f"{len(files['clean_transactions'])} drop(s)); load {psutil.getloadavg()}"
    )
    engines = args.engines.split(",")
    results = {(e, s): run_stage(e, s, data_dir, files) for s in STAGES for e in engines}

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
