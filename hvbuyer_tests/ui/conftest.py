"""``scripts/run.sh`` (what ``make run`` starts) on throwaway directories and free loopback ports."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from hvbuyer_tests.serving.service import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CUSTOMERS = 3000  # the `make run` path end to end, on a drop small enough for the suite
READY_TIMEOUT_SECONDS = 600  # sample + build + three services on a busy 2-core machine
READY = re.compile(r"^== ready: Dagster UI (\S+)\s+API (\S+)\s+MLflow UI (\S+)", re.MULTILINE)


@dataclass
class MakeRun:
    """One ``bash scripts/run.sh`` process with its own DAGSTER_HOME, data dir and ports."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.root / "run.log"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    def env(self, **extra: str) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("HVBUYER_", "MLFLOW_", "DAGSTER_"))}
        return {
            **environ,
            "DAGSTER_HOME": str(self.dagster_home),
            "HVBUYER_DATA_DIR": str(self.data_dir),
            "HVBUYER_SAMPLE_CUSTOMERS": str(SAMPLE_CUSTOMERS),
            "HVBUYER_DAGSTER_PORT": str(self.ports["dagster"]),
            "HVBUYER_API_PORT": str(self.ports["api"]),
            "HVBUYER_MLFLOW_PORT": str(self.ports["mlflow"]),
            **extra,
        }

    def start(self, **extra: str) -> MakeRun:
        self.ports = self.ports or {name: free_port() for name in ("dagster", "api", "mlflow")}
        with self.log_path.open("wb") as log:
            # As from a terminal: SIGINT at its default disposition. A test runner started as a background job
            # inherits SIGINT ignored, and a non-interactive bash cannot trap a signal ignored on entry.
            self.proc = subprocess.Popen(
                ["env", "--default-signal=INT", "bash", str(REPO / "scripts" / "run.sh")],
                cwd=REPO,
                env=self.env(**extra),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, str]:
        """Block until run.sh prints its ``== ready:`` line; return the three URLs."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY.search(self.output())
            if match:
                self.urls = dict(zip(("dagster", "api", "mlflow"), match.groups(), strict=True))
                return self.urls
            if self.proc.poll() is not None:
                raise AssertionError(f"run.sh exited ({self.proc.returncode}) before ready:\n{self.output()[-5000:]}")
            time.sleep(1)
        raise AssertionError(f"run.sh not ready within {timeout} s:\n{self.output()[-5000:]}")

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def interrupt(self, timeout: float) -> tuple[float, list[psutil.Process]]:
        """SIGINT to run.sh alone (as Ctrl-C in its terminal would, the services being in their own sessions);
        return how long it took to exit and the processes it had started that are still alive ``timeout`` s later.
        """
        assert self.proc is not None
        children = self.descendants()
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        elapsed = time.monotonic() - started
        _, alive = psutil.wait_procs(children, timeout=max(0.1, timeout - elapsed))
        return elapsed, alive

    def kill(self) -> None:
        """Whatever is left (a failed test): KILL run.sh and every process it started."""
        if self.proc is None:
            return
        for child in self.descendants():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="package")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    """``make run`` on the sample, ready (three URLs answered), shared by the read-only tests of hvbuyer_tests/ui."""
    run = MakeRun(tmp_path_factory.mktemp("make_run")).start()
    try:
        run.wait_ready()
        yield run
    finally:
        if run.proc is not None and run.proc.poll() is None:
            _, alive = run.interrupt(timeout=15)
            for process in alive:
                process.kill()
        run.kill()
