"""A test's own deadline: the time pytest-timeout leaves it (fixture set-up included) less a margin, so that a wait
which runs out fails with its own message and the tail of the log it names, instead of being cut off by
pytest-timeout with neither (the ``deadline`` fixture of ``hvbuyer_tests/conftest.py``)."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
REPORT_SECONDS = 30.0  # what a test still needs after its last wait: stopping its processes, the failure report
TAIL_CHARS = 3000


def tail(log: Path | None) -> str:
    """The end of a log file, for a failure message ("" when there is none)."""
    if log is None or not log.exists():
        return ""
    return f"\n--- last lines of {log} ---\n{log.read_text(errors='replace')[-TAIL_CHARS:]}"


@dataclass(frozen=True)
class Deadline:
    """When the test's waits must have ended (``time.monotonic()``; ``math.inf``: no timeout)."""

    end: float

    @classmethod
    def after(cls, started: float, timeout: float) -> Deadline:
        """The deadline of a test that started at ``started`` under a ``timeout`` (0: none)."""
        return cls(started + timeout - REPORT_SECONDS if timeout > 0 else math.inf)

    def left(self) -> float:
        return self.end - time.monotonic()

    def wait(self, check: Callable[[], T], what: str, log: Path | None = None, poll: float = 1.0) -> T:
        """``check()``'s first truthy value, looked at every ``poll`` seconds; fails naming ``what`` with the tail
        of ``log`` once the deadline has passed."""
        while True:
            value = check()
            if value:
                return value
            if self.left() <= 0:
                raise AssertionError(f"{what}: not before the test's deadline{tail(log)}")
            time.sleep(max(min(poll, self.left()), 0.0))

    def run(self, cmd: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``subprocess.run(cmd, capture_output=True, text=True, **kwargs)`` ended before the deadline; fails
        naming ``what`` with the end of its output if it is still running then (it is killed)."""
        seconds = None if math.isinf(self.end) else max(self.left(), 0.0)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, **kwargs)
        except subprocess.TimeoutExpired as exc:
            parts = [o.decode(errors="replace") if isinstance(o, bytes) else o or "" for o in (exc.stdout, exc.stderr)]
            output = "".join(parts)
            raise AssertionError(f"{what}: still running at the test's deadline\n{output[-TAIL_CHARS:]}") from None

    def wait_process(self, proc: subprocess.Popen, what: str, log: Path | None = None) -> int:
        """``proc``'s exit code; fails naming ``what`` with the tail of ``log`` if it is still running at the
        deadline (the caller stops it)."""
        try:
            return proc.wait(timeout=None if math.isinf(self.end) else max(self.left(), 0.0))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{what}: still running at the test's deadline{tail(log)}") from None
