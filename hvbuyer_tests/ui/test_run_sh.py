"""``make run`` as a user meets it: the first build is a run of ``full_build`` with a quiet console and a summary,
the three URLs are printed once they answer, Ctrl-C stops everything promptly, a taken port is a clear failure."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from hvbuyer_tests.deadline import Deadline
from hvbuyer_tests.serving.service import free_port
from hvbuyer_tests.ui.conftest import REPO, MakeRun

STOP_SECONDS = 8  # HVBUYER_STOP_GRACE (3 s) for the services, then KILL; the rest is polling slack

FULL_BUILD_RUNS = """
{ runsOrError(filter: {pipelineName: "full_build"}) { ... on Runs { results { runId status } } } }
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_run_builds_through_full_build_then_prints_a_summary_and_three_answering_urls(make_run: MakeRun) -> None:
    output = make_run.output()
    urls = make_run.urls
    # The first build: a run of the full_build job, INFO-level console, a summary read from the outputs.
    assert "DEBUG" not in output
    assert "Warning" not in output
    assert "== build summary" in output
    assert "hold-out ROC-AUC  0." in output and "demographics_only" in output
    assert "champion          v1 (promoted" in output
    assert "drift             " in output
    assert "customers scored  3,0" in output
    # Each URL printed once, after it answered, then the ready line.
    for name in ("Dagster UI", "API", "MLflow UI"):
        answered = re.findall(rf"^   {name} +answers at http://127\.0\.0\.1:\d+", output, re.MULTILINE)
        assert len(answered) == 1, output
    with httpx.Client(timeout=10) as http:
        runs = http.post(f"{urls['dagster']}/graphql", json={"query": FULL_BUILD_RUNS}).json()
        assert [r["status"] for r in runs["data"]["runsOrError"]["results"]] == ["SUCCESS"]
        assert http.get(urls["api"].removesuffix("/docs") + "/health/ready").status_code == 200
        alias = http.get(
            f"{urls['mlflow']}/api/2.0/mlflow/registered-models/alias",
            params={"name": "hvbuyer", "alias": "champion"},
        )
        assert alias.status_code == 200 and alias.json()["model_version"]["version"] == "1"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ctrl_c_stops_every_process_run_sh_started_within_seconds(tmp_path: Path) -> None:
    run = MakeRun(tmp_path).start(HVBUYER_SKIP_BUILD="1")  # the services alone: the build is tested above
    try:
        urls = run.wait_ready()
        with httpx.Client(timeout=10) as http:
            assert http.get(f"{urls['dagster']}/server_info").status_code == 200
            assert http.get(urls["api"].removesuffix("/docs") + "/health/live").status_code == 200
            assert http.get(f"{urls['mlflow']}/health").status_code == 200
        assert len(run.descendants()) >= 5  # dagster dev + webserver + daemon + code server, uvicorn, mlflow

        elapsed, alive = run.interrupt(timeout=STOP_SECONDS)
        assert run.proc is not None and run.proc.returncode == 0, run.output()[-3000:]
        assert elapsed < STOP_SECONDS
        assert alive == [], alive
        assert "== stopped" in run.output()
        for port in run.ports.values():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))  # free again
    finally:
        run.kill()


@pytest.mark.parametrize(
    ("service", "variable"), [("Dagster UI", "HVBUYER_DAGSTER_PORT"), ("MLflow UI", "HVBUYER_MLFLOW_PORT")]
)
def test_a_port_in_use_stops_run_sh_before_anything_starts(tmp_path: Path, service: str, variable: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        run = MakeRun(tmp_path, ports={"dagster": free_port(), "api": free_port(), "mlflow": free_port()})
        started = time.monotonic()
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "run.sh")],
            cwd=REPO,
            env=run.env(**{variable: str(taken)}),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {taken} ({service}) is already in use" in result.stderr
    assert variable in result.stderr
    assert time.monotonic() - started < 30
    assert not run.data_dir.exists(), "nothing is generated or built when a port is taken"


def test_build_summary_names_what_the_build_did_not_reach(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_summary.py")],
        cwd=REPO,
        env={**os.environ, "HVBUYER_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "model_evaluation was not built" in result.stdout
    assert "customer_scores missing" in result.stdout


def _started_by(run: MakeRun) -> list[psutil.Process]:
    """Every live process started for ``run`` (its DAGSTER_HOME in their environment), wherever they now hang."""
    mine = f"DAGSTER_HOME={run.dagster_home}"
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if mine in (f"{k}={v}" for k, v in proc.environ().items()) and proc.pid != os.getpid():
                found.append(proc)
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("broken", "extra", "says"),
    [
        # The Dagster UI cannot start: its instance configuration is invalid (the API and the MLflow UI start).
        ("telemetry:\n  enabled: maybe\n", {}, "Dagster UI exited during start-up"),
        # Nothing answers in time (the start-up timeout shorter than any service needs).
        (None, {"HVBUYER_START_TIMEOUT": "1"}, "did not answer"),
    ],
    ids=["exits-during-start-up", "does-not-answer-in-time"],
)
def test_a_service_that_fails_to_start_stops_everything_with_a_non_zero_exit(
    tmp_path: Path, broken: str | None, extra: dict[str, str], says: str, deadline: Deadline
) -> None:
    run = MakeRun(tmp_path)
    if broken is not None:
        run.dagster_home.mkdir()
        (run.dagster_home / "dagster.yaml").write_text(broken)
    run.start(HVBUYER_SKIP_BUILD="1", **extra)
    try:
        assert run.proc is not None
        rc = deadline.wait_process(run.proc, "run.sh to give up", run.log_path)
        output = run.output()
        assert rc == 1, output[-3000:]
        assert says in output and "== ready" not in output, output[-3000:]
        _, alive = psutil.wait_procs(_started_by(run), timeout=5)  # run.sh killed them before it exited
        assert not alive, [p.cmdline() for p in alive]
        for port in run.ports.values():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))  # free again
    finally:
        run.kill()
        for proc in _started_by(run):
            proc.kill()
