"""A real service process for safety-net tests: uvicorn (or ``python -m hvbuyer_serving``) on a free loopback
port, its output kept in a file the test can read (what an operator's log would show)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hvbuyer_tests.conftest import clean_environment
from hvbuyer_tests.serving.conftest import REPO, free_port

STARTUP_SECONDS = 300  # importing MLflow + ONNX Runtime and loading a model takes 5 s idle, minutes on a loaded box


@dataclass
class Service:
    client: httpx.Client
    process: subprocess.Popen
    log_path: Path
    port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def environment(data_dir: Path, **env: str) -> dict[str, str]:
    """The service's environment for a data dir: none of the HVBUYER_/MLFLOW_/AWS_ variables this process may hold
    (an in-process MLflow call sets MLFLOW_TRACKING_URI), so the service follows this data dir's registry."""
    return clean_environment(HVBUYER_DATA_DIR=str(data_dir), HVBUYER_POLL_SECONDS="0.2", **env)


@contextmanager
def launch(
    data_dir: Path,
    log_path: Path,
    app: str = "hvbuyer_serving.app:app",
    wait_for: str = "/health/live",
    command: list[str] | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    **env: str,
) -> Iterator[Service]:
    """Start the service; yield once ``wait_for`` answers 200; stop it (TERM, then KILL)."""
    port = port or free_port()
    cmd = command or [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=environment(data_dir, **env), stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://{host}:{port}", timeout=30)
    service = Service(client, proc, log_path, port)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited ({proc.returncode}): {service.log()[-3000:]}")
            try:
                if client.get(wait_for).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{wait_for} did not answer 200 within {STARTUP_SECONDS} s: {service.log()[-3000:]}")
            time.sleep(0.2)
        yield service
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate, what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until true (fails naming ``what`` after ``timeout`` s: a generous bound, not a timing
    assumption; the condition itself is what the test checks)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
