"""The real ``dagster-daemon`` (its sensor, run-queue and launcher loops) against a real instance in a temporary
DAGSTER_HOME (the embedded default: SQLite, ``dagster.yaml`` of the repository): a drop is requested exactly once.
While its run is queued or going, every tick skips; after it succeeded, and after the daemon is stopped and
started again, ticks still request nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from hvbuyer_tests.conftest import clean_environment
from hvbuyer_tests.deadline import Deadline
from hvbuyer_tests.pipeline import Workspace, write_sample
from hvbuyer_tests.serving.service import REPO

pytestmark = pytest.mark.slow


def _daemon(home: Path, root: Path, log: Path) -> subprocess.Popen:
    env = clean_environment(DAGSTER_HOME=str(home), HVBUYER_DATA_DIR=str(root), HVBUYER_RAW_SENSOR_SECONDS="2")
    cmd = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", "hvbuyer_assets.definitions"]
    with open(log, "a") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _sensor_ticks(instance: dg.DagsterInstance) -> list:
    states = [s for s in instance.all_instigator_state() if s.instigator_name == "raw_drop_sensor"]
    if not states:
        return []
    state = states[0]
    return instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000)


def _sensor_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": "raw_drop_sensor"}))


def test_the_real_daemon_requests_a_drop_exactly_once_across_a_restart(tmp_path: Path, deadline: Deadline) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    workspace = Workspace(tmp_path / "data")
    write_sample(workspace.raw)
    log = tmp_path / "daemon.log"
    instance = dg.DagsterInstance.from_config(str(home))

    daemon = _daemon(home, workspace.root, log)
    try:
        deadline.wait(lambda: len(_sensor_runs(instance)) == 1, "the drop's run to be requested", log)
        (run,) = _sensor_runs(instance)
        assert run.job_name == "full_build"
        # While that run is queued or going, ticks skip (saying so) instead of requesting it again.
        requested_at = len(_sensor_ticks(instance))
        deadline.wait(lambda: instance.get_run_by_id(run.run_id).is_finished, "the run to finish", log)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
        # The run's console (what `make run`'s terminal shows) is at the job's level: its INFO lines, no DEBUG.
        run_lines = [line for line in log.read_text().splitlines() if f" - {run.run_id} - " in line]
        assert any(" - INFO - " in line for line in run_lines), log.read_text()[-3000:]
        debug = [line for line in run_lines if " - DEBUG - " in line]
        assert debug == [], f"{len(debug)} DEBUG lines of the sensor-launched run, e.g. {debug[:3]}"
        during = _sensor_ticks(instance)[: len(_sensor_ticks(instance)) - requested_at]
        assert any("is in progress" in (t.skip_reason or "") for t in during), [t.skip_reason for t in during]
        count = len(_sensor_ticks(instance))
        deadline.wait(lambda: len(_sensor_ticks(instance)) >= count + 2, "two ticks after the run", log)
    finally:
        _stop(daemon)
    assert len(_sensor_runs(instance)) == 1

    daemon = _daemon(home, workspace.root, log)  # a restarted daemon (same instance, cursor kept)
    try:
        count = len(_sensor_ticks(instance))
        deadline.wait(lambda: len(_sensor_ticks(instance)) >= count + 3, "three ticks after the restart", log)
    finally:
        _stop(daemon)
    after = [t for t in _sensor_ticks(instance)[: len(_sensor_ticks(instance)) - count] if t.status.value != "STARTED"]
    assert len(after) >= 2 and all(t.status.value == "SKIPPED" for t in after), [t.status for t in after]
    assert all(t.skip_reason.startswith("no new raw files") for t in after), [t.skip_reason for t in after]
    assert len(_sensor_runs(instance)) == 1  # exactly once
    assert (workspace.root / "scores" / "customer_scores.parquet").exists()  # the one run built the graph
