"""Measure production mode against the embedded default on the same drop (the figures of docs/production.md).

``python scripts/prod_measure.py [--customers N] [--seed S]`` with a running, empty deployment (``make prod-up``):
1. the loop's timeline: a generated drop uploaded to the raw prefix at t0 -> full_build queued / started / finished
   -> alias ``champion`` set in the MLflow server -> the API's ``GET /model`` answers that version;
2. peak resident memory of every service's process tree while that run executes;
3. the same drop built by the embedded default (``dagster asset materialize --select '*'``: in-process executor,
   local files, SQLite MLflow, temporary DAGSTER_HOME) and the per-step overhead: (production run - embedded run)
   / steps, plus both runs' mean step duration (Dagster's own step stats);
4. two runs at once against one after the other: two one-step runs (``customer_features``, ``training_set``,
   both computed from the cleaned tables) launched through the webserver together, then one after the other;
   wall seconds from the first launch to the last end, and which Celery worker executed each step.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prod_bootstrap as boot  # noqa: E402
from prod_env import REPO, load_env  # noqa: E402
from prod_stack import Deployment, tree_rss_mib  # noqa: E402

from hvbuyer_assets.settings import child_environ  # noqa: E402

RUNS = """{ runsOrError(filter: {pipelineName: "full_build"}) { ... on Runs { results {
    runId status creationTime startTime endTime stepStats { stepKey startTime endTime } } } } }"""


def sample_memory(deployment: Deployment, peaks: dict[str, float], stop: threading.Event) -> None:
    while not stop.is_set():
        for service in deployment.services():
            proc = deployment.running(service.name)
            if proc is not None:
                peaks[service.name] = max(peaks.get(service.name, 0.0), tree_rss_mib(proc))
        stop.wait(1.0)


def prod_loop(deployment: Deployment, drop: Path) -> tuple[dict, dict[str, float], dict[str, float]]:
    """Upload the drop, follow the loop to the API; (full_build run, timeline seconds, peak MiB per service)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=deployment.env["MLFLOW_TRACKING_URI"])
    api = deployment.env["HVBUYER_API_URL"]
    peaks: dict[str, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(deployment, peaks, stop), daemon=True)
    t0 = time.time()
    boot.upload_drop(deployment.env, drop)
    sampler.start()
    timeline: dict[str, float] = {}
    run: dict = {}
    while not ("api_serves" in timeline and run.get("endTime")) and time.time() - t0 < 1800:
        runs = deployment.graphql(RUNS)["runsOrError"]["results"]
        run = runs[0] if runs else {}
        if run.get("status") == "FAILURE":
            raise SystemExit(f"full_build {run['runId']} failed: see the Dagster UI")
        if "champion_alias" not in timeline:
            try:
                client.get_model_version_by_alias("hvbuyer", "champion")
                timeline["champion_alias"] = time.time() - t0
            except Exception:  # no alias yet
                pass
        served = "api_serves" not in timeline and "champion_alias" in timeline
        if served and httpx.get(f"{api}/model", timeout=5).json().get("version"):
            timeline["api_serves"] = time.time() - t0
        time.sleep(0.5)
    stop.set()
    for key, field in (("run_created", "creationTime"), ("run_started", "startTime"), ("run_finished", "endTime")):
        if run.get(field):
            timeline[key] = run[field] - t0
    return run, dict(sorted(timeline.items(), key=lambda kv: kv[1])), peaks


