"""``scripts/spark_cluster.py`` without starting a JVM: its configuration, the commands and environment of the master
and worker processes, the Java check, the reading of the master's JSON view, and the refusals that name a cause."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import spark_cluster as sc  # noqa: E402

REPO = SCRIPTS.parent


def test_defaults_are_a_master_and_two_workers_on_fixed_loopback_ports() -> None:
    config = sc.ClusterConfig.from_env({})
    assert config.home == REPO / ".spark"
    assert (config.master_url, config.master_ui_url) == ("spark://127.0.0.1:7077", "http://127.0.0.1:8180")
    assert config.ports() == {
        "spark-master": (7077, 8180),
        "spark-worker-1": (7078, 8181),
        "spark-worker-2": (7079, 8182),
    }
    assert [w.work_dir for w in config.worker_list()] == [
        REPO / ".spark" / "work" / "1",
        REPO / ".spark" / "work" / "2",
    ]
    custom = sc.ClusterConfig.from_env(
        {"HVBUYER_SPARK_WORKERS": "3", "HVBUYER_SPARK_WORKER_PORT": "9001", "HVBUYER_SPARK_CLUSTER_HOME": "/tmp/x"}
    )
    assert [w.port for w in custom.worker_list()] == [9001, 9002, 9003] and custom.home == Path("/tmp/x")
    assert sc.ClusterConfig.from_env({}, home_default=".prod/spark").home == REPO / ".prod" / "spark"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        (
            "HVBUYER_SPARK_MASTER_PORT",
            "seven",
            "HVBUYER_SPARK_MASTER_PORT='seven': expected an integer from 1 to 65535",
        ),
        ("HVBUYER_SPARK_WORKERS", "0", "HVBUYER_SPARK_WORKERS='0': expected an integer from 1 to 64"),
        ("HVBUYER_SPARK_WORKER_MEMORY", "2 GB", "HVBUYER_SPARK_WORKER_MEMORY='2 GB': expected a JVM memory size"),
        ("HVBUYER_SPARK_WORKER_UI_PORT", "7077", "distinct .*: spark-master RPC and spark-worker-1 UI on 7077"),
        ("HVBUYER_SPARK_WORKER_PORT", "65535", "at most 65535: spark-worker-2 RPC on 65536"),
    ],
)
def test_a_bad_cluster_setting_is_refused_naming_it(name: str, value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sc.ClusterConfig.from_env({name: value})


def test_each_process_is_its_own_spark_class_jvm_on_loopback_with_fixed_ports() -> None:
    config = sc.ClusterConfig.from_env({})
    script = Path("/p/bin/spark-class")
    master = sc.master_argv(config, script)
    assert master[:2] == [str(script), "org.apache.spark.deploy.master.Master"]
    assert master[2:] == ["--host", "127.0.0.1", "--port", "7077", "--webui-port", "8180"]
    second = config.worker_list()[1]
    worker = sc.worker_argv(config, second, script)
    assert worker[:3] == [str(script), "org.apache.spark.deploy.worker.Worker", "spark://127.0.0.1:7077"]
    assert worker[3:] == [
        *("--host", "127.0.0.1", "--port", "7079", "--webui-port", "8182", "--cores", "1", "--memory", "2g"),
        *("--work-dir", str(second.work_dir)),
    ]
    env = sc.daemon_env(config, Path("/p"), {"PATH": "/usr/bin", "SPARK_CONF_DIR": "/etc/spark"})
    assert env["PATH"] == "/usr/bin" and env["SPARK_HOME"] == "/p" and env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["SPARK_CONF_DIR"] == str(config.home / "conf")  # not the machine's spark-env.sh
    assert (
        "-Dspark.port.maxRetries=0" in env["SPARK_MASTER_OPTS"]
        and "-Dspark.port.maxRetries=0" in env["SPARK_WORKER_OPTS"]
    )
    assert "-Dspark.master.rest.enabled=false" in env["SPARK_MASTER_OPTS"]


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "21-ea" 2023-09-19', 21),
        ("bash: java: command not found", None),
    ],
)
def test_the_java_major_version_is_read_from_java_version(output: str, major: int | None) -> None:
    assert sc.java_major(output) == major


def test_no_java_is_refused_naming_what_was_looked_at(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"needs Java 17\+: JAVA_HOME=/nowhere"):
        sc.check_java({"JAVA_HOME": "/nowhere"})
    with pytest.raises(RuntimeError, match=r"needs Java 17\+: no `java` on PATH and JAVA_HOME unset"):
        sc.check_java({"PATH": str(tmp_path)})
    old = tmp_path / "jdk8" / "bin"
    old.mkdir(parents=True)
    (old / "java").write_text("#!/bin/sh\necho 'java version \"1.8.0_292\"' >&2\n")
    (old / "java").chmod(0o755)
    with pytest.raises(RuntimeError, match=r"needs Java 17\+, .*jdk8/bin/java is 'java version \"1.8.0_292\"'"):
        sc.check_java({"JAVA_HOME": str(tmp_path / "jdk8")})


def _worker(port: int, state: str = "ALIVE", host: str = "127.0.0.1") -> dict[str, object]:
    return {"id": f"worker-1-{host}-{port}", "host": host, "port": port, "state": state}


def test_the_cluster_is_ready_when_the_master_lists_each_of_its_workers_alive() -> None:
    config = sc.ClusterConfig.from_env({})
    both = ["spark-worker-1", "spark-worker-2"]
    assert sc.registration({}, config) == both  # master unreachable
    assert sc.registration({"status": "STANDBY", "workers": [_worker(7078), _worker(7079)]}, config) == both
    assert sc.registration({"status": "ALIVE", "workers": [_worker(7079)]}, config) == ["spark-worker-1"]
    dead = {"status": "ALIVE", "workers": [_worker(7078, "DEAD"), _worker(7079), _worker(7078, host="10.0.0.9")]}
    assert sc.registration(dead, config) == ["spark-worker-1"]  # a dead record, or another host's worker, is not it
    assert sc.registration({"status": "ALIVE", "workers": [_worker(7079), _worker(7078)]}, config) == []


def test_a_taken_port_stops_up_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = sc.ClusterConfig.from_env(
            {"HVBUYER_SPARK_CLUSTER_HOME": str(tmp_path), "HVBUYER_SPARK_WORKER_UI_PORT": str(port)}
        )
        cluster = sc.Cluster(config)
        with pytest.raises(RuntimeError, match=rf"spark-worker-1 UI port {port} already in use by another process"):
            cluster.up(say=lambda _: None)
    assert not (tmp_path / "pids").exists() or not list((tmp_path / "pids").iterdir())  # nothing was started
