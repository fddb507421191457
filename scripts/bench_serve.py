"""`make bench-serve`: hvbuyer's prediction service vs `mlflow models serve` on the same champion.

1. Builds a champion on generated data (default 20,000 customers, `dagster asset materialize` in `.bench/serve`;
   reused when it already exists there).
2. Starts `mlflow models serve -m models:/hvbuyer@champion --env-manager local` (MLflow's scoring server: sklearn
   `predict_proba` through pyfunc) and hvbuyer's service (uvicorn, one worker, ONNX Runtime), both on loopback.
3. Drives both with the same single-row request (the same customer's full feature row; MLflow's body is
   `{"dataframe_records": [row]}`) with wrk at concurrency 1 and 8 for the same duration, and prints
   requests/s, p50, p99 and the ratios; then times `/predict/batch` with 10,000 rows.

Targets (issue 4): hvbuyer >= 30x MLflow's throughput at concurrency 8, p50 <= 2 ms at concurrency 1, a 10,000-row
batch <= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from hvbuyer_assets.settings import child_environ

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_champion(data_dir: Path, customers: int) -> None:
    """Generate a drop and materialize the whole graph once (skipped when a champion already exists)."""
    if (data_dir / "models" / "champion_model.json").exists():
        print(f"== reusing the champion in {data_dir}")
        return
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = _env(data_dir)
    print(f"== generating {customers:,} customers and materializing the graph in {data_dir}")
    subprocess.run(
        [sys.executable, "-m", "hvbuyer_assets.datagen", "--customers", str(customers), "--out", str(data_dir / "raw")],
        env=env,
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    (data_dir / ".dagster_home").mkdir()
    register = [sys.executable, "-m", "hvbuyer_assets.register_drops"]
    drop = subprocess.run(register, env=env, check=True, cwd=REPO, capture_output=True).stdout.decode().split()[0]
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "hvbuyer_assets.definitions", "--select", "*"]
    cmd += ["--partition", drop]
    with open(data_dir / "materialize.log", "w") as log:
        subprocess.run(cmd, env=env, check=True, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def _env(data_dir: Path) -> dict[str, str]:
    env = child_environ(
        {
            "HVBUYER_DATA_DIR": str(data_dir),
            "DAGSTER_HOME": str(data_dir / ".dagster_home"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{data_dir}/mlflow.db",
        },
        unset=("HVBUYER_RAW_URI", "HVBUYER_ADMIN_TOKEN"),
    )
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout} s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def customer_row(data_dir: Path) -> dict[str, object]:
    """One real customer's full feature row (no missing values: MLflow's schema enforcement needs every column)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from hvbuyer_assets.core import features
    from hvbuyer_assets.storage.catalog import entry

    table = pq.read_table(entry("customer_features").path(str(data_dir)), columns=list(features.FEATURE_COLUMNS))
    mask = None
    for name in features.FEATURE_NUMERIC:
        valid = pc.is_valid(pc.if_else(pc.is_nan(table[name]), None, table[name]))
        mask = valid if mask is None else pc.and_(mask, valid)
    record = table.filter(mask).slice(0, 1).to_pylist()[0]
    return {k: (float(v) if k in features.FEATURE_NUMERIC else str(v)) for k, v in record.items()}


def batch_rows(data_dir: Path, n: int) -> list[dict[str, object]]:
    """n real customers as API rows (missing values omitted, or null for the required fields)."""
    import pyarrow.parquet as pq

    from hvbuyer_assets.core import features
    from hvbuyer_assets.storage.catalog import entry

    table = pq.read_table(entry("customer_features").path(str(data_dir)), columns=list(features.FEATURE_COLUMNS))
    records = table.slice(0, n).to_pylist()
    while len(records) < n:
        records += records[: n - len(records)]
    known = [{k: v for k, v in r.items() if v is not None and v == v} for r in records]
    return [{name: None for name in features.REQUIRED_FIELDS} | r for r in known]  # required: sent, null if unknown


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: str, connections: int, seconds: int) -> dict[str, float]:
    """requests/s, p50 and p99 (ms) and non-2xx count of one wrk run with a fixed POST body."""
    lua = f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
    return run_wrk(url, lua, connections, seconds)


