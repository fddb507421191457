"""Background processes of a local deployment, one record each: start detached with a log, tell whether the recorded
process still runs, wait for a health check, stop process groups.

Used by ``prod_stack.py`` (production mode) and ``spark_cluster.py`` (the standalone Spark cluster). A record is
``<pids>/<name>.json`` holding the pid and the process's start time, so a reused pid is never taken for the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

STOP_GRACE_SECONDS = 20.0
LOG_TAIL_LINES = 15


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    """True when GET url answers 200."""
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def tree_rss_mib(proc: psutil.Process) -> float:
    """Resident memory of a process and all its descendants, MiB (shared pages counted once per process)."""
    total = 0
    for member in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total / 2**20


def stop_groups(procs: Sequence[psutil.Process], grace: float = STOP_GRACE_SECONDS) -> None:
    """TERM the process group each process leads, all at once; KILL what is left after ``grace`` seconds."""
    group: list[psutil.Process] = []
    for proc in procs:
        try:
            members = [proc, *proc.children(recursive=True)]
            os.killpg(proc.pid, signal.SIGTERM)
        except (psutil.Error, ProcessLookupError):
            continue
        group.extend(members)
    _, alive = psutil.wait_procs(group, timeout=grace)
    for leftover in alive:
        with contextlib.suppress(psutil.Error):
            leftover.kill()
    psutil.wait_procs(alive, timeout=5)


@dataclass(frozen=True)
class ProcessTable:
    """The recorded processes of one deployment: pid records in ``pids``, one log per process in ``logs``."""

    pids: Path
    logs: Path
    cwd: Path

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of a process's log (empty when it has none)."""
        path = self.log(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def running(self, name: str) -> psutil.Process | None:
        """The recorded process of ``name`` if it is still the same process (pid and start time)."""
        path = self.pids / f"{name}.json"
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        try:
            proc = psutil.Process(record["pid"])
            if abs(proc.create_time() - record["started"]) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except psutil.Error:
            pass
        return None

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], port: int | None = None) -> None:
        """Start ``argv`` in its own session, output appended to its log, and record it."""
        if port is not None and port_open(port):
            raise RuntimeError(f"{name}: port {port} is already in use by another process (not this deployment's)")
        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=self.cwd,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        record = {"pid": proc.pid, "started": psutil.Process(proc.pid).create_time(), "argv": list(argv)}
        (self.pids / f"{name}.json").write_text(json.dumps(record))

    def wait(self, name: str, healthy: Callable[[], bool], timeout: float, what: str = "healthy") -> None:
        """Wait until ``healthy()``; fail naming the log (and its last lines) if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if healthy():
                return
            if self.running(name) is None:
                raise RuntimeError(f"{name} exited; see {self.log(name)}:\n{self.log_tail(name)}")
            time.sleep(0.5)
        raise RuntimeError(
            f"{name} not {what} after {timeout:.0f} s; see {self.log(name)}; its last lines:\n{self.log_tail(name)}"
        )

    def stop(self, names: Sequence[str], grace: float = STOP_GRACE_SECONDS) -> list[str]:
        """Stop the recorded processes of ``names`` (all at once) and forget them; the names that were running."""
        procs = {name: proc for name in names if (proc := self.running(name)) is not None}
        stop_groups(list(procs.values()), grace)
        for name in names:
            (self.pids / f"{name}.json").unlink(missing_ok=True)
        return list(procs)
