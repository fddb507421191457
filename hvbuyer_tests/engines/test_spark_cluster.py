"""The graph on a real standalone Spark cluster against the embedded engine, and where its work ran.

The cluster is the one ``make spark-up`` starts (``scripts/spark_cluster.py``): a master and two workers, each its
own JVM, on free loopback ports, in a temporary folder. Features, labels and the training set, then model and
evaluation, run with ``HVBUYER_SPARK_MASTER=spark://127.0.0.1:<port>`` and must equal the embedded engine's
(``graph``: 1e-9, same rows, same hold-out metrics). Where the executors ran is read, not inferred: the master's
JSON view lists the application, each worker's own JSON view lists the executors it launched for it, and the
driver's REST API says how many tasks each executor completed and which worker serves its logs.

A machine without Java 17, or a cluster that does not start, fails here with the cause; it is never a skip.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from hvbuyer_assets.engines import spark as spark_engine
from hvbuyer_assets.settings import load_settings
from hvbuyer_assets.storage.datasets import SCHEMA_FILE
from hvbuyer_tests.conftest import clean_environment
from hvbuyer_tests.engines import graph
from hvbuyer_tests.pipeline import Workspace, read_frame

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import spark_cluster  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
EXECUTOR_MEMORY = "768m"  # one executor per 1g worker
# A loaded 2-core box (the suite on two workers) takes minutes to start JVMs and seconds to answer a REST call.
START_TIMEOUT_SECONDS = 420.0
DROPS = ("default", "q2")  # graph.clean_two_drops' drops: their customer_state is computed on the cluster too
REST_TIMEOUT_SECONDS = 60.0


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free now (the cluster's ports are consecutive)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            held = []
            for port in range(first, first + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free loopback ports")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[spark_cluster.Cluster]:
    first = free_port_block(6)
    config = spark_cluster.ClusterConfig.from_env(
        {
            "HVBUYER_SPARK_CLUSTER_HOME": str(tmp_path_factory.mktemp("spark-cluster")),
            "HVBUYER_SPARK_MASTER_PORT": str(first),
            "HVBUYER_SPARK_MASTER_UI_PORT": str(first + 1),
            "HVBUYER_SPARK_WORKER_PORT": str(first + 2),  # and first + 3
            "HVBUYER_SPARK_WORKER_UI_PORT": str(first + 4),  # and first + 5
            "HVBUYER_SPARK_WORKER_MEMORY": "1g",
        }
    )
    cluster = spark_cluster.Cluster(config, clean_environment())
    try:
        cluster.up(say=lambda _: None, timeout=START_TIMEOUT_SECONDS)
    except RuntimeError as exc:  # no Java, a port taken, a worker that never registered: the cause, as a failure
        pytest.fail(f"the standalone Spark cluster did not start: {exc}", pytrace=False)
    yield cluster
    cluster.down(say=lambda _: None)


@pytest.fixture(scope="module")
def runs(
    cluster: spark_cluster.Cluster, embedded_graph: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """``graph.GRAPH`` on the cluster and on the embedded engine, from the same two cleaned drops; the run's
    SparkSession (the one this process caches) stays up for the REST checks, and is stopped at the end."""
    env = {
        "HVBUYER_ENGINE": "spark",
        "HVBUYER_SPARK_MASTER": cluster.config.master_url,
        "HVBUYER_SPARK_EXECUTOR_MEMORY": EXECUTOR_MEMORY,
        "HVBUYER_SPARK_SHUFFLE_PARTITIONS": "4",  # 2 per core, as on local[2] (Spark's 200 is for big data)
    }
    spark_engine.stop()  # a session of another master in this process would be reused by getOrCreate
    try:
        base = Workspace(embedded_graph["base"])
        on_cluster = graph.run_graph(base, tmp_path_factory.mktemp("cluster-graph") / "spark", env, DROPS)
        yield {
            "spark": on_cluster,
            "embedded": Workspace(embedded_graph["embedded"]),
            "session": spark_engine.session(spark_engine.SparkOptions.from_settings(load_settings(env))),
        }
    finally:
        spark_engine.stop()


def test_per_drop_state_on_the_cluster_equals_the_embedded_engine(runs: dict[str, Any]) -> None:
    graph.assert_same_state(runs["spark"], runs["embedded"], DROPS)


def test_features_on_the_cluster_equal_the_embedded_engine(runs: dict[str, Any]) -> None:
    graph.assert_same_features(runs["spark"], runs["embedded"])


def test_the_executors_wrote_state_and_features_where_the_io_manager_reads_them(runs: dict[str, Any]) -> None:
    """Per-drop state, the running total, the latest customers and ``customer_features`` are directories of part
    files the executors wrote (the driver collected none of them), at the paths of the embedded engine's single
    files; read back by the IO manager's reader they are the embedded engine's values, bit for bit."""
    spark, embedded = runs["spark"].root, runs["embedded"].root
    stored = [*(f"features/customer_state/{d}.parquet" for d in DROPS), "features/customer_totals.parquet"]
    stored.append("features/latest_customers.parquet")
    for relative in [*stored, "features/customer_features.parquet"]:
        parts = list((spark / relative).glob("part-*.parquet"))
        assert parts and (spark / relative / SCHEMA_FILE).is_file(), relative
        assert (embedded / relative).is_file(), relative
    for relative in stored:
        got, want = (read_frame(w / relative).sort_values("customer_id", ignore_index=True) for w in (spark, embedded))
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    got, want = (read_frame(w / "features" / "customer_features.parquet") for w in (spark, embedded))
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_training_rows_and_labels_on_the_cluster_equal_the_embedded_engine(runs: dict[str, Any]) -> None:
    graph.assert_same_training_rows(runs["spark"], runs["embedded"])


def test_holdout_metrics_on_the_cluster_equal_the_embedded_engine(runs: dict[str, Any]) -> None:
    graph.assert_same_holdout_metrics(runs["spark"], runs["embedded"])


def test_executors_ran_the_work_on_both_workers(cluster: spark_cluster.Cluster, runs: dict[str, Any]) -> None:
    context = runs["session"].sparkContext
    app = context.applicationId
    assert context.master == cluster.config.master_url

    master = cluster.master_json(timeout=REST_TIMEOUT_SECONDS)
    assert master is not None and master["status"] == "ALIVE"
    apps = {a["id"]: a for a in master["activeapps"]}
    assert app in apps and apps[app]["name"] == "hvbuyer", master["activeapps"]

    # Each worker's own view: the executors it launched for the application.
    launched = {}
    for worker in cluster.config.worker_list():
        view = cluster.worker_json(worker, timeout=REST_TIMEOUT_SECONDS)
        launched[worker.name] = {
            str(e["id"]) for e in [*view["executors"], *view["finishedexecutors"]] if e["appid"] == app
        }
    assert all(launched.values()), f"executors of {app} per worker: {launched}"

    # The driver's REST API: what each executor did, and which worker's UI serves its logs.
    response = httpx.get(f"{context.uiWebUrl}/api/v1/applications/{app}/allexecutors", timeout=REST_TIMEOUT_SECONDS)
    response.raise_for_status()
    executors = {e["id"]: e for e in response.json() if e["id"] != "driver"}
    for worker in cluster.config.worker_list():
        mine = [executors[i] for i in launched[worker.name]]
        assert sum(e["completedTasks"] for e in mine) > 0, f"{worker.name} ran no task: {mine}"
        for executor in mine:
            assert f"127.0.0.1:{worker.ui_port}/" in executor["executorLogs"]["stdout"], executor["executorLogs"]
