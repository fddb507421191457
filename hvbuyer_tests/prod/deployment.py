"""An isolated production-mode deployment for the prod tests, on the machine's PostgreSQL, RabbitMQ and Redis,
and how the tests look at it (runs through the webserver's GraphQL API, the API over HTTP).

The deployment is the one ``make prod-up`` starts (``scripts/prod_stack.py``, ``deploy/``), with its own ports,
S3 prefixes, RabbitMQ vhost and Redis database index, and its PostgreSQL databases on a throwaway cluster of the
installed server (``pg_cluster.py``, so that a test can restart PostgreSQL), so a test session never disturbs a
user's ``make prod-up``; all of them are removed afterwards. A service that cannot be reached (or no PostgreSQL
server installed) skips the tests with the reason, unless ``HVBUYER_REQUIRE_SERVICES=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import prod_bootstrap as boot  # noqa: E402
import prod_env  # noqa: E402
from prod_stack import Deployment  # noqa: E402

from hvbuyer_tests.prod.pg_cluster import PgCluster, server_bin  # noqa: E402

# Read at import: the session fixture of hvbuyer_tests/conftest.py hides every HVBUYER_* variable from the tests.
REQUIRE_SERVICES = os.environ.get("HVBUYER_REQUIRE_SERVICES", "") == "1"
# Every prod test module: ``pytestmark = PROD_MARKS`` (slow; the deployment's start, ~1-3 min on a busy box, and
# pipeline runs need far more than the suite's default timeout).
PROD_MARKS = [pytest.mark.slow, pytest.mark.prod, pytest.mark.timeout(1800)]
T = TypeVar("T")
SERVICES = {
    "RabbitMQ": "HVBUYER_CELERY_BROKER",
    "Redis": "HVBUYER_CELERY_BACKEND",
}
POLL_SECONDS = 0.5  # how often the waits below look again (cheap GraphQL / SQL queries)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2.0):
            return True
    except OSError:
        return False


def require_services(env: dict[str, str]) -> None:
    """Skip (or, with HVBUYER_REQUIRE_SERVICES=1, fail) naming every machine service that is unreachable."""
    missing = [f"{name} ({env[key]})" for name, key in SERVICES.items() if not _reachable(env[key])]
    if server_bin() is None:
        missing.append("PostgreSQL server (initdb, pg_ctl under /usr/lib/postgresql/*/bin)")
    if missing:
        reason = f"production-mode services unreachable: {', '.join(missing)}"
        if REQUIRE_SERVICES:
            pytest.fail(reason + " (HVBUYER_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)


def _claim_redis_index(backend_url: str) -> int:
    """An empty Redis database index (15 down to 2), claimed with a marker key for this session."""
    import redis

    parts = urlsplit(backend_url)
    for index in range(15, 1, -1):
        client = redis.Redis(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=index)
        if client.dbsize() == 0 and client.set("hvbuyer:prod-test", str(os.getpid()), nx=True):
            return index
    raise RuntimeError("no empty Redis database index between 2 and 15 for the test deployment")


def session_vhost(tag: str) -> str:
    """The session's RabbitMQ vhost: its own (``hvbuyer-<tag>``, created and deleted with ``rabbitmqctl``) where the
    broker runs on this machine, the broker's default vhost (``/``) where ``rabbitmqctl`` is not installed: a
    broker in a container of its own (the GitHub workflow's service container), which serves this session only."""
    return f"hvbuyer-{tag}" if shutil.which("rabbitmqctl") else "/"


def isolated_env(root: Path, s3_port: int, s3_endpoint_port: int, pg: PgCluster, online_store: str) -> dict[str, str]:
    """deploy/local.env with this session's own ports, prefixes, vhost and Redis index, its databases on the
    throwaway cluster ``pg``, its online store at ``online_store`` (a Redis the session can stop); the S3 server
    listens on ``s3_port``, every client uses ``s3_endpoint_port`` (a :class:`Switch` in front of it)."""
    base = prod_env.load_env(environ={})
    tag = f"t{secrets.token_hex(3)}"
    backend = urlsplit(base["HVBUYER_CELERY_BACKEND"])
    broker = urlsplit(base["HVBUYER_CELERY_BROKER"])
    mlflow, api = free_port(), free_port()
    overrides = {
        "HVBUYER_PROD_HOME": str(root),
        "HVBUYER_DEPLOYMENT_NAME": tag,
        "HVBUYER_S3_PORT": str(s3_port),
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_endpoint_port}",
        "HVBUYER_RAW_URI": f"s3://hvbuyer-raw/{tag}/drops",
        "HVBUYER_DATA_DIR": f"s3://hvbuyer-data/{tag}",
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://hvbuyer-mlflow/{tag}",
        "HVBUYER_PG_ADMIN_URL": pg.url("postgres"),
        "DAGSTER_PG_URL": pg.url(f"hvbuyer_{tag}_dagster"),
        "MLFLOW_BACKEND_STORE_URI": pg.url(f"hvbuyer_{tag}_mlflow"),
        "HVBUYER_MLFLOW_PORT": str(mlflow),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow}",
        "HVBUYER_CELERY_BROKER": f"{broker.scheme}://{broker.netloc}/{session_vhost(tag)}",
        "HVBUYER_CELERY_BACKEND": f"{backend.scheme}://{backend.netloc}/{_claim_redis_index(base['HVBUYER_CELERY_BACKEND'])}",
        "HVBUYER_ONLINE_STORE": online_store,
        "HVBUYER_DAGSTER_PORT": str(free_port()),
        "HVBUYER_GRPC_PORT": str(free_port()),
        "HVBUYER_API_PORT": str(api),
        "HVBUYER_API_URL": f"http://127.0.0.1:{api}",
        "HVBUYER_RAW_SENSOR_SECONDS": "5",
        "HVBUYER_POLL_SECONDS": "1",
        # As in the embedded loop test: model age alone would also trigger after 148 days of new data.
        "HVBUYER_MAX_MODEL_AGE_DAYS": "365",
        # MLflow clients retry an unreachable server for ~4 min by default; the MLflow-down test needs seconds.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    return {**overrides, **prod_env.load_env(environ=overrides)}


