"""`make bench-serve`, second part: serving at a customer count (issue 19), on the champion `bench_serve.py` builds.

1. Grows the built scores and features to `--customers` customers (new ids, the built rows repeated) and writes
   them to each online store, timed: SQLite (a file) and Redis (a redis-server of this script's own on a free
   port, so the machine's Redis is never filled or flushed); then a second write with 1 % of the scores changed.
2. For each store, the API (uvicorn, 1 worker) after 10,000 random look-ups: its RSS, against the same service
   with an empty store; then look-up latency with wrk at concurrency 8 (random ids).
3. `/predict/batch` with 10,000 full rows as JSON rows, JSON columns and an Arrow IPC stream (median of repeats).
4. `/predict?explain=5` latency next to the plain `/predict`'s (wrk, concurrency 1, the same row) and `/predict`
   throughput at 1 and 2 workers (wrk, c=8).

    .venv/bin/python scripts/bench_serve_scale.py --customers 1000000   # what `make bench-serve` runs

Targets (issue 19): RSS within +50 MB of the service without scores; look-up p50 <= 1 ms at c=8 on both stores;
1M rows written in <= 15 s (SQLite) and <= 10 s (Redis); 10,000 rows <= 50 ms in the fastest form and <= 70 ms as
JSON rows; explain p50 <= 10 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from bench_serve import (
    REPO,
    _env,
    batch_rows,
    build_champion,
    customer_row,
    free_port,
    run_wrk,
    start,
    stop,
    wait_until,
    wrk,
)

from hvbuyer_assets.storage.catalog import entry
from hvbuyer_serving.online_store import open_store, score_records

ARROW = "application/vnd.apache.arrow.stream"


def grown(data_dir: Path, customers: int) -> tuple[pd.DataFrame, np.ndarray, str]:
    """(features indexed by new ids, probabilities, model version) of ``customers`` customers: the built ones
    repeated (vectorised)."""
    feats = pq.read_table(entry("customer_features").path(str(data_dir))).to_pandas()
    scores = pq.read_table(entry("customer_scores").path(str(data_dir))).to_pandas().set_index("customer_id")
    take = np.arange(customers) % len(feats)
    out = feats.iloc[take].reset_index(drop=True)
    out.index = pd.Index([f"B{i:08d}" for i in range(customers)], name="customer_id")
    proba = scores.loc[feats.index, "large_purchase_probability"].to_numpy()[take]
    return out, proba, str(scores["model_version"].iloc[0])


@contextmanager
def private_redis(folder: Path):
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*cmd, "--dir", str(folder)], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(200):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def write_timings(url: str, feats: pd.DataFrame, proba: np.ndarray, version: str) -> dict[str, float]:
    store = open_store(url)
    started = time.perf_counter()
    first = store.write(score_records(feats, proba, version), {"scored_at": "bench-1"})
    full = time.perf_counter() - started
    changed = proba.copy()
    picked = np.random.default_rng(0).choice(len(proba), size=max(1, len(proba) // 100), replace=False)
    changed[picked] = np.clip(changed[picked] + 0.01, 0, 1)
    started = time.perf_counter()
    second = store.write(score_records(feats, changed, version), {"scored_at": "bench-2"})
    delta = time.perf_counter() - started
    store.close()
    assert first.written == len(proba) and second.written == len(picked), (first, second)
    return {"full": full, "changed_1pct": delta, "written": second.written}


@contextmanager
def service(data_dir: Path, log: Path, workers: int = 1, **env: str):
    port = free_port()
    environ = {**_env(data_dir), "HVBUYER_API_PORT": str(port), "HVBUYER_API_WORKERS": str(workers), **env}
    proc = start([sys.executable, "-m", "hvbuyer_serving"], environ, log)
    try:
        wait_until(f"http://127.0.0.1:{port}/health/ready", proc, log)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)


def rss_after_lookups(base: str, proc: subprocess.Popen, ids: list[str], lookups: int) -> float:
    rng = random.Random(1)
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(lookups):
            client.get(f"/customers/{rng.choice(ids)}/prediction")
    return max(p.memory_info().rss for p in _tree(proc)) / 2**20


def _tree(proc: subprocess.Popen) -> list[psutil.Process]:
    return [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]


def wrk_one_row(url: str, row: str, proc: subprocess.Popen, seconds: int) -> dict[str, float]:
    """wrk at concurrency 1, plus the service's CPU milliseconds per request (user + system time of its processes):
    unlike the latency, that figure barely moves with the load of a shared box."""
    before = _cpu_seconds(proc)
    result = wrk(url, row, 1, seconds)
    return result | {"cpu_ms": (_cpu_seconds(proc) - before) * 1e3 / max(1.0, result["rps"] * seconds)}


def _cpu_seconds(proc: subprocess.Popen) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in _tree(proc))


LOOKUP_LUA = """ids = {%s}
request = function()
  return wrk.format("GET", "/customers/" .. ids[math.random(#ids)] .. "/prediction")
end
"""


def wrk_get(base: str, ids: list[str], connections: int, seconds: int) -> dict[str, float]:
    """wrk GETs of random customers' look-ups (5,000 ids in the Lua script), one wrk thread: a look-up costs the
    server little more than wrk's own request, and a second wrk thread takes the server's share of the 2 cores."""
    sample = random.Random(2).sample(ids, min(len(ids), 5_000))
    return run_wrk(base, LOOKUP_LUA % ",".join(json.dumps(i) for i in sample), connections, seconds, threads=1)


def batch_bodies(data_dir: Path) -> dict[str, tuple[bytes, str]]:
    rows = batch_rows(data_dir, 10_000)
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = {name: [row.get(name) for row in rows] for name in names}
    sink = io.BytesIO()
    table = pa.table(columns)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {
        "JSON rows": (json.dumps({"rows": rows}).encode(), "application/json"),
        "JSON columns": (json.dumps({"columns": columns}).encode(), "application/json"),
        "Arrow IPC stream": (sink.getvalue(), ARROW),
    }


def batch_medians(base: str, bodies: dict[str, tuple[bytes, str]], repeats: int) -> dict[str, tuple[int, float]]:
    out = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for label, (body, media) in bodies.items():
            times = []
            for _ in range(repeats + 2):
                started = time.perf_counter()
                response = client.post("/predict/batch", content=body, headers={"content-type": media})
                times.append((time.perf_counter() - started) * 1e3)
                assert response.status_code == 200, response.text[:300]
            out[label] = (len(body), statistics.median(times[2:]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers in the online store")
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--batch-repeats", type=int, default=20)
    parser.add_argument("--data-dir", default=str(REPO / ".bench" / "serve" / "data"))
    args = parser.parse_args()
    data_dir = Path(args.data_dir).resolve()
    build_champion(data_dir, 20_000)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-scale-"))
    feats, proba, version = grown(data_dir, args.customers)
    ids = feats.index.tolist()
    row = json.dumps(customer_row(data_dir))
    results: dict[str, object] = {}
    try:
        with private_redis(work) as redis_url:
            stores = {"SQLite": f"sqlite:///{work}/online_store.db", "Redis": redis_url}
            for name, url in stores.items():
                results[f"write {name}"] = write_timings(url, feats, proba, version)
                print(
                    f"== {name}: {args.customers:,} rows written in {results[f'write {name}']['full']:.1f} s",
                    flush=True,
                )
            empty = {"HVBUYER_ONLINE_STORE": f"sqlite:///{work}/empty.db"}
            with service(data_dir, work / "api-empty.log", **empty) as (base, proc):
                results["rss none"] = rss_after_lookups(base, proc, ids, args.lookups)
            for name, url in stores.items():
                with service(data_dir, work / f"api-{name}.log", HVBUYER_ONLINE_STORE=url) as (base, proc):
                    results[f"rss {name}"] = rss_after_lookups(base, proc, ids, args.lookups)
                    wrk_get(base, ids, 8, 2)  # warm-up
                    results[f"lookup {name}"] = wrk_get(base, ids, 8, args.duration)
                    if name == "SQLite":
                        results["batch"] = batch_medians(base, batch_bodies(data_dir), args.batch_repeats)
                        explain_url = f"{base}/predict?explain=5"
                        wrk(explain_url, row, 1, 2)
                        results["explain"] = wrk_one_row(explain_url, row, proc, args.duration)
                        results["predict c=1"] = wrk_one_row(f"{base}/predict", row, proc, args.duration)  # same row
            for workers in (1, 2):
                with service(data_dir, work / f"api-w{workers}.log", workers=workers) as (base, _):
                    wrk(f"{base}/predict", row, 8, 2)
                    results[f"workers {workers}"] = wrk(f"{base}/predict", row, 8, args.duration)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, args.customers)
    return 0


def report(results: dict, customers: int) -> None:
    print(f"\n== online store, {customers:,} customers")
    for name in ("SQLite", "Redis"):
        w, lk, rss, none = (
            results[f"write {name}"],
            results[f"lookup {name}"],
            results[f"rss {name}"],
            results["rss none"],
        )
        print(f"{name}: write {w['full']:.1f} s; 1 % changed: {w['written']:,} rows in {w['changed_1pct']:.1f} s")
        print(
            f"  look-up c=8: p50 {lk['p50']:.3f} ms, p99 {lk['p99']:.3f} ms, {lk['rps']:,.0f} req/s, "
            f"non-2xx {lk['errors']}"
        )
        print(f"  API RSS after the look-ups {rss:.0f} MiB; with no scores {none:.0f} MiB ({rss - none:+.0f} MiB)")
    print("\n== /predict/batch, 10,000 full rows")
    for label, (size, ms) in results["batch"].items():
        print(f"{label:<18} {size / 1e6:5.1f} MB body: median {ms:.1f} ms")
    e, plain = results["explain"], results["predict c=1"]
    print("\n== one row at c=1 (wrk), the same row; service CPU per request")
    for label, r in (("/predict?explain=5", e), ("/predict", plain)):
        print(f"{label:<18} p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, CPU {r['cpu_ms']:.2f} ms/request")
    print(f"explain adds {e['p50'] - plain['p50']:.2f} ms at p50, {e['cpu_ms'] - plain['cpu_ms']:.2f} ms of CPU")
    one, two = results["workers 1"]["rps"], results["workers 2"]["rps"]
    print(f"== /predict c=8: 1 worker {one:,.0f} req/s, 2 workers {two:,.0f} req/s ({two / one:.2f}x)")


if __name__ == "__main__":
    raise SystemExit(main())
