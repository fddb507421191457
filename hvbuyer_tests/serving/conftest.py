"""A real uvicorn process on a loopback port serving a workspace's champion."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    data_dir: Path, poll_seconds: float = 0.3, ready: bool = True, log_file: Path | None = None, **env: str
) -> Iterator[httpx.Client]:
    """Start ``uvicorn hvbuyer_serving.app:app`` against a data dir; yield a client once it answers (and, with
    ``ready``, serves a verified model); stop it. The service's output goes to ``log_file`` when given."""
    port = free_port()
    environ = {
        **os.environ,
        "HVBUYER_DATA_DIR": str(data_dir),
        "HVBUYER_POLL_SECONDS": str(poll_seconds),
        **env,
    }
    environ.pop("MLFLOW_TRACKING_URI", None)
    if "HVBUYER_ADMIN_TOKEN" not in env:
        environ.pop("HVBUYER_ADMIN_TOKEN", None)
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "hvbuyer_serving.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # closed in finally; an unread pipe would block uvicorn
    log = open(log_file, "w+") if log_file else tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=REPO, env=environ, stdout=log, stderr=subprocess.STDOUT, text=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"uvicorn exited: {log.read()[-3000:]}")
            try:
                if client.get("/health/ready" if ready else "/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                raise TimeoutError(f"uvicorn was not ready within 60 s: {log.read()[-3000:]}")
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def api(built) -> Iterator[httpx.Client]:
    """One service on the built workspace (admin token set), shared by the read-only API tests."""
    with serve(built.root, HVBUYER_ADMIN_TOKEN=ADMIN_TOKEN) as client:
        yield client
