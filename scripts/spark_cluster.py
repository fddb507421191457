"""A standalone Spark cluster on this machine, from pyspark's own distribution: start, check and stop it.

``python scripts/spark_cluster.py up|down|status`` (``make spark-up`` / ``spark-down`` / ``spark-status``): one
master and ``HVBUYER_SPARK_WORKERS`` workers (default 2), each its own JVM run by pyspark's ``bin/spark-class``
(``org.apache.spark.deploy.master.Master`` / ``org.apache.spark.deploy.worker.Worker``), on loopback ports, with a
pid record and a log each under ``HVBUYER_SPARK_CLUSTER_HOME`` (default ``.spark/``: ``pids/``, ``logs/``, and the
workers' ``work/`` folders with each executor's own log). Nothing is downloaded: the jars are pyspark's, the JVM is
the machine's Java 17+.

``up`` checks Java and every port first, starts whatever is not running, and waits until the master's JSON view
(``http://127.0.0.1:<master UI port>/json/``) says ALIVE and lists each of its workers ALIVE; a failure names the
cause (no Java, a port taken, a process that exited, a worker that never registered) with the last lines of the
log concerned. Every port is fixed (``spark.port.maxRetries=0``): a taken port is an error, never a silent move to
the next one. ``down`` stops exactly the recorded processes (a worker's executors are in its process group).

The pipeline uses the cluster with ``HVBUYER_ENGINE=spark HVBUYER_SPARK_MASTER=spark://127.0.0.1:<master port>``
(docs/engines.md). ``make prod-up`` starts one when the deployment runs on Spark (``prod_stack.py``).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from processes import ProcessTable, port_open, tree_rss_mib  # noqa: E402

from hvbuyer_assets.settings import SPARK_MEMORY, child_environ  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIN_JAVA = 17
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
START_TIMEOUT_SECONDS = 180.0  # a JVM start on a busy 2-core box takes 10-40 s
# Every knob, its environment variable and default (docs/engines.md#a-standalone-cluster-on-this-machine).
DEFAULTS = {
    "HVBUYER_SPARK_CLUSTER_HOME": ".spark",
    "HVBUYER_SPARK_MASTER_PORT": "7077",
    "HVBUYER_SPARK_MASTER_UI_PORT": "8180",  # Spark's 8080 is the API's port
    "HVBUYER_SPARK_WORKER_PORT": "7078",  # worker n listens on this + n - 1
    "HVBUYER_SPARK_WORKER_UI_PORT": "8181",  # worker n's UI on this + n - 1
    "HVBUYER_SPARK_WORKERS": "2",
    "HVBUYER_SPARK_WORKER_CORES": "1",
    "HVBUYER_SPARK_WORKER_MEMORY": "2g",
    "HVBUYER_SPARK_DAEMON_MEMORY": "512m",  # heap of the master and worker JVMs themselves
}
_JAVA_VERSION = re.compile(r'version "(?P<major>\d+)(?:\.(?P<minor>\d+))?')


@dataclass(frozen=True)
class Worker:
    """One worker JVM: its name (pid record and log), RPC and UI ports, and its executors' work folder."""

    name: str
    port: int
    ui_port: int
    work_dir: Path


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster lives and listens, and what each worker offers to applications."""

    home: Path
    master_port: int
    master_ui_port: int
    worker_port: int
    worker_ui_port: int
    workers: int
    worker_cores: int
    worker_memory: str
    daemon_memory: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], home_default: str | None = None) -> ClusterConfig:
        """The configuration from ``HVBUYER_SPARK_*`` variables (empty = default); ValueError names a bad one."""

        def value(key: str) -> str:
            return env.get(key) or (home_default if key.endswith("CLUSTER_HOME") and home_default else DEFAULTS[key])

        def integer(key: str, low: int, high: int) -> int:
            raw = value(key)
            if not raw.isdigit() or not low <= int(raw) <= high:
                raise ValueError(f"{key}={raw!r}: expected an integer from {low} to {high}")
            return int(raw)

        def memory(key: str) -> str:
            raw = value(key)
            if not SPARK_MEMORY.fullmatch(raw):
                raise ValueError(f"{key}={raw!r}: expected a JVM memory size such as 512m or 2g")
            return raw

        home = Path(value("HVBUYER_SPARK_CLUSTER_HOME"))
        config = cls(
            home=(home if home.is_absolute() else REPO / home).resolve(),
            master_port=integer("HVBUYER_SPARK_MASTER_PORT", 1, 65535),
            master_ui_port=integer("HVBUYER_SPARK_MASTER_UI_PORT", 1, 65535),
            worker_port=integer("HVBUYER_SPARK_WORKER_PORT", 1, 65535),
            worker_ui_port=integer("HVBUYER_SPARK_WORKER_UI_PORT", 1, 65535),
            workers=integer("HVBUYER_SPARK_WORKERS", 1, 64),
            worker_cores=integer("HVBUYER_SPARK_WORKER_CORES", 1, 1024),
            worker_memory=memory("HVBUYER_SPARK_WORKER_MEMORY"),
            daemon_memory=memory("HVBUYER_SPARK_DAEMON_MEMORY"),
        )
        owners: dict[int, list[str]] = {}
        for name, (rpc, ui) in config.ports().items():
            owners.setdefault(rpc, []).append(f"{name} RPC")
            owners.setdefault(ui, []).append(f"{name} UI")
        wrong = [f"{' and '.join(who)} on {port}" for port, who in owners.items() if len(who) > 1 or port > 65535]
        if wrong:
            raise ValueError(f"HVBUYER_SPARK_*_PORT: ports must be distinct and at most 65535: {'; '.join(wrong)}")
        return config

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def master_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.master_ui_port}"

    def worker_list(self) -> list[Worker]:
        return [
            Worker(
                f"spark-worker-{n}", self.worker_port + n - 1, self.worker_ui_port + n - 1, self.home / "work" / str(n)
            )
            for n in range(1, self.workers + 1)
        ]

    def ports(self) -> dict[str, tuple[int, int]]:
        """(RPC port, UI port) of every process: the master's, then each worker's."""
        ports = {"spark-master": (self.master_port, self.master_ui_port)}
        ports.update({worker.name: (worker.port, worker.ui_port) for worker in self.worker_list()})
        return ports


def master_argv(config: ClusterConfig, spark_class: Path) -> list[str]:
    return [
        str(spark_class),
        MASTER_CLASS,
        "--host",
        "127.0.0.1",
        "--port",
        str(config.master_port),
        "--webui-port",
        str(config.master_ui_port),
    ]


def worker_argv(config: ClusterConfig, worker: Worker, spark_class: Path) -> list[str]:
    return [
        str(spark_class),
        WORKER_CLASS,
        config.master_url,
        "--host",
        "127.0.0.1",
        "--port",
        str(worker.port),
        "--webui-port",
        str(worker.ui_port),
        "--cores",
        str(config.worker_cores),
        "--memory",
        config.worker_memory,
        "--work-dir",
        str(worker.work_dir),
    ]


def daemon_env(config: ClusterConfig, spark_home: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The JVMs' environment: pyspark's directory as SPARK_HOME, loopback only, fixed ports, no REST submission
    server, this cluster's own (empty) conf folder so that no spark-env.sh of the machine applies."""
    fixed = "-Dspark.port.maxRetries=0"
    return {
        **environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_CONF_DIR": str(config.home / "conf"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": config.daemon_memory,
        "SPARK_MASTER_OPTS": f"{fixed} -Dspark.master.rest.enabled=false",
        "SPARK_WORKER_OPTS": fixed,
    }


