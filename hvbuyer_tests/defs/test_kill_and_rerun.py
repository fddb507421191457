"""``kill -9`` of a real ``dagster asset materialize`` (``make materialize``) right after the STEP_START of each of
``trained_model``, ``registered_model``, ``champion_model`` and ``customer_scores``, then re-runs.

Each kill is deterministic: the test instance's ``dagster.yaml`` stops the run's process at that event
(``hvbuyer_tests/freeze.py``) and the test sends SIGKILL to its process group; the instance's event log then shows
that the step started and never finished. The run after each kill re-executes the killed step and everything
downstream of it (what "re-execute from failure" does) and is itself killed at the next step; the last one
finishes (a full re-run on the same data: ``test_pipeline.py``). At every point no temporary file of an atomic
write is left and every stored file reads in full (parquet, JSON, joblib, the ONNX graphs, the champion through
the registry); in the end the champion and the scores equal those of an undisturbed build of the same drop (the
session's ``built``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import onnx
import psutil
import pytest
from upath import UPath

from hvbuyer_assets import registry
from hvbuyer_assets.storage.files import TEMPORARY_NAME, read_stored
from hvbuyer_tests.conftest import clean_environment
from hvbuyer_tests.deadline import Deadline, tail
from hvbuyer_tests.freeze import instance_yaml
from hvbuyer_tests.pipeline import Workspace, read_frame, write_sample
from hvbuyer_tests.serving.service import REPO

pytestmark = pytest.mark.slow

KILL_AT = ("trained_model", "registered_model", "champion_model", "customer_scores")
ASSET_FILES = (".parquet", ".json", ".joblib")
FINISHED = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_OUTPUT", "HANDLED_OUTPUT", "ASSET_MATERIALIZATION"}


class Materialize:
    """``make materialize`` on a throwaway data dir with its own Dagster instance (SQLite, ``home``)."""

    def __init__(self, root: Path, home: Path, log: Path, deadline: Deadline) -> None:
        self.root, self.home, self.log, self.deadline = root, home, log, deadline
        home.mkdir(exist_ok=True)
        self.env = clean_environment(HVBUYER_DATA_DIR=str(root), DAGSTER_HOME=str(home))
        register = [sys.executable, "-m", "hvbuyer_assets.register_drops"]
        done = subprocess.run(register, cwd=REPO, env=self.env, check=True, capture_output=True, text=True)
        self.drop = done.stdout.split()[0]

    def start(self, selection: str, freeze_at: str | None) -> subprocess.Popen:
        """``dagster asset materialize --select <selection>`` (for the drop when the selection holds its
        partitioned assets), stopping at the STEP_START of ``freeze_at``."""
        yaml = instance_yaml(freeze_at) if freeze_at else "telemetry:\n  enabled: false\n"
        (self.home / "dagster.yaml").write_text(yaml)
        cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "hvbuyer_assets.definitions"]
        cmd += ["--select", selection, *(["--partition", self.drop] if selection == "*" else [])]
        with open(self.log, "a") as out:
            out.write(f"\n=== {' '.join(cmd[2:])} (stopping at {freeze_at})\n")
            out.flush()
            return subprocess.Popen(
                cmd, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill_at(self, selection: str, step: str) -> None:
        """Run ``selection``, SIGKILL it once it stopped at ``step``'s STEP_START, and check the kill landed: the
        step started and did not finish, and stored nothing."""
        proc = self.start(selection, step)

        def stopped() -> bool:
            assert proc.poll() is None, f"the run ended (rc={proc.returncode}) before {step} started{tail(self.log)}"
            return psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED

        try:
            self.deadline.wait(stopped, f"the run stopped at the start of {step}", self.log, poll=0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        events = self.step_events(step)
        assert "STEP_START" in events and not events & FINISHED, (step, events, tail(self.log))
        assert not [p for p in self.root.rglob(f"{step}.*") if p.is_file()], f"{step} stored its output"

    def finish(self, selection: str) -> None:
        proc = self.start(selection, None)
        try:
            rc = self.deadline.wait_process(proc, f"materialize {selection}", self.log)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert rc == 0, f"materialize {selection} failed{tail(self.log)}"

    def step_events(self, step: str) -> set[str]:
        """The event types the newest run recorded for ``step``, read from the instance's event log."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            (run,) = instance.get_runs(limit=1)
            assert run.status == dg.DagsterRunStatus.STARTED, run.status  # killed: nothing marked it ended
            events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event is not None]
        return {e.event_type_value for e in events if e.step_key == step}


def check_stored(workspace: Workspace) -> list[Path]:
    """No temporary file of an atomic write anywhere under the data dir, and every stored file reads in full: the
    assets (parquet, JSON, joblib) and the ONNX graphs of the registry's artifacts; the stored files."""
    files = [p for p in workspace.root.rglob("*") if p.is_file()]
    leftovers = [p for p in files if TEMPORARY_NAME.fullmatch(p.name)]
    assert not leftovers, f"temporary files left by interrupted writes: {leftovers}"
    stored = [p for p in files if p.suffix in ASSET_FILES and "raw" not in p.relative_to(workspace.root).parts]
    for path in stored:
        read_stored(UPath(str(path)))
    for path in (p for p in files if p.suffix == ".onnx"):
        onnx.checker.check_model(onnx.load(str(path)))
    return stored


def test_kill_9_at_each_late_step_then_rerun_matches_an_undisturbed_build(
    built: Workspace, tmp_path: Path, deadline: Deadline
) -> None:
    undisturbed = built
    disturbed = Workspace(tmp_path / "data")
    write_sample(disturbed.raw)
    runs = Materialize(disturbed.root, tmp_path / "dagster_home", tmp_path / "build.log", deadline)

    selection = "*"
    for step in KILL_AT:
        runs.kill_at(selection, step)
        check_stored(disturbed)
        # the killed step and everything downstream of it, plus the features: the in-process executor runs
        # customer_totals / latest_customers -> customer_features beside the model steps, so a kill may land before
        selection = f"{step}*,customer_totals,latest_customers,customer_features"
    runs.finish(selection)
    stored = check_stored(disturbed)
    assert {p.suffix for p in stored} == set(ASSET_FILES), stored
    assert [p for p in disturbed.root.rglob("*.onnx")], "no ONNX graph was stored"

    champion = disturbed.champion_version()
    assert champion == undisturbed.champion_version() == "1"
    assert registry.load_version(disturbed.settings.mlflow_tracking_uri, champion) is not None
    assert json.loads((disturbed.root / "models" / "champion_model.json").read_text())["champion_version"] == "1"
    a = read_frame(undisturbed.root / "scores" / "customer_scores.parquet").set_index("customer_id")
    b = read_frame(disturbed.root / "scores" / "customer_scores.parquet").set_index("customer_id")
    assert list(a.index) == list(b.index)
    assert (a["model_version"] == b["model_version"]).all()
    diff = (a["large_purchase_probability"] - b["large_purchase_probability"]).abs().max()
    assert diff <= 1e-12, diff
