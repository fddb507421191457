"""raw_drop_sensor on a local raw folder, with a real Dagster instance: ticks evaluated through Dagster's API,
requested runs executed in that instance with the tags the daemon would add (run key, sensor name)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import httpx
import mlflow
import pytest

from hvbuyer_assets import datagen
from hvbuyer_assets.definitions import ALL_ASSETS, build_resources
from hvbuyer_assets.defs.jobs import JOBS
from hvbuyer_assets.defs.sensors.raw import DROP_TAG, FILES_TAG, add_complete_drops, raw_drop_sensor, split_s3_uri
from hvbuyer_assets.settings import Settings, load_settings
from hvbuyer_tests.conftest import clean_environment
from hvbuyer_tests.deadline import Deadline
from hvbuyer_tests.pipeline import SAMPLE_CUSTOMERS, SAMPLE_SEED, Workspace, write_sample
from hvbuyer_tests.serving.service import free_port

pytestmark = pytest.mark.slow  # builds the graph itself (see the slow marker in pyproject.toml)

LATER_AS_OF = "2026-09-28"  # a drop one quarter after the sample's 2026-06-30 (and before today)


@dataclass
class SensorHarness:
    """One Dagster instance, the project's assets/jobs/sensor with resources for ``settings``, and a cursor
    carried from tick to tick as the daemon does."""

    settings: Settings
    instance: dg.DagsterInstance
    cursor: str | None = None
    defs: dg.Definitions = field(init=False)

    def __post_init__(self) -> None:
        self.defs = dg.Definitions(
            assets=ALL_ASSETS,
            jobs=JOBS,
            sensors=[raw_drop_sensor],
            resources=build_resources(self.settings),
            executor=dg.in_process_executor,
        )

    def tick(self, instance: dg.DagsterInstance | None = None) -> dg.SensorExecutionData:
        """Evaluate one tick and keep its cursor."""
        resources = build_resources(self.settings)
        context = dg.build_sensor_context(
            instance=instance or self.instance,
            cursor=self.cursor,
            sensor_name=raw_drop_sensor.name,
            resources={k: resources[k] for k in ("raw_storage", "s3", "model_registry")},
            definitions=self.defs,
            instance_ref=(
                instance or self.instance
            ).get_ref(),  # the daemon's context has one: partitions of run requests resolve
        )
        result = raw_drop_sensor.evaluate_tick(context)
        if result.cursor is not None:
            self.cursor = result.cursor
        for add in result.dynamic_partitions_requests or []:  # what the daemon does with the tick's result
            (instance or self.instance).add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
        return result

    def request(self) -> dg.RunRequest:
        """Tick once; the tick must request exactly one run."""
        result = self.tick()
        assert result.run_requests and len(result.run_requests) == 1, result.skip_message
        return result.run_requests[0]

    def skip(self, instance: dg.DagsterInstance | None = None) -> str:
        """Tick once; the tick must request nothing, and says why."""
        result = self.tick(instance)
        assert not result.run_requests, [r.run_key for r in result.run_requests or []]
        assert result.skip_message
        return result.skip_message

    @staticmethod
    def daemon_tags(request: dg.RunRequest) -> dict[str, str]:
        """The tags the sensor daemon puts on a requested run."""
        return {
            **request.tags,
            "dagster/run_key": request.run_key,
            "dagster/sensor_name": raw_drop_sensor.name,
            "dagster/partition": request.partition_key,
        }

    def queue(self, request: dg.RunRequest) -> dg.DagsterRun:
        """What the daemon does right after a tick: the requested run exists in the instance, not yet started."""
        return self.instance.create_run_for_job(
            job_def=self.defs.resolve_job_def(request.job_name),
            run_config=request.run_config,
            tags=self.daemon_tags(request),
            status=dg.DagsterRunStatus.NOT_STARTED,
        )

    def execute(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """Run a request in the instance as the daemon would (its run key and sensor tags)."""
        try:
            return self.defs.resolve_job_def(request.job_name).execute_in_process(
                instance=self.instance,
                run_config=request.run_config,
                tags=self.daemon_tags(request),
                raise_on_error=False,
            )
        finally:
            mlflow.end_run()

    def materialize_from_cli(self, selection: str) -> dg.ExecuteInProcessResult:
        """``make materialize`` / ``make run``'s first build: the complete drops become partitions
        (``add_complete_drops``), then ``dagster asset materialize --select <selection> --partition <first>``: no
        sensor, no run key, no file list."""
        resources = build_resources(self.settings)
        first = add_complete_drops(self.instance, resources["raw_storage"])[0]
        try:
            return dg.materialize(
                ALL_ASSETS,
                selection=selection,
                instance=self.instance,
                resources=resources,
                partition_key=first,
                raise_on_error=False,
            )
        finally:
            mlflow.end_run()


def later_drop(staging: Path, name: str) -> tuple[Path, Path]:
    """A later quarter of the sample's customers (datagen ``--drop NAME``), written outside the raw folder."""
    return datagen.write_drop(staging, SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, as_of=LATER_AS_OF, days=90, drop=name)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_cli_build_is_not_repeated_and_a_two_part_drop_is_requested_once(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    workspace = Workspace(tmp_path / "data")
    write_sample(workspace.raw)
    harness = SensorHarness(workspace.settings, instance)
    # `make run` materializes '*' from the CLI before the daemon starts; the raw group is what matters here
    # (the S3 test runs the whole graph).
    assert harness.materialize_from_cli("group:raw").success

    # The first tick after that build sees only files it read: nothing to do, now or after a restart.
    assert harness.skip() == "no new raw files (2 files, all read by a successful run)"
    assert harness.skip().startswith("no new raw files")
    restarted = dg.DagsterInstance.from_ref(instance.get_ref())
    harness.cursor = None
    assert harness.skip(restarted).startswith("no new raw files")

    # A drop in two parts: customers first, then a transactions file that is still being written.
    customers, transactions = later_drop(tmp_path / "staging", "q1")
    shutil.copy(customers, workspace.raw / customers.name)
    assert "drop q1: waiting for transactions_q1.json(l) (or a _SUCCESS_q1 marker)" in harness.skip()
    assert "waiting for transactions_q1.json(l)" in harness.skip()
    content = transactions.read_bytes()
    (workspace.raw / transactions.name).write_bytes(content[: len(content) // 2])
    assert "transactions_q1.json to settle" in harness.skip()
    (workspace.raw / transactions.name).write_bytes(content)
    assert "transactions_q1.json to settle" in harness.skip()

    request = harness.request()
    assert request.job_name == "full_build"  # no champion yet (the S3 test sees ingest_drop once there is one)
    assert request.tags[DROP_TAG] == "q1" and request.partition_key == "q1"
    assert request.tags[FILES_TAG] == "customers_q1.csv,transactions_q1.json"
    # the run reads the new drop only: the sample drop is a partition already cleaned
    assert request.run_config["ops"]["raw_transactions"]["config"]["files"] == ["transactions_q1.json"]
    assert harness.instance.get_dynamic_partitions("drops") == ["default", "q1"]
    # Exactly once: the daemon has queued the run; the next tick and a restarted daemon (with its cursor or
    # without) request nothing. (Executing such a run and ticking after it: test_raw_sensor_s3.py.)
    run = harness.queue(request)
    assert f"drop q1: run {run.run_id} ({request.run_key}) is in progress" in harness.skip()
    assert "is in progress" in harness.skip(dg.DagsterInstance.from_ref(instance.get_ref()))
    harness.cursor = None  # even a lost cursor only costs one settling tick
    assert "to settle" in harness.skip()
    assert "is in progress" in harness.skip()


def test_a_failed_drop_is_retried_then_waits_and_is_not_lost(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    workspace = Workspace(tmp_path / "data")
    write_sample(workspace.raw)
    broken = workspace.raw / "customers_bad.csv"
    broken.write_bytes(b"customer_id,age,region,signup_date\nC9000001,40,East,2024-01-01\n")  # no loyalty_points
    harness = SensorHarness(workspace.settings, instance)
    reason = harness.skip()
    assert "customers.csv, transactions.json to settle" in reason
    assert "drop bad: waiting for transactions_bad.json(l) (or a _SUCCESS_bad marker)" in reason
    (workspace.raw / "_SUCCESS_bad").write_bytes(b"")  # customers-only drop: the marker completes it

    # Drops go in arrival order: the sample (arrived the day after its as-of) first, in its own partition.
    first = harness.request()
    assert first.partition_key == "default" and first.run_config["ops"]["raw_customers"]["config"]["files"] == [
        "customers.csv"
    ]
    assert harness.execute(first).success
    keys = []
    for attempt in range(3):  # the first run and two retries, each with its own run key
        request = harness.request()
        assert request.job_name == "ingest_drop"  # the sample's build made a champion
        assert request.tags["hvbuyer/attempt"] == str(attempt)
        assert request.run_config["ops"]["raw_customers"]["config"]["files"] == ["customers_bad.csv"]
        assert request.partition_key == "bad"
        keys.append(request.run_key)
        result = harness.execute(request)
        assert not result.success  # the blocking customers_contract check stops the run
    assert len(set(keys)) == 3 and keys[1] == keys[0] + "-retry1"
    reason = harness.skip()
    assert "3 runs failed" in reason and "waiting for a new version" in reason
    assert reason.startswith("drop bad: 3 runs failed")  # the sample drop, its own partition, stays ingested

    # The files were never consumed: a corrected file (new version) is picked up at once (marker), one run.
    broken.write_bytes(b"customer_id,age,region,signup_date,loyalty_points\nC9000001,40,East,2024-01-01,5\n")
    request = harness.request()
    assert request.run_key not in keys and request.tags["hvbuyer/attempt"] == "0"
    assert request.run_config["ops"]["raw_customers"]["config"]["files"] == ["customers_bad.csv"]


def test_sensor_settings_and_s3_uris() -> None:
    assert raw_drop_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert load_settings({}).raw_sensor_seconds == 15
    assert load_settings({"HVBUYER_RAW_SENSOR_SECONDS": "30"}).raw_sensor_seconds == 30
    with pytest.raises(ValueError, match="HVBUYER_RAW_SENSOR_SECONDS"):
        load_settings({"HVBUYER_RAW_SENSOR_SECONDS": "soon"})
    assert split_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert split_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="names no bucket"):
        split_s3_uri("s3:///raw")


def _mlflow_answers(url: str, server: subprocess.Popen, log: Path) -> bool:
    assert server.poll() is None, f"the MLflow server exited: {log.read_text()[-3000:]}"
    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_while_the_registry_is_unreachable_the_sensor_requests_nothing_then_decides_as_usual(
    workspace_copy: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deadline: Deadline
) -> None:
    """The built workspace (champion v1, champion_model materialized in its instance) reached through an MLflow
    server that is down: a new drop's ticks fail naming the server and request nothing (an outage is not "no
    champion", which would request a full_build); once the server answers, the next tick requests ingest_drop."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # refused at once, not after minutes of retries
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(**{**workspace_copy.settings.model_dump(), "mlflow_tracking_uri": url})
    instance = workspace_copy.instance()
    try:
        harness = SensorHarness(settings, instance)
        for path in later_drop(tmp_path / "staging", "q1"):
            shutil.copy(path, workspace_copy.raw / path.name)
        assert "to settle" in harness.skip()
        for _ in range(2):  # the drop is ready: every tick asks the registry, fails, and requests nothing
            with pytest.raises(Exception, match="127.0.0.1") as failed:
                harness.tick()
            assert url in str(failed.value), failed.value
        assert instance.get_dynamic_partitions("drops") == ["default"]  # a failed tick adds no partition either

        log = tmp_path / "mlflow.log"
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1]]
        cmd += ["--backend-store-uri", workspace_copy.settings.mlflow_tracking_uri, "--workers", "1"]
        with open(log, "w") as out:
            server = subprocess.Popen(
                cmd, env=clean_environment(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            deadline.wait(lambda: _mlflow_answers(url, server, log), "the MLflow server to answer", log)
            request = harness.request()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    finally:
        instance.dispose()
    assert request.job_name == "ingest_drop" and request.partition_key == "q1"
