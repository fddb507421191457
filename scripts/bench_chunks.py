"""Peak memory of a drop's raw and clean steps at two chunk sizes (``HVBUYER_RAW_CHUNK_BYTES``).

Generates one drop (datagen, ``--customers``), then for each chunk size runs its raw and clean assets exactly as
users do (``dagster asset materialize`` in a child process, a fresh data dir and instance each) and prints each
step's wall time and peak RSS (sampled every 50 ms from the child and its children), with the ratio of the
peaks to those of the largest chunk size.

    python scripts/bench_chunks.py [--customers 200000] [--chunks 4194304 67108864] [--workdir .bench/chunks]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from bench_pipeline import GIB, RssSampler, ensure_data, first_drop, step_seconds_and_peaks

from hvbuyer_assets.settings import child_environ

RAW_AND_CLEAN = (
    "raw_customers,raw_transactions,clean_customers,quarantined_customers,clean_transactions,quarantined_transactions"
)


def run_steps(data_dir: Path, chunk_bytes: int) -> dict[str, tuple[float, int]]:
    """Materialize the first drop's raw and clean assets with ``chunk_bytes``; (seconds, peak RSS) per step."""
    home = data_dir / ".dagster_home"
    home.mkdir()
    env = child_environ(
        {"HVBUYER_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home), "HVBUYER_RAW_CHUNK_BYTES": str(chunk_bytes)},
        unset=("MLFLOW_TRACKING_URI", "HVBUYER_RAW_URI"),
    )
    drop = first_drop(env)
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "hvbuyer_assets.definitions"]
    cmd += ["--select", RAW_AND_CLEAN, "--partition", drop]
    with open(data_dir / "materialize.log", "w") as log:
        child = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = RssSampler(child.pid)
        sampler.start()
        code = child.wait()
    sampler.stop()
    if code != 0:
        raise SystemExit(f"materialize failed (chunk {chunk_bytes}): see {data_dir / 'materialize.log'}")
    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.get_runs(limit=1)[0]
    steps = step_seconds_and_peaks(instance, run.run_id, sampler)  # a failed run stopped above
    instance.dispose()
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--chunks", type=int, nargs=2, default=[4 << 20, 64 << 20], help="two chunk sizes (bytes)")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/chunks"))
    args = parser.parse_args()

    raw = args.workdir / f"raw-{args.customers}"
    ensure_data(raw, args.customers)
    size = sum(p.stat().st_size for p in raw.iterdir() if p.is_file())
    print(f"drop: {args.customers:,} customers, {size / 2**20:.0f} MiB of raw files")
    results = {}
    for chunk in sorted(args.chunks):
        data_dir = args.workdir / f"data-{chunk}"
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.copytree(raw, data_dir / "raw", copy_function=shutil.copy2)  # keep the files' arrival (mtime)
        started = time.perf_counter()
        results[chunk] = run_steps(data_dir.resolve(), chunk)
        print(f"chunk {chunk / 2**20:g} MiB: raw + clean in {time.perf_counter() - started:.1f} s (whole process)")
    largest = max(results)
    print(f"\n{'step':<22}" + "".join(f"{f'{c / 2**20:g} MiB chunk':>26}" for c in sorted(results)) + "   peak ratio")
    for step in results[largest]:
        cells = []
        for chunk in sorted(results):
            seconds, peak = results[chunk].get(step, (float("nan"), 0))
            cells.append(f"{seconds:8.1f} s {peak / GIB:8.2f} GiB")
        small, big = (results[c].get(step, (0, 0))[1] for c in (min(results), largest))
        print(f"{step:<22}" + "".join(f"{c:>26}" for c in cells) + f"   {small / big if big else float('nan'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
