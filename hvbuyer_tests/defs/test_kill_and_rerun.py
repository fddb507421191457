"""``kill -9`` of a real ``dagster asset materialize --select '*' --partition default`` at a random point after its
first step started, then a re-run: no stored file is half-written (every asset file reads), and the re-run ends
with the same champion and the same scores as an undisturbed build of the same drop (the session's ``built``
workspace: the sample drop materialized once, in-process)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvbuyer_tests.conftest import clean_environment
from hvbuyer_tests.pipeline import Workspace, read_frame, write_sample
from hvbuyer_tests.serving.service import REPO

pytestmark = pytest.mark.slow

LAYERS = ("interim", "processed", "features", "models", "scores", "monitoring", "quarantine")


def _cli(root: Path, log: Path) -> subprocess.Popen:
    env = clean_environment(HVBUYER_DATA_DIR=str(root), DAGSTER_HOME=str(root.parent / "dagster_home"))
    (root.parent / "dagster_home").mkdir(exist_ok=True)
    # `make materialize`: the drop becomes a partition, then every asset for it
    register = [sys.executable, "-m", "hvbuyer_assets.register_drops"]
    drop = subprocess.run(register, cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout.split()[0]
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "hvbuyer_assets.definitions", "--select", "*"]
    cmd += ["--partition", drop]
    with open(log, "a") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _build(root: Path, log: Path) -> None:
    proc = _cli(root, log)
    assert proc.wait(timeout=1500) == 0, log.read_text()[-3000:]


def _readable_assets(root: Path) -> list[Path]:
    """Every stored asset file (not hidden temporaries); each must read in full."""
    files = [p for layer in LAYERS for p in (root / layer).rglob("*") if p.is_file() and not p.name.startswith(".")]
    for path in files:
        if path.suffix == ".parquet":
            read_frame(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
    return files


def test_kill_9_mid_materialization_then_rerun_matches_an_undisturbed_build(built: Workspace, tmp_path: Path) -> None:
    undisturbed = built
    disturbed = Workspace(tmp_path / "data")
    write_sample(disturbed.raw)

    log = tmp_path / "build.log"
    proc = _cli(disturbed.root, log)
    deadline = time.monotonic() + 600
    while "STEP_START" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None, f"the build ended before any step started: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "no step started within 600 s"
        time.sleep(0.2)
    delay = random.Random(os.getpid()).uniform(0.0, 20.0)
    time.sleep(delay)
    killed = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    started = [line.split(" - ")[4] for line in log.read_text().splitlines() if "STEP_START" in line and " - " in line]
    where = f"killed {delay:.1f} s after the first step, during {started[-1:] or 'start-up'} (killed={killed})"

    _readable_assets(disturbed.root)  # nothing half-written, whatever was interrupted
    _build(disturbed.root, log)
    _readable_assets(disturbed.root)

    assert disturbed.champion_version() == undisturbed.champion_version() == "1", where
    a = read_frame(undisturbed.root / "scores" / "customer_scores.parquet").set_index("customer_id")
    b = read_frame(disturbed.root / "scores" / "customer_scores.parquet").set_index("customer_id")
    assert list(a.index) == list(b.index), where
    assert (a["model_version"] == b["model_version"]).all(), where
    diff = (a["large_purchase_probability"] - b["large_purchase_probability"]).abs().max()
    assert diff <= 1e-12, (where, diff)
    leftovers = [p.name for layer in LAYERS for p in (disturbed.root / layer).rglob(".*.tmp")]
    assert all(name.startswith(".") for name in leftovers)  # an interrupted write leaves only a hidden temporary