def run_wrk(url: str, lua: str, connections: int, seconds: int, threads: int | None = None) -> dict[str, float]:
    """requests/s, p50 and p99 (ms) and non-2xx count of one wrk run with a Lua script (``threads``: wrk's, by
    default one per connection up to 2)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    cmd = [
        "wrk",
        f"-t{threads or min(connections, 2)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        script.name,
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--data-dir", default=str(REPO / ".bench" / "serve" / "data"))
    parser.add_argument("--batch-repeats", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "!! wrk is not installed (the load generator of this benchmark): `apt-get install -y wrk` or your "
            "platform's package, then re-run `make bench-serve`",
            file=sys.stderr,
        )
        return 2

    data_dir = Path(args.data_dir).resolve()
    build_champion(data_dir, args.customers)
    env = _env(data_dir)
    logs = data_dir.parent
    row = customer_row(data_dir)
    mlflow_port, hv_port = free_port(), free_port()
    mlflow_cmd = [
        "mlflow",
        "models",
        "serve",
        "-m",
        "models:/hvbuyer@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(mlflow_port),
    ]
    hv_cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "hvbuyer_serving.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(hv_port),
        "--no-access-log",
    ]
    procs = []
    try:
        procs.append(start(mlflow_cmd, env, logs / "mlflow_serve.log"))
        procs.append(start(hv_cmd, env, logs / "hvbuyer_serve.log"))
        wait_until(f"http://127.0.0.1:{mlflow_port}/ping", procs[0], logs / "mlflow_serve.log")
        wait_until(f"http://127.0.0.1:{hv_port}/health/ready", procs[1], logs / "hvbuyer_serve.log")

        targets = {
            "mlflow models serve": (
                f"http://127.0.0.1:{mlflow_port}/invocations",
                json.dumps({"dataframe_records": [row]}),
            ),
            "hvbuyer": (f"http://127.0.0.1:{hv_port}/predict", json.dumps(row)),
        }
        mlflow_answer = httpx.post(
            targets["mlflow models serve"][0],
            content=targets["mlflow models serve"][1],
            headers={"Content-Type": "application/json"},
            timeout=30,
        ).json()
        hv_answer = httpx.post(
            targets["hvbuyer"][0],
            content=targets["hvbuyer"][1],
            headers={"Content-Type": "application/json"},
            timeout=30,
        ).json()
        mlflow_p = float(mlflow_answer["predictions"][0][1])
        hv_p = hv_answer["large_purchase_probability"]
        card = httpx.get(f"http://127.0.0.1:{hv_port}/model").json()
        print(
            f"== champion v{card['version']} served by hvbuyer with {card['runtime']}; same customer: "
            f"MLflow P={mlflow_p:.6f}, hvbuyer P={hv_p:.6f} (|diff| {abs(mlflow_p - hv_p):.1e})"
        )

        results: dict[tuple[str, int], dict[str, float]] = {}
        for connections in (1, 8):
            for name, (url, body) in targets.items():
                wrk(url, body, connections, 2)  # warm-up
                results[(name, connections)] = wrk(url, body, connections, args.duration)

        batches = {
            "full feature rows": batch_rows(data_dir, 10_000),
            "seed-example rows": [{"age": 20 + i % 60, "region": "East", "loyalty_points": i} for i in range(10_000)],
        }
        batch_ms: dict[str, tuple[int, list[float]]] = {}
        with httpx.Client(timeout=60) as client:
            for label, rows in batches.items():
                payload = json.dumps({"rows": rows}).encode()
                timings = []
                for _ in range(args.batch_repeats + 2):
                    started = time.perf_counter()
                    response = client.post(
                        f"http://127.0.0.1:{hv_port}/predict/batch",
                        content=payload,
                        headers={"Content-Type": "application/json"},
                    )
                    timings.append((time.perf_counter() - started) * 1e3)
                    assert response.status_code == 200 and len(response.json()["large_purchase_probability"]) == 10_000
                batch_ms[label] = (len(payload), sorted(timings[2:]))  # the first two calls warm up
    finally:
        for proc in procs:
            stop(proc)

    print(f"\n== single-row POST, wrk {args.duration} s per run, same request stream to both (loopback, 2 cores)")
    print(f"{'server':<22}{'conc':>5}{'req/s':>11}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for (name, connections), r in results.items():
        print(
            f"{name:<22}{connections:>5}{r['rps']:>11.1f}{r['p50']:>10.3f}{r['p99']:>10.3f}{r['errors']:>9}"
            + (f"  socket errors: {r['socket_errors']}" if r["socket_errors"] else "")
        )
    for connections in (1, 8):
        ml, hv = results[("mlflow models serve", connections)], results[("hvbuyer", connections)]
        print(
            f"ratio hvbuyer/MLflow at c={connections}: throughput {hv['rps'] / ml['rps']:.1f}x, "
            f"p50 {ml['p50'] / hv['p50']:.1f}x lower"
        )
    print()
    for label, (size, timings) in batch_ms.items():
        print(
            f"== /predict/batch, 10,000 {label} ({size / 1e6:.1f} MB body), {len(timings)} calls: median "
            f"{statistics.median(timings):.1f} ms, min {timings[0]:.1f} ms, max {timings[-1]:.1f} ms"
        )
    hv8, ml8, hv1 = results[("hvbuyer", 8)], results[("mlflow models serve", 8)], results[("hvbuyer", 1)]
    checks = {
        "throughput >= 30x MLflow at c=8": hv8["rps"] / ml8["rps"] >= 30,
        "p50 <= 2 ms at c=1": hv1["p50"] <= 2.0,
        **{f"batch 10k {label} median <= 100 ms": statistics.median(t) <= 100 for label, (_, t) in batch_ms.items()},
    }
    print("\n== targets: " + "; ".join(f"{k}: {'met' if ok else 'MISSED'}" for k, ok in checks.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
