"""A real service process for the tests: uvicorn (or ``python -m hvbuyer_serving``) against a data dir on a free
loopback port, its output kept in a file the test can read (what an operator's log would show)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hvbuyer_tests.conftest import clean_environment

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token"
STARTUP_SECONDS = 300  # importing MLflow + ONNX Runtime and loading a model takes 5 s idle, minutes on a loaded box


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    return clean_environment(**{"HVBUYER_DATA_DIR": str(data_dir), "HVBUYER_POLL_SECONDS": "0.2", **env})


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until true (fails naming ``what`` after ``timeout`` s: a generous bound, not a timing
    assumption; the condition itself is what the test checks)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _answers(service: Service, path: str) -> bool:
    """``path`` answers 200; the service must not have exited meanwhile (its log says why)."""
    if service.process.poll() is not None:
        raise RuntimeError(f"the service exited ({service.process.returncode}): {service.log()[-3000:]}")
    try:
        return service.client.get(path).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def launch(
    data_dir: Path,
    log_path: Path | None = None,
    app: str = "hvbuyer_serving.app:app",
    wait_for: str = "/health/live",
    command: list[str] | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    **env: str,
) -> Iterator[Service]:
    """Start the service (its output in ``log_path``, a temporary file if none); yield once ``wait_for`` answers
    200; stop it (TERM, then KILL)."""
    port = port or free_port()
    cmd = command or [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    with ExitStack() as stack:
        if log_path is None:
            log_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "service.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=environment(data_dir, **env), stdout=log, stderr=subprocess.STDOUT
            )
        client = httpx.Client(base_url=f"http://{host}:{port}", timeout=30)
        service = Service(client, proc, log_path, port)
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not _answers(service, wait_for):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{wait_for} not 200 within {STARTUP_SECONDS} s: {service.log()[-3000:]}")
                time.sleep(0.1)
            yield service
        finally:
            client.close()  # no open connection for the server to wait on while it shuts down
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def serve(
    data_dir: Path, poll_seconds: float = 0.3, ready: bool = True, log_file: Path | None = None, **env: str
) -> Iterator[httpx.Client]:
    """``uvicorn hvbuyer_serving.app:app`` against a data dir (``launch``): a client once it answers and, with
    ``ready``, serves a verified model. Its output goes to ``log_file`` when given."""
    wait_for = "/health/ready" if ready else "/health/live"
    with launch(data_dir, log_file, wait_for=wait_for, HVBUYER_POLL_SECONDS=str(poll_seconds), **env) as service:
        yield service.client