def teardown(deployment: Deployment) -> None:
    """Stop the processes and remove the databases, vhost and Redis index of a test deployment."""
    import redis

    deployment.down(say=lambda _: None)
    boot.drop_databases(deployment.env)
    boot.drop_vhost(deployment.env["HVBUYER_CELERY_BROKER"])
    backend = urlsplit(deployment.env["HVBUYER_CELERY_BACKEND"])
    redis.Redis(host=backend.hostname, port=backend.port or 6379, db=int(backend.path.lstrip("/"))).flushdb()


def wait_for(check: Callable[[], T], what: str, timeout: float = 600.0) -> T:
    """``check()``'s first truthy value, looked at every ``POLL_SECONDS``; fails naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class Outcome:
    """A run (GraphQL fields) and seconds from the upload (or launch) that caused it to its end."""

    run: dict[str, Any]
    seconds: float


FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
RUN_ENDS = ("RunSuccessEvent", "RunFailureEvent", "RunCanceledEvent")
SELECTOR = {"repositoryLocationName": "hvbuyer", "repositoryName": "__repository__"}


class Runs:
    """The deployment's runs and sensors, seen through the Dagster webserver's GraphQL API."""

    QUERY = """query($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results {
        runId jobName status creationTime startTime endTime tags { key value } } } ... on PythonError { message } } }"""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def all(self, **filters: Any) -> list[dict[str, Any]]:
        data = self.deployment.graphql(self.QUERY, {"filter": filters or None})
        return sorted(data["runsOrError"]["results"], key=lambda r: r["creationTime"])

    def wait_finished(self, job: str, timeout: float = 900.0, **filters: Any) -> dict[str, Any]:
        """The first run of ``job`` (matching ``filters``) to finish."""

        def finished() -> dict[str, Any] | None:
            return next((r for r in self.all(pipelineName=job, **filters) if r["status"] in FINISHED), None)

        return wait_for(finished, f"a finished {job} run ({filters})", timeout)

    def add_drop(self, key: str) -> None:
        """Add a drop partition as the UI's "add partition" does (what raw_drop_sensor does for a new drop)."""
        mutation = """mutation($repo: RepositorySelector!, $name: String!, $key: String!) {
            addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
            __typename ... on PythonError { message } } }"""
        variables = {"repo": SELECTOR, "name": "drops", "key": key}
        result = self.deployment.graphql(mutation, variables)["addDynamicPartition"]
        assert result["__typename"] in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), result

    def launch(
        self,
        job: str,
        run_config: dict[str, Any] | None = None,
        assets: list[str] | None = None,
        partition: str | None = None,
    ) -> str:
        """Launch a run of ``job`` (or of some of its ``assets``) as the UI does, for a drop ``partition`` when
        the selection is partitioned by drop: queued, then started by the daemon; its run id."""
        mutation = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
            ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
        selector: dict[str, Any] = {**SELECTOR, "jobName": job}
        if assets is not None:
            selector["assetSelection"] = [{"path": [name]} for name in assets]
        params: dict[str, Any] = {"selector": selector, "runConfigData": run_config or {}}
        if partition is not None:
            self.add_drop(partition)
            params["executionMetadata"] = {"tags": [{"key": "dagster/partition", "value": partition}]}
        result = self.deployment.graphql(mutation, {"params": params})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def reexecute_from_failure(self, run_id: str) -> str:
        """Re-execute a failed run from its failed steps, as the UI's "Re-execute from failure"; the new run's id."""
        mutation = """mutation($params: ReexecutionParams!) { launchRunReexecution(reexecutionParams: $params) {
            __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
        params = {"parentRunId": run_id, "strategy": "FROM_FAILURE"}
        result = self.deployment.graphql(mutation, {"params": params})["launchRunReexecution"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def wait_run(self, run_id: str, timeout: float = 900.0) -> dict[str, Any]:
        """A run once it has finished (SUCCESS, FAILURE or CANCELED)."""

        def finished() -> dict[str, Any] | None:
            runs = self.all(runIds=[run_id])
            return runs[0] if runs and runs[0]["status"] in FINISHED else None

        return wait_for(finished, f"run {run_id} finished", timeout)

    def wait_idle(self, timeout: float = 900.0) -> list[dict[str, Any]]:
        """Every run, once none is in flight and no failed run awaits the automatic retry the daemon will request
        (tag ``dagster/will_retry``: a retry run tagged ``dagster/parent_run_id`` follows)."""

        def idle() -> list[dict[str, Any]] | None:
            runs = self.all()
            parents = {run_tags(r).get("dagster/parent_run_id") for r in runs}
            awaiting_retry = [
                r for r in runs if run_tags(r).get("dagster/will_retry") == "true" and r["runId"] not in parents
            ]
            in_flight = [r for r in runs if r["status"] not in FINISHED]
            return None if in_flight or awaiting_retry else runs

        return wait_for(idle, "no run in flight", timeout)

    def span(self, run_id: str) -> tuple[float, float]:
        """When a finished run started and ended, from its RUN_START event and the event that ended it (success,
        failure or canceled) in its event log."""
        stamps = {e["__typename"]: float(e["timestamp"]) for e in self.step_events(run_id) if e.get("timestamp")}
        return stamps["RunStartEvent"], max(stamps[kind] for kind in RUN_ENDS if kind in stamps)

    def step_events(self, run_id: str) -> list[dict[str, Any]]:
        query = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
            __typename ... on MessageEvent { message stepKey timestamp }
            ... on EngineEvent { metadataEntries { label ... on TextMetadataEntry { text } } }
            ... on ErrorEvent { error { message stack causes { message } } } } }
            ... on PythonError { message } } }"""
        return self.deployment.graphql(query, {"id": run_id})["logsForRun"]["events"]

    def celery_workers(self, run_id: str) -> dict[str, str]:
        """step -> the Celery worker (``name@host``) that executed it, as the worker recorded it in the run's event
        log (dagster-celery's "Executing steps ... in celery worker" engine event); the last one per step."""
        found = {}
        for event in self.step_events(run_id):
            for entry in event.get("metadataEntries") or []:
                if entry["label"] == "Celery worker" and event.get("stepKey"):
                    found[event["stepKey"]] = entry["text"].split("@", 1)[0]
        return found

    def sensor(self, name: str, running: bool) -> None:
        """Start or stop a sensor, as the UI's toggle does."""
        selector = {**SELECTOR, "sensorName": name}
        if running:
            mutation = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
                ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""
            result = self.deployment.graphql(mutation, {"s": selector})["startSensor"]
            assert result["__typename"] == "Sensor" and result["sensorState"]["status"] == "RUNNING", result
            return
        state = self.sensor_state(name)
        mutation = """mutation($id: String!) { stopSensor(id: $id) { __typename
            ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""
        result = self.deployment.graphql(mutation, {"id": state["id"]})["stopSensor"]
        assert result["__typename"] == "StopSensorMutationResult", result
        assert result["instigationState"]["status"] == "STOPPED", result

    def sensor_state(self, name: str, ticks: int = 0) -> dict[str, Any]:
        """The sensor's instigation state (``id``, ``status``) and its last ``ticks`` ticks (newest first)."""
        query = """query($s: SensorSelector!, $n: Int) { sensorOrError(sensorSelector: $s) { __typename
            ... on Sensor { sensorState { id status ticks(limit: $n) { status timestamp skipReason } } }
            ... on PythonError { message } } }"""
        data = self.deployment.graphql(query, {"s": {**SELECTOR, "sensorName": name}, "n": ticks})["sensorOrError"]
        assert data["__typename"] == "Sensor", data
        return data["sensorState"]


