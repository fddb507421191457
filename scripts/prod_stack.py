"""Production mode on this machine: start, check and stop every process of one deployment.

``python scripts/prod_stack.py up|down|status|sample`` (``make prod-up`` ...). The deployment is described by
``deploy/local.env`` under the environment (:mod:`prod_env`); its pid files, logs and ``DAGSTER_HOME`` live in
``HVBUYER_PROD_HOME``. ``up`` is idempotent: a service whose recorded process is alive is left alone, databases,
buckets and the RabbitMQ vhost are created only when missing. ``down`` stops exactly the recorded processes
(TERM to each process group, KILL after a grace period) and keeps every database and file.
The prod tests drive :class:`Deployment` too, with their own ports, prefixes, databases and Redis index.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prod_bootstrap as boot  # noqa: E402
from processes import STOP_GRACE_SECONDS, ProcessTable, http_ok, port_open, stop_groups, tree_rss_mib  # noqa: E402
from prod_env import REPO, load_env, process_env  # noqa: E402
from spark_cluster import Cluster, ClusterConfig  # noqa: E402

from hvbuyer_assets.settings import child_environ, load_settings  # noqa: E402

BIN = Path(sys.executable).parent
# dagster-webserver keeps one pooled PostgreSQL connection per storage (runs, event log, schedules) across requests,
# without a liveness check; a PostgreSQL restart closes it and the next query of that storage answers 500 ("server
# closed the connection unexpectedly"). Recycling a connection older than 0 s opens a fresh one per query instead.
WEBSERVER_DB_FLAGS = ("--db-pool-recycle", "0")


@dataclass
class Service:
    """One background process of the deployment and how to tell it is healthy."""

    name: str
    argv: list[str]
    healthy: Callable[[], bool]
    port: int | None = None
    extra_env: Mapping[str, str] | None = None


class Deployment:
    """One production-mode deployment: its environment, state folder and services."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.home = (REPO / self.env["HVBUYER_PROD_HOME"]).resolve()
        self.dagster_home = self.home / "dagster_home"
        self.logs = self.home / "logs"
        self.pids = self.home / "pids"
        self.table = ProcessTable(self.pids, self.logs, REPO)

    # -- configuration -------------------------------------------------------------------------------------------
    def port(self, key: str) -> int:
        return int(self.env[key])

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.port(key)}"

    @property
    def dagster_url(self) -> str:
        return self.url("HVBUYER_DAGSTER_PORT")

    def worker_names(self) -> list[str]:
        tag = self.env.get("HVBUYER_DEPLOYMENT_NAME", "prod")
        return [f"hvbuyer-{tag}-w{i}" for i in range(1, int(self.env.get("HVBUYER_CELERY_WORKERS", "2")) + 1)]

    def spark_cluster(self) -> Cluster:
        """The deployment's standalone Spark cluster (``HVBUYER_SPARK_*_PORT``; state in ``<prod home>/spark``)."""
        config = ClusterConfig.from_env(self.env, home_default=str(self.home / "spark"))
        return Cluster(config, process_env(self.env))

    def runs_spark_cluster(self) -> bool:
        """True when the steps run on Spark (``HVBUYER_ENGINE=spark``) at this deployment's own cluster."""
        env = process_env(self.env)
        master = env.get("HVBUYER_SPARK_MASTER") or ""
        return env.get("HVBUYER_ENGINE") == "spark" and master == self.spark_cluster().config.master_url

    def admin_token(self) -> str:
        """The admin token shared by the API and the pipeline (kept in the state folder, mode 0600)."""
        path = self.home / "admin_token"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def process_env(self) -> dict[str, str]:
        """Environment of every process: the caller's, the deployment's, and what follows from it."""
        env = process_env(self.env)
        env.update(
            DAGSTER_HOME=str(self.dagster_home),
            HVBUYER_ADMIN_TOKEN=self.admin_token(),
            MLFLOW_S3_ENDPOINT_URL=self.env["AWS_ENDPOINT_URL_S3"],  # MLflow's boto client for artifacts
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",  # else mlflow server starts 10 job-runner processes
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
            PYTHONUNBUFFERED="1",
            PATH=f"{BIN}{os.pathsep}{child_environ().get('PATH', '')}",
        )
        return env

    def render(self, template: str, target: Path) -> None:
        """Copy a deploy/ file into the state folder with ``${VAR}`` filled in (written only when it changed)."""
        text = (REPO / "deploy" / template).read_text()
        for key, value in {**self.env, "HVBUYER_GRPC_HOST": self.env.get("HVBUYER_GRPC_HOST", "127.0.0.1")}.items():
            text = text.replace("${" + key + "}", value)
        missing = re.findall(r"\$\{([A-Z0-9_]+)\}", text)
        if missing:
            raise ValueError(f"deploy/{template}: no value for {', '.join(sorted(set(missing)))}")
        if not target.exists() or target.read_text() != text:
            target.write_text(text)

    def services(self) -> list[Service]:
        """Every process, in start order."""
        s3_port, mlflow_port = self.port("HVBUYER_S3_PORT"), self.port("HVBUYER_MLFLOW_PORT")
        grpc_port, web_port = self.port("HVBUYER_GRPC_PORT"), self.port("HVBUYER_DAGSTER_PORT")
        api_port = self.port("HVBUYER_API_PORT")
        workspace = str(self.home / "workspace.yaml")
        services = [
            Service(
                "s3",
                [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                lambda: http_ok(f"http://127.0.0.1:{s3_port}/moto-api/"),
                s3_port,
            ),
            Service(
                "mlflow",
                [
                    str(BIN / "mlflow"),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    self.env["MLFLOW_BACKEND_STORE_URI"],
                    "--artifacts-destination",
                    self.env["MLFLOW_ARTIFACTS_DESTINATION"],
                ],
                lambda: http_ok(f"http://127.0.0.1:{mlflow_port}/health"),
                mlflow_port,
            ),
            Service(
                "code-server",
                [
                    str(BIN / "dagster"),
                    "api",
                    "grpc",
                    "-m",
                    "hvbuyer_assets.definitions",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(grpc_port),
                    "--location-name",
                    "hvbuyer",
                ],
                lambda: port_open(grpc_port),
                grpc_port,
            ),
            Service(
                "webserver",
                [
                    str(BIN / "dagster-webserver"),
                    *("-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)),
                    *WEBSERVER_DB_FLAGS,
                ],
                lambda: http_ok(f"http://127.0.0.1:{web_port}/server_info"),
                web_port,
            ),
            Service("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], self.daemon_healthy),
        ]
        queues = self.env.get("HVBUYER_CELERY_QUEUES", "dagster")
        for name in self.worker_names():
            services.append(
                Service(
                    name,
                    [
                        str(BIN / "dagster-celery"),
                        "worker",
                        "start",
                        "-A",
                        "dagster_celery.app",
                        "-y",
                        str(self.home / "celery_worker.yaml"),
                        "-q",
                        queues,
                        "-n",
                        name,
                        # Import the definitions in the worker before it forks its pool: the first step of
                        # each worker would otherwise wait for them (~10-25 s on this box).
                        "-i",
                        "hvbuyer_assets.definitions",
                        "--",
                        "--concurrency",
                        "1",
                    ],
                    lambda name=name: name in self.live_workers(),
                )
            )
        services.append(
            Service(
                "api",
                [str(BIN / "python"), "-m", "hvbuyer_serving"],  # HVBUYER_API_PORT / _WORKERS from the env
                lambda: http_ok(f"http://127.0.0.1:{api_port}/health/live"),
                api_port,
            )
        )
        return services

    # -- health --------------------------------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """One query to the Dagster webserver's GraphQL endpoint; the ``data`` part. A failed request raises
        ``httpx.HTTPStatusError`` with the response body in its message: a resolver's exception is answered 500
        with the GraphQL ``errors`` (message, path, stack) in the body, and the webserver does not log it."""
        response = httpx.post(
            f"{self.dagster_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30.0
        )
        if response.is_error:
            raise httpx.HTTPStatusError(
                f"{response.status_code} from {response.url}: {response.text[:4000]}",
                request=response.request,
                response=response,
            )
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def daemon_healthy(self) -> bool:
        """Every required daemon (sensors, run queue, monitoring, retries) has sent a recent heartbeat."""
        try:
            data = self.graphql("{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }")
        except (httpx.HTTPError, RuntimeError):
            return False
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        return bool(statuses) and all(s["healthy"] for s in statuses if s["required"])

    def live_workers(self) -> set[str]:
        """Names (without ``@host``) of the Celery workers answering a ping on this deployment's broker."""
        from celery import Celery

        app = Celery(broker=self.env["HVBUYER_CELERY_BROKER"])
        try:
            replies = app.control.ping(timeout=1.0)
        except Exception:  # broker unreachable
            return set()
        finally:
            app.close()
        return {name.split("@", 1)[0] for reply in replies for name in reply}

    # -- process records -----------------------------------------------------------------------------------------
    def running(self, name: str) -> psutil.Process | None:
        """The recorded process of a service if it is still the same process (pid and start time)."""
        return self.table.running(name)

    def _start(self, service: Service, env: dict[str, str]) -> None:
        self.table.start(service.name, service.argv, {**env, **(service.extra_env or {})}, service.port)

    def wait_healthy(self, service: Service, timeout: float = 120.0) -> None:
        """Wait until the service answers its health check; fail naming its log if it dies or times out."""
        self.table.wait(service.name, service.healthy, timeout)

    def prepare(self) -> None:
        for folder in (self.dagster_home, self.logs, self.pids):
            folder.mkdir(parents=True, exist_ok=True)
        dagster_yaml = self.dagster_home / "dagster.yaml"
        source = REPO / "deploy" / "dagster.yaml"
        if not dagster_yaml.exists() or dagster_yaml.read_bytes() != source.read_bytes():
            shutil.copyfile(source, dagster_yaml)
        self.render("workspace.yaml", self.home / "workspace.yaml")
        self.render("celery_worker.yaml", self.home / "celery_worker.yaml")

    # -- commands ------------------------------------------------------------------------------------------------
    def up(self, say: Callable[[str], None] = print) -> dict[str, float]:
        """Start whatever is not running, wait for every health check; seconds per started service."""
        self.prepare()
        databases = boot.ensure_databases(self.env)
        for what, names in (
            ("databases", databases),
            ("RabbitMQ vhost", boot.ensure_vhost(self.env["HVBUYER_CELERY_BROKER"])),
        ):
            if names:
                say(f"created {what}: {', '.join(names)}")
        env = self.process_env()
        if boot.database_name(self.env["DAGSTER_PG_URL"]) in databases:
            # Create the instance's tables once: the code server, webserver and daemon starting together on an
            # empty database would each try and collide ("type backfill_tags already exists").
            subprocess.run(
                [str(BIN / "dagster"), "instance", "migrate"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
            )
            say("created the Dagster instance's tables")
        # Start every missing process at once (none needs another to boot), then wait for each in order.
        began = time.monotonic()
        started = []
        for service in self.services():
            if self.running(service.name) is None:
                self._start(service, env)
                started.append(service.name)
        timings: dict[str, float] = {}
        for service in self.services():
            self.wait_healthy(service)
            if service.name in started:
                timings[service.name] = time.monotonic() - began
                say(f"started {service.name} (healthy after {timings[service.name]:.1f} s)")
            created = []
            if service.name == "s3":
                created = boot.ensure_buckets(self.env)
            elif service.name == "mlflow":
                created = boot.ensure_experiment(self.env["MLFLOW_TRACKING_URI"])
            if created:
                say(f"created for {service.name}: {', '.join(created)}")
        if self.runs_spark_cluster():
            timings.update(self.spark_cluster().up(say))
        return timings

    def down(self, say: Callable[[str], None] = print) -> list[str]:
        """Stop every recorded process (all at once, one grace period); the names stopped. Data is kept."""
        stopped = self.table.stop([service.name for service in reversed(self.services())])
        for name in stopped:
            say(f"stopped {name}")
        return stopped + self.spark_cluster().down(say)  # whatever of it runs, whichever engine is set now

    @staticmethod
    def stop_process(proc: psutil.Process, grace: float = STOP_GRACE_SECONDS) -> None:
        """TERM the process group the service leads, KILL what is left after ``grace`` seconds."""
        stop_groups([proc], grace)

    def status(self) -> list[tuple[str, str, str, float]]:
        """(service, state, where, resident memory of its process tree in MiB) for every service."""
        rows = []
        for service in self.services():
            proc = self.running(service.name)
            state = "down" if proc is None else ("healthy" if service.healthy() else "starting/unhealthy")
            where = f"http://127.0.0.1:{service.port}" if service.port else ""
            rows.append((service.name, state, where, 0.0 if proc is None else tree_rss_mib(proc)))
        if self.runs_spark_cluster():
            cluster = self.spark_cluster()
            rows += [(name, state, cluster.config.master_ui_url, rss) for name, state, rss in cluster.status()]
        return rows

    def summary(self) -> str:
        lines = [
            f"Dagster UI:      {self.dagster_url}",
            f"API:             {self.env['HVBUYER_API_URL']}   (GET /model, /health/ready)",
            f"MLflow server:   {self.env['MLFLOW_TRACKING_URI']}",
            f"S3 endpoint:     {self.env['AWS_ENDPOINT_URL_S3']}   raw: {self.env['HVBUYER_RAW_URI']}   "
            f"data: {self.env['HVBUYER_DATA_DIR']}",
            f"Celery workers:  {', '.join(self.worker_names())} on {self.env['HVBUYER_CELERY_BROKER']}",
            f"Logs:            {self.logs}/<service>.log   DAGSTER_HOME: {self.dagster_home}",
        ]
        if self.runs_spark_cluster():
            lines.append(self.spark_cluster().summary())
        return "\n".join(lines)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    deployment = Deployment(load_env())
    if command == "up":
        began = time.monotonic()
        deployment.up()
        print(f"== production mode up ({time.monotonic() - began:.1f} s)\n{deployment.summary()}")
    elif command == "down":
        stopped = deployment.down()
        print(f"== stopped {len(stopped)} processes; databases, buckets and {deployment.home} kept")
    elif command == "status":
        for name, state, where, rss in deployment.status():
            print(f"{name:24} {state:20} {rss:8.0f} MiB  {where}")
    elif command == "sample":
        from hvbuyer_assets import datagen  # noqa: F401  (fails early when the package is not installed)

        customers = str(load_settings().sample_customers)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "hvbuyer_assets.datagen", "--customers", customers, "--out", tmp, "--seed", "7"],
                check=True,
            )
            keys = boot.upload_drop(deployment.env, Path(tmp))
        print(f"== uploaded {', '.join(keys)} to {deployment.env['HVBUYER_RAW_URI']}")
    else:
        print(f"usage: {argv[0]} up|down|status|sample", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