def embedded_build(drop: Path) -> tuple[float, list[dict]]:
    """The embedded default on the same drop: (run seconds, step stats) from its own SQLite instance."""
    import dagster as dg

    with tempfile.TemporaryDirectory() as tmp:
        data, home = Path(tmp) / "data", Path(tmp) / "home"
        (data / "raw").mkdir(parents=True)
        home.mkdir()
        for path in drop.iterdir():
            (data / "raw" / path.name).write_bytes(path.read_bytes())
        env = {
            k: v for k, v in child_environ().items() if not k.startswith(("HVBUYER_", "MLFLOW_", "AWS_", "DAGSTER_"))
        }
        env.update(HVBUYER_DATA_DIR=str(data), DAGSTER_HOME=str(home))
        cli = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize"]
        register = [sys.executable, "-m", "hvbuyer_assets.register_drops"]
        first = subprocess.run(register, cwd=REPO, env=env, check=True, capture_output=True).stdout.decode().split()[0]
        subprocess.run(
            [*cli, "-m", "hvbuyer_assets.definitions", "--select", "*", "--partition", first],
            cwd=REPO,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with dg.DagsterInstance.from_config(str(home)) as instance:
            record = instance.get_runs(limit=1)[0]
            stats = instance.get_run_stats(record.run_id)
            steps = [
                {"stepKey": s.step_key, "startTime": s.start_time, "endTime": s.end_time}
                for s in instance.get_run_step_stats(record.run_id)
            ]
            return stats.end_time - stats.start_time, steps


LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"""
WORKERS = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
    ... on EngineEvent { stepKey metadataEntries { label ... on TextMetadataEntry { text } } } } } } }"""
TWO_RUNS = (["customer_features"], ["training_set"])


def launch(deployment: Deployment, assets: list[str]) -> str:
    selector = {"repositoryLocationName": "hvbuyer", "repositoryName": "__repository__", "jobName": "full_build"}
    params = {"selector": {**selector, "assetSelection": [{"path": [a]} for a in assets]}, "runConfigData": {}}
    result = deployment.graphql(LAUNCH, {"params": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise SystemExit(f"launch failed: {result}")
    return result["run"]["runId"]


def wait_done(deployment: Deployment, run_id: str) -> dict:
    while True:
        run = deployment.graphql(RUN, {"id": run_id})["runOrError"]
        if run.get("status") in ("SUCCESS", "FAILURE", "CANCELED"):
            if run["status"] != "SUCCESS":
                raise SystemExit(f"run {run_id} {run['status']}")
            return run
        time.sleep(0.5)


def step_workers(deployment: Deployment, run_id: str) -> dict[str, str]:
    events = deployment.graphql(WORKERS, {"id": run_id})["logsForRun"]["events"]
    return {
        e["stepKey"]: m["text"].split("@", 1)[0]
        for e in events
        for m in e.get("metadataEntries") or []
        if m["label"] == "Celery worker"
    }


def two_runs(deployment: Deployment) -> tuple[float, float, list[dict[str, str]]]:
    """(seconds both at once, seconds one after the other, steps -> worker of the runs at once)."""
    began = time.time()
    together = [launch(deployment, assets) for assets in TWO_RUNS]
    at_once = max(wait_done(deployment, r)["endTime"] for r in together) - began
    began = time.time()
    for assets in TWO_RUNS:
        wait_done(deployment, launch(deployment, assets))
    return at_once, time.time() - began, [step_workers(deployment, r) for r in together]


def mean_step(steps: list[dict]) -> float:
    durations = [s["endTime"] - s["startTime"] for s in steps if s["startTime"] and s["endTime"]]
    return sum(durations) / len(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--two-runs-only", action="store_true", help="only 4. (a deployment with data built)")
    args = parser.parse_args()
    deployment = Deployment(load_env())
    if args.two_runs_only:
        report_two_runs(deployment)
        return
    with tempfile.TemporaryDirectory() as tmp:
        drop = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "hvbuyer_assets.datagen",
                "--customers",
                str(args.customers),
                "--out",
                tmp,
                "--seed",
                str(args.seed),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        run, timeline, peaks = prod_loop(deployment, drop)
        prod_seconds = run["endTime"] - run["startTime"]
        embedded_seconds, embedded_steps = embedded_build(drop)
    steps = run["stepStats"]
    print(f"== loop timeline (drop of {args.customers:,} customers, seed {args.seed}), seconds after the upload")
    for key, value in timeline.items():
        print(f"   {key:16} {value:7.1f}")
    print("== peak resident memory during the run (process tree, MiB)")
    for name, value in peaks.items():
        print(f"   {name:24} {value:7.0f}")
    print(
        f"== full_build: production {prod_seconds:.1f} s ({len(steps)} steps on Celery, mean step "
        f"{mean_step(steps):.2f} s); embedded {embedded_seconds:.1f} s ({len(embedded_steps)} steps in process, "
        f"mean step {mean_step(embedded_steps):.2f} s)"
    )
    print(
        f"   per-step overhead: ({prod_seconds:.1f} - {embedded_seconds:.1f}) / {len(steps)} = "
        f"{(prod_seconds - embedded_seconds) / len(steps):.2f} s"
    )
    report_two_runs(deployment)


def report_two_runs(deployment: Deployment) -> None:
    at_once, sequential, workers = two_runs(deployment)
    print(
        f"== two one-step runs {TWO_RUNS}: at once {at_once:.1f} s (steps on {workers}); one after the other "
        f"{sequential:.1f} s"
    )


if __name__ == "__main__":
    main()
