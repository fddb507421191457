"""Stop a real run at a chosen event of one of its steps, so that a test can ``kill -9`` it exactly there.

:func:`instance_yaml` is a test instance's ``dagster.yaml`` whose ``python_logs`` section attaches
:class:`FreezeAt` to every run's log manager. Dagster hands an event to its instance's event log before the
handlers of ``dagster.yaml`` (``DagsterInstance.get_handlers``), so when the run's process group stops, the event is
stored and nothing after it has happened. The test sees the stopped process and sends SIGKILL: the kill lands at
the event whatever the box's load, not at a random time that may fall after the run ended.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import yaml


class FreezeAt(logging.Handler):
    """Send SIGSTOP to this process's group when the run logs event ``event`` (e.g. ``STEP_START``) of ``step``."""

    def __init__(self, step: str, event: str, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.step, self.event = step, event

    def emit(self, record: logging.LogRecord) -> None:
        event: Any = getattr(record, "dagster_event", None)
        if event is not None and event.step_key == self.step and event.event_type_value == self.event:
            os.killpg(os.getpgid(0), signal.SIGSTOP)


def instance_yaml(step: str, event: str = "STEP_START") -> str:
    """A ``dagster.yaml`` (default SQLite storage) whose runs stop at ``event`` of ``step``."""
    handler = {"class": f"{__name__}.{FreezeAt.__name__}", "step": step, "event": event}
    config = {"python_logs": {"dagster_handler_config": {"handlers": {"freeze": handler}}}}
    return yaml.safe_dump({**config, "telemetry": {"enabled": False}})
