"""Fixtures of the prod tests: ONE isolated production-mode deployment per session (see ``deployment.py``), shared
by every prod test. A test that takes a piece down brings it back (the worker it killed, the MLflow server, the S3
endpoint, PostgreSQL), and the tests run in the order below, so that the ones adding data come last."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from hvbuyer_assets import datagen
from hvbuyer_tests.defs.test_loop_e2e import MODEST_FIRST_MODEL
from hvbuyer_tests.pipeline import SAMPLE_CUSTOMERS, SAMPLE_SEED, write_sample
from hvbuyer_tests.prod.deployment import (
    Deployment,
    Outcome,
    Runs,
    Switch,
    boot,
    free_port,
    isolated_env,
    prod_env,
    require_services,
    teardown,
)
from hvbuyer_tests.prod.pg_cluster import PgCluster
from hvbuyer_tests.prod.scenario import DRIFT_DROP, RAW_SENSOR, Drifted, DropCalendar, read_json
from hvbuyer_tests.serving.redis_server import PrivateRedis, private_redis

# Module order within the session: the loop first (its drops and champions are what the others start from), the
# tests that only re-run what is ingested next, those that ingest new drops last.
ORDER = (
    "test_prod_env",
    "test_prod_loop",
    "test_prod_online_store",
    "test_prod_worker_kill",
    "test_prod_two_runs",
    "test_prod_run_worker_kill",
    "test_prod_mlflow_down",
    "test_prod_pg_restart",
    "test_prod_s3_down",
    "test_prod_drop_runs",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the prod tests after the others, modules in ``ORDER``."""

    def rank(item: pytest.Item) -> int:
        module = Path(str(item.fspath)).stem
        return ORDER.index(module) if module in ORDER else len(ORDER)

    prod = [item for item in items if item.get_closest_marker("prod") is not None]
    rest = [item for item in items if item.get_closest_marker("prod") is None]
    items[:] = rest + sorted(prod, key=rank)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's throwaway PostgreSQL cluster (the deployment's Dagster instance and MLflow store)."""
    require_services(prod_env.load_env(environ={}))
    cluster = PgCluster(free_port())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def s3_switch() -> Iterator[Switch]:
    """The switch between the test deployment's S3 clients and its S3 server (test_prod_s3_down turns it off)."""
    switch = Switch(target_port=free_port())
    try:
        yield switch
    finally:
        switch.off()


@pytest.fixture(scope="session")
def online_redis(tmp_path_factory: pytest.TempPathFactory, pg_cluster: PgCluster) -> Iterator[PrivateRedis]:
    """The deployment's online store: a redis-server of the session's own (append-only file, so a restart keeps
    the scores), which test_prod_online_store stops and starts; the machine's Redis is never stopped."""
    with private_redis(tmp_path_factory.mktemp("online-redis"), persist=True) as server:
        yield server


@pytest.fixture(scope="session")
def prod(
    tmp_path_factory: pytest.TempPathFactory, s3_switch: Switch, pg_cluster: PgCluster, online_redis: PrivateRedis
) -> Iterator[Deployment]:
    """A running isolated deployment (every process healthy), torn down at the end of the session."""
    root = tmp_path_factory.mktemp("prod")
    env = isolated_env(root, s3_switch.target_port, s3_switch.port, pg_cluster, online_redis.url(2))
    deployment = Deployment(env)
    try:
        deployment.up(say=lambda line: print(f"[prod] {line}"))
        yield deployment
    finally:
        teardown(deployment)


@pytest.fixture(scope="session")
def first_build(prod: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The sample drop (the one the embedded ``built`` workspace is made from) uploaded to the raw prefix and built
    by an operator through the webserver: ``full_build`` with a deliberately small forest (the embedded loop
    test's first model), the raw sensor stopped meanwhile; restarted afterwards, it must leave the consumed drop
    alone. The small first champion is what lets the drift retraining win and the API switch."""
    runs = Runs(prod)
    runs.sensor(RAW_SENSOR, running=False)
    drop = tmp_path_factory.mktemp("first-drop")
    write_sample(drop)
    began = time.monotonic()
    boot.upload_drop(prod.env, drop)
    run = runs.wait_run(runs.launch("full_build", {"ops": MODEST_FIRST_MODEL}, partition="default"))
    seconds = time.monotonic() - began
    runs.sensor(RAW_SENSOR, running=True)
    return Outcome(run=run, seconds=seconds)


@pytest.fixture(scope="session")
def drifted(prod: Deployment, first_build: Outcome, tmp_path_factory: pytest.TempPathFactory) -> Drifted:
    """The drifted drop uploaded after the first build: raw sensor -> ingest_drop -> drift verdict -> retraining
    sensor -> retrain (both awaited)."""
    assert first_build.run["status"] == "SUCCESS", first_build.run
    runs = Runs(prod)
    folder = tmp_path_factory.mktemp("drift-drop")
    datagen.write_drop(folder, SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, **DRIFT_DROP)
    began = time.monotonic()
    boot.upload_drop(prod.env, folder, name=DRIFT_DROP["drop"])
    ingest = runs.wait_finished("ingest_drop", tags=[{"key": "hvbuyer/drop", "value": DRIFT_DROP["drop"]}])
    ingested = time.monotonic() - began
    report = read_json(prod, "monitoring/drift_report.json")  # before the retrain (~1 min on) rewrites it
    retrain = runs.wait_finished("retrain") if ingest["status"] == "SUCCESS" else ingest
    return Drifted(Outcome(ingest, ingested), report, Outcome(retrain, time.monotonic() - began))


@pytest.fixture(scope="session")
def later_drops(drifted: Drifted) -> DropCalendar:
    """Drops after the drifted one (2026-11-25), for the tests that ingest new data (two days each)."""
    return DropCalendar(last=pd.Timestamp(DRIFT_DROP["as_of"]))
