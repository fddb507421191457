"""The service's safety nets that need no champion, over real HTTP against real processes: before any champion
every prediction endpoint is 503 (never 500) and readiness says not ready; the body limit follows
HVBUYER_MAX_BODY_BYTES; a client that disconnects mid-body is neither logged nor counted as a server error;
the generic 500 handler hides the exception; ``python -m hvbuyer_serving`` binds HVBUYER_API_HOST/PORT."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hvbuyer_tests.serving.failing_app import SECRET
from hvbuyer_tests.serving.service import REPO, Service, environment, free_port, launch, wait_until

pytestmark = pytest.mark.slow  # each service process takes 5-30 s to start

BODY_LIMIT = 4096
SEED = {"age": 35, "region": "East", "loyalty_points": 1200}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def no_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service on an empty data dir (empty registry, no scores) with a small body limit."""
    root = tmp_path_factory.mktemp("no_model")
    with launch(root / "data", root / "service.log", HVBUYER_MAX_BODY_BYTES=str(BODY_LIMIT)) as service:
        wait_until(lambda: service.client.get("/model").json()["checked_at"] is not None, "a first registry look-up")
        yield service


def _status_lines(metrics: str, endpoint: str) -> dict[str, float]:
    """``hvbuyer_http_requests_total`` by status for one route."""
    found = {}
    for line in metrics.splitlines():
        if line.startswith("hvbuyer_http_requests_total{") and f'endpoint="{endpoint}"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            found[status] = float(line.rsplit(" ", 1)[1])
    return found


def test_before_any_champion_predictions_are_503_and_readiness_says_so(no_model: Service) -> None:
    api = no_model.client
    ready = api.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    assert api.get("/health/live").status_code == 200  # alive, just not ready
    assert api.get("/model").json()["status"] == "no_model"

    single = api.post("/predict", json=SEED)
    assert single.status_code == 503 and "no champion" in single.json()["detail"]
    batch = api.post("/predict/batch", json={"rows": [SEED, {**SEED, "age": 61}]})
    assert batch.status_code == 503 and "no champion" in batch.json()["detail"]

    customer = api.get("/customers/C0000001/prediction")
    assert customer.status_code == 503 and "no customer scores yet" in customer.json()["detail"]
    assert "500" not in _status_lines(api.get("/metrics").text, "/predict")


def test_body_limit_follows_hvbuyer_max_body_bytes(no_model: Service) -> None:
    api = no_model.client
    required = b'{"age": 35, "region": null, "loyalty_points": null'  # the required fields (null: unknown)
    padded = required + b" " * (BODY_LIMIT - len(required) - 10) + b"}"  # valid JSON just under the limit
    assert len(padded) <= BODY_LIMIT
    assert api.post("/predict", content=padded, headers=JSON).status_code == 503  # read and parsed: no champion yet
    over = api.post("/predict", content=b" " * (BODY_LIMIT + 1), headers=JSON)
    assert over.status_code == 413 and f"exceeds {BODY_LIMIT} bytes" in over.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(3):
            yield b" " * 2000

    streamed = api.post("/predict/batch", content=chunks(), headers=JSON)
    assert streamed.status_code == 413


def test_an_invalid_body_limit_stops_the_service_naming_the_variable(tmp_path: Path) -> None:
    env = environment(tmp_path / "data", HVBUYER_MAX_BODY_BYTES="lots")
    cmd = [sys.executable, "-m", "uvicorn", "hvbuyer_serving.app:app", "--host", "127.0.0.1", "--port", "0"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "HVBUYER_MAX_BODY_BYTES" in done.stdout + done.stderr


def test_a_client_disconnecting_mid_body_is_not_a_server_error(no_model: Service) -> None:
    api = no_model.client
    before = _status_lines(api.get("/metrics").text, "/predict/batch")
    with socket.create_connection(("127.0.0.1", no_model.port)) as sock:
        head = (
            "POST /predict/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 3000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"rows": [{"age": 35}, ')
        time.sleep(0.3)  # the handler is now waiting for the rest of the body
    # the server notices the disconnect and records the request
    wait_until(
        lambda: sum(_status_lines(api.get("/metrics").text, "/predict/batch").values()) > sum(before.values()),
        "the disconnected request to be recorded",
    )
    after = _status_lines(api.get("/metrics").text, "/predict/batch")
    assert after.get("500", 0) == before.get("500", 0), after
    assert after.get("499", 0) == before.get("499", 0) + 1, after  # "client closed request"
    log = no_model.log()
    assert "unhandled error" not in log and "Traceback" not in log and "ClientDisconnect" not in log


def test_the_generic_500_handler_hides_the_exception(tmp_path: Path) -> None:
    with launch(tmp_path / "data", tmp_path / "service.log", app="hvbuyer_tests.serving.failing_app:app") as service:
        # (uvicorn closes a connection after an unhandled error: a fresh one for the next requests)
        response = service.client.get("/test/boom", headers={"Connection": "close"})
        assert response.status_code == 500
        assert response.json() == {"detail": "internal server error"}
        assert "hunter2" not in response.text and "Traceback" not in response.text and ".py" not in response.text
        metrics = service.client.get("/metrics").text
        assert _status_lines(metrics, "/test/boom") == {"500": 1.0}
        # the operator's log has what the client must not see
        wait_until(lambda: SECRET in service.log(), "the error in the service log", timeout=10)
        assert "unhandled error on GET /test/boom" in service.log() and "RuntimeError" in service.log()


def test_python_m_hvbuyer_serving_binds_the_configured_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    host = "127.0.0.2"  # not the default 127.0.0.1: proves HVBUYER_API_HOST is used
    command = [sys.executable, "-m", "hvbuyer_serving"]
    with launch(
        tmp_path / "data",
        tmp_path / "service.log",
        command=command,
        host=host,
        port=port,
        HVBUYER_API_HOST=host,
        HVBUYER_API_PORT=str(port),
    ) as service:
        assert service.client.get("/health/live").json() == {"status": "ok"}
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5)