def run_tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def step_start_pids(deployment: Deployment, run_id: str) -> list[tuple[str, int]]:
    """(step, pid) of every STEP_START of a run, in order, from the instance's event log (PostgreSQL): which
    process executed each step, whatever the console log level."""
    import dagster as dg

    saved = os.environ.get("DAGSTER_PG_URL")
    os.environ["DAGSTER_PG_URL"] = deployment.env["DAGSTER_PG_URL"]  # deploy/dagster.yaml reads it (env:)
    try:
        with dg.DagsterInstance.from_config(str(deployment.dagster_home)) as instance:
            records = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
            events = [r.dagster_event for r in records if r.dagster_event is not None]
            return [(e.step_key, e.pid) for e in events if e.step_key and e.pid]
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_PG_URL", None)
        else:
            os.environ["DAGSTER_PG_URL"] = saved


def worker_of(deployment: Deployment, pid: int) -> str | None:
    """The Celery worker whose process tree holds ``pid`` now."""
    for name in deployment.worker_names():
        proc = deployment.running(name)
        if proc is not None and pid in {p.pid for p in [proc, *proc.children(recursive=True)]}:
            return name
    return None


def api_get(deployment: Deployment, path: str) -> httpx.Response:
    return httpx.get(f"{deployment.env['HVBUYER_API_URL']}{path}", timeout=10.0)


class Switch:
    """A loopback TCP forwarder ``listen_port -> target_port`` that can be switched off (listener and every open
    connection closed: clients get "connection refused", as from a downed endpoint) and on again on the same port.
    The test deployment reaches its S3 server through one, so a test can take "S3" down without losing moto's
    in-memory objects."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.on()

    def on(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            doomed, self._sockets = self._sockets, set()
        for sock in [listener, *doomed]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return  # switched off
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._sockets.discard(source)