def java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output (``1.8.0`` is 8, ``17.0.15`` is 17); None if absent."""
    match = _JAVA_VERSION.search(version_output)
    if match is None:
        return None
    major = int(match["major"])
    return int(match["minor"] or 0) if major == 1 else major


def registration(master: Mapping[str, Any], config: ClusterConfig) -> list[str]:
    """The workers of ``config`` that the master's JSON view does not list as ALIVE (all of them while the master
    itself is not ALIVE); empty when the cluster is ready."""
    expected = {worker.port: worker.name for worker in config.worker_list()}
    if master.get("status") != "ALIVE":
        return list(expected.values())
    alive = {
        w.get("port") for w in master.get("workers", []) if w.get("host") == "127.0.0.1" and w.get("state") == "ALIVE"
    }
    return [name for port, name in expected.items() if port not in alive]


def spark_class() -> tuple[Path, Path]:
    """pyspark's directory (its Spark home) and its ``bin/spark-class``; RuntimeError when pyspark is missing."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise RuntimeError('no pyspark in this environment: install the spark extra (pip install -e ".[spark]")')
    home = Path(spec.origin).parent
    script = home / "bin" / "spark-class"
    if not script.exists():
        raise RuntimeError(f"pyspark at {home} has no bin/spark-class")
    return home, script


