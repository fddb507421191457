"""The ``deadline`` fixture and its waits: a test's waits end before pytest-timeout would cut it off, and a wait
that runs out names what it waited for with the end of the log it was given."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from hvbuyer_tests.deadline import REPORT_SECONDS, Deadline


@pytest.mark.timeout(100)
def test_the_deadline_is_the_tests_timeout_counted_from_its_set_up_less_the_report_time(deadline: Deadline) -> None:
    assert 100 - REPORT_SECONDS - 10 < deadline.left() <= 100 - REPORT_SECONDS


def test_a_wait_that_runs_out_names_what_it_waited_for_and_shows_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text("x" * 5000 + "\nport 1234 already in use\n")
    with pytest.raises(AssertionError, match=re.compile(r"the service to answer.*port 1234 already in use", re.S)):
        Deadline(time.monotonic() + 0.3).wait(lambda: False, "the service to answer", log, poll=0.05)
    assert Deadline(time.monotonic() + 5).wait(lambda: 7, "a value", log) == 7


def test_a_command_still_running_at_the_deadline_is_stopped_and_its_output_shown() -> None:
    cmd = [sys.executable, "-c", "import sys, time; print('started the build', flush=True); time.sleep(60)"]
    with pytest.raises(AssertionError, match=re.compile(r"the build: still running.*started the build", re.S)):
        Deadline(time.monotonic() + 2).run(cmd, "the build")
