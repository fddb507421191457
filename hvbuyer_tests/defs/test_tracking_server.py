"""The MLflow tracking server down: what a run's failure says. The MLflow resource's first request (the experiment)
fails, and the error names the server's URL and why, instead of MLflow's "API request to ... failed" buried under
Dagster's "Error executing resource_fn on ResourceDefinition mlflow". Against a closed loopback port (nothing
listens: connection refused) and a loopback HTTP server whose ``/health`` answers 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
from celery import Celery
from celery.backends.base import BaseBackend

from hvbuyer_assets import registry
from hvbuyer_assets.defs.model.resources import mlflow_tracking_resource
from hvbuyer_assets.settings import load_settings
from hvbuyer_tests.serving.service import free_port


@pytest.fixture
def closed_server(monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of a loopback port nothing listens on; MLflow's client gives up at once (no retries)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return f"http://127.0.0.1:{free_port()}"


class _Unhealthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"database unavailable"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def unhealthy_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unhealthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_closed_port_is_described_as_the_server_unreachable(closed_server: str) -> None:
    problem = registry.tracking_server_problem(closed_server, timeout=2.0)
    assert problem is not None and problem.startswith(f"MLflow tracking server {closed_server} unreachable: ")
    assert "ConnectError" in problem


def test_a_server_whose_health_fails_is_described_with_its_answer(unhealthy_server: str) -> None:
    problem = registry.tracking_server_problem(unhealthy_server, timeout=2.0)
    expected = f"MLflow tracking server {unhealthy_server} unhealthy: GET /health answered 503 database unavailable"
    assert problem == expected


def test_a_local_store_is_no_server_to_check(tmp_path: Path) -> None:
    assert registry.tracking_server_problem(f"sqlite:///{tmp_path}/mlflow.db") is None


def _resource_failure(tracking_uri: str, data_dir: Path) -> dg.DagsterResourceFunctionError:
    settings = load_settings({"MLFLOW_TRACKING_URI": tracking_uri, "HVBUYER_DATA_DIR": str(data_dir)})
    with (
        pytest.raises(dg.DagsterResourceFunctionError) as failure,
        dg.build_resources({"mlflow": mlflow_tracking_resource(settings)}),
    ):
        pass
    return failure.value


def test_the_mlflow_resource_fails_naming_the_server(closed_server: str, tmp_path: Path) -> None:
    failure = _resource_failure(closed_server, tmp_path)
    cause = failure.user_exception
    assert isinstance(cause, registry.TrackingServerError), repr(cause)
    assert str(cause).startswith(f"MLflow tracking server {closed_server} unreachable: ")
    # the error's own message names the server: on Celery it is all that reaches the run's failure (no cause)
    assert failure.args == (f"resource mlflow: {cause}",), failure.args


def test_the_run_failure_on_celery_names_the_server(closed_server: str, tmp_path: Path) -> None:
    """dagster-celery's run worker gets a step's exception back through Celery's result backend (JSON: the type
    and its arguments, no cause) and fails the run with it: what it rebuilds still names the server."""
    backend = BaseBackend(app=Celery(set_as_current=False), serializer="json")
    rebuilt = backend.exception_to_python(backend.prepare_exception(_resource_failure(closed_server, tmp_path)))
    assert f"resource mlflow: MLflow tracking server {closed_server} unreachable: " in str(rebuilt), str(rebuilt)