def check_java(environ: Mapping[str, str]) -> str:
    """The ``java`` spark-class will run (JAVA_HOME's, else PATH's) if it is Java 17+; RuntimeError naming why not."""
    java_home = environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java", path=environ.get("PATH"))
    if not java or not Path(java).exists():
        where = f"JAVA_HOME={java_home}" if java_home else "no `java` on PATH and JAVA_HOME unset"
        raise RuntimeError(
            f"the Spark cluster needs Java {MIN_JAVA}+: {where} (Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, env=dict(environ), check=False)
    major = java_major(out.stderr + out.stdout)
    if major is None or major < MIN_JAVA:
        raise RuntimeError(
            f"the Spark cluster needs Java {MIN_JAVA}+, {java} is {(out.stderr or out.stdout).strip()!r}"
        )
    return java


class Cluster:
    """One local standalone cluster: its configuration and recorded processes."""

    def __init__(self, config: ClusterConfig, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.environ = dict(child_environ() if environ is None else environ)
        self.table = ProcessTable(config.home / "pids", config.home / "logs", REPO)

    def names(self) -> list[str]:
        return ["spark-master", *(worker.name for worker in self.config.worker_list())]

    def master_json(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """The master's JSON view (status, workers, active and completed applications), None if unreachable."""
        try:
            response = httpx.get(f"{self.config.master_ui_url}/json/", timeout=timeout)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def worker_json(self, worker: Worker, timeout: float = 30.0) -> dict[str, Any]:
        """A worker's own JSON view: its id, and its running and finished executors with their application ids."""
        response = httpx.get(f"http://127.0.0.1:{worker.ui_port}/json/", timeout=timeout)
        response.raise_for_status()
        return response.json()

    def _check_ports(self, names: list[str]) -> None:
        """Every port of the processes about to start is free; else RuntimeError naming each taken port."""
        ports = self.config.ports()
        taken = [
            f"{name} {role} port {port}"
            for name in names
            for role, port in zip(("RPC", "UI"), ports[name], strict=True)
            if port_open(port)
        ]
        if taken:
            raise RuntimeError(
                f"{', '.join(taken)} already in use by another process (not this cluster's; "
                "set HVBUYER_SPARK_*_PORT, docs/engines.md)"
            )

    def up(self, say: Callable[[str], None] = print, timeout: float = START_TIMEOUT_SECONDS) -> dict[str, float]:
        """Start whatever is not running and wait until every worker is ALIVE at the master; seconds per start."""
        spark_home, script = spark_class()
        check_java(self.environ)
        missing = [name for name in self.names() if self.table.running(name) is None]
        self._check_ports(missing)
        (self.config.home / "conf").mkdir(parents=True, exist_ok=True)
        env = daemon_env(self.config, spark_home, self.environ)
        try:
            return self._start(missing, script, env, say, timeout)
        except BaseException:
            self.table.stop(missing[::-1])  # a failed start leaves nothing of its own running
            raise

    def _start(
        self, missing: list[str], script: Path, env: dict[str, str], say: Callable[[str], None], timeout: float
    ) -> dict[str, float]:
        began, timings = time.monotonic(), {}
        if "spark-master" in missing:
            self.table.start("spark-master", master_argv(self.config, script), env)
        self.table.wait("spark-master", lambda: (self.master_json() or {}).get("status") == "ALIVE", timeout, "ALIVE")
        if "spark-master" in missing:
            timings["spark-master"] = time.monotonic() - began
            say(f"started spark-master at {self.config.master_url} (ALIVE after {timings['spark-master']:.1f} s)")
        for worker in self.config.worker_list():
            if worker.name in missing:
                worker.work_dir.mkdir(parents=True, exist_ok=True)
                self.table.start(worker.name, worker_argv(self.config, worker, script), env)
        for worker in self.config.worker_list():
            self.table.wait(
                worker.name,
                lambda worker=worker: worker.name not in registration(self.master_json() or {}, self.config),
                timeout,
                f"registered with the master at {self.config.master_url} (ALIVE in {self.config.master_ui_url}/json/)",
            )
            if worker.name in missing:
                timings[worker.name] = time.monotonic() - began
                say(f"started {worker.name} on port {worker.port} (ALIVE after {timings[worker.name]:.1f} s)")
        return timings

    def down(self, say: Callable[[str], None] = print) -> list[str]:
        """Stop the recorded processes (workers, with their executors, and the master); the names stopped."""
        stopped = self.table.stop(self.names()[::-1])
        for name in stopped:
            say(f"stopped {name}")
        return stopped

    def status(self) -> list[tuple[str, str, float]]:
        """(process, state, resident memory of its process tree in MiB) for the master and every worker."""
        master = self.master_json()
        unregistered = registration(master or {}, self.config)
        rows = []
        for name in self.names():
            proc = self.table.running(name)
            if proc is None:
                state = "down"
            elif name == "spark-master":
                state = "ALIVE" if master and master.get("status") == "ALIVE" else "starting/unhealthy"
            else:
                state = "ALIVE" if name not in unregistered else "not registered"
            rows.append((name, state, 0.0 if proc is None else tree_rss_mib(proc)))
        return rows

    def summary(self) -> str:
        return (
            f"Spark master:  {self.config.master_url}   (HVBUYER_SPARK_MASTER for HVBUYER_ENGINE=spark)\n"
            f"Master UI:     {self.config.master_ui_url}   (JSON: {self.config.master_ui_url}/json/)\n"
            f"Workers:       {self.config.workers} x {self.config.worker_cores} core(s), {self.config.worker_memory}\n"
            f"Logs:          {self.table.logs}/<process>.log   executors: {self.config.home / 'work'}"
        )


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    cluster = Cluster(ClusterConfig.from_env(child_environ()))
    if command == "up":
        began = time.monotonic()
        try:
            cluster.up()
        except RuntimeError as exc:
            print(f"== Spark cluster not started: {exc}", file=sys.stderr)
            return 1
        print(f"== Spark cluster up ({time.monotonic() - began:.1f} s)\n{cluster.summary()}")
    elif command == "down":
        stopped = cluster.down()
        print(f"== stopped {len(stopped)} Spark processes; {cluster.config.home} kept")
    elif command == "status":
        for name, state, rss in cluster.status():
            print(f"{name:16} {state:20} {rss:8.0f} MiB")
        master = cluster.master_json()
        if master:
            print(f"applications: {len(master['activeapps'])} active, {len(master['completedapps'])} completed")
    else:
        print(f"usage: {argv[0]} up|down|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
