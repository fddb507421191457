"""The retraining policy as a pure function: facts about the loop -> retrain (with why) or skip (with why).

Triggers (any one): the latest drift report's verdict is ``drift``; the champion's realised performance on
matured scores dropped (``core.performance.compare``); its estimated performance on the latest scoring dropped
(``core.estimation.judge``, before labels mature); the champion is older than ``max_model_age_days`` in
DATA time (current as-of T minus the as-of of the data it was trained on).

Guards (all must pass): nothing of the pipeline is queued or running; the drift report describes the current
champion; this exact data (features fingerprint) was never retrained on before; the data's as-of has advanced
at least ``min_new_data_days`` past the champion's training data; the last request is older than
``cooldown_hours`` (wall clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

MAX_REMEMBERED = 50


@dataclass(frozen=True)
class Policy:
    """Policy knobs (see the module docstring)."""

    cooldown_hours: float = 6.0
    max_model_age_days: float = 120.0
    min_new_data_days: float = 7.0

    def __post_init__(self) -> None:
        for name in ("cooldown_hours", "max_model_age_days", "min_new_data_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Facts:
    """What the sensor knows at one tick. Timestamps are UTC; None = unknown / not there yet."""

    now: pd.Timestamp
    champion_version: str | None
    in_flight: tuple[str, ...] = ()
    drift_verdict: str | None = None
    drift_reason: str = ""
    report_version: str | None = None
    data_as_of: pd.Timestamp | None = None
    champion_data_as_of: pd.Timestamp | None = None
    data_fingerprint: str | None = None
    performance_degraded: bool = False
    performance_reason: str = "no matured scores yet"
    estimate_degraded: bool = False
    estimate_reason: str = "no estimate yet"


@dataclass(frozen=True)
class Cursor:
    """The sensor's memory: when it last requested a retrain and on which data fingerprints."""

    last_requested_at: pd.Timestamp | None = None
    retrained: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        """From the sensor cursor (JSON); an empty or unreadable cursor is a fresh start."""
        try:
            data = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        last = data.get("last_requested_at")
        return cls(pd.Timestamp(last) if last else None, tuple(data.get("retrained", ())))

    def after_request(self, now: pd.Timestamp, fingerprint: str) -> Cursor:
        """The cursor once a retrain on ``fingerprint`` has been requested at ``now``."""
        kept = tuple(f for f in self.retrained if f != fingerprint)[-(MAX_REMEMBERED - 1) :]
        return Cursor(now, (*kept, fingerprint))

    def merge(self, other: Cursor) -> Cursor:
        """Both memories in one: the later request time, every fingerprint (this cursor's order first)."""
        times = [t for t in (self.last_requested_at, other.last_requested_at) if t is not None]
        fingerprints = dict.fromkeys([*self.retrained, *other.retrained])
        return Cursor(max(times) if times else None, tuple(fingerprints)[-MAX_REMEMBERED:])

    def dump(self) -> str:
        """As the JSON the sensor stores."""
        last = None if self.last_requested_at is None else self.last_requested_at.isoformat()
        return json.dumps({"last_requested_at": last, "retrained": list(self.retrained)})


@dataclass(frozen=True)
class Decision:
    """Retrain or not, why, and the run key (derived from the data, so identical evidence requests nothing)."""

    retrain: bool
    reason: str
    triggers: tuple[str, ...] = ()
    run_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def _days(delta: pd.Timedelta) -> float:
    return delta / pd.Timedelta(days=1)


def model_age_days(facts: Facts) -> float | None:
    """Champion age in data time: current as-of minus the as-of of its training data (None if unknown)."""
    if facts.data_as_of is None or facts.champion_data_as_of is None:
        return None
    return _days(facts.data_as_of - facts.champion_data_as_of)


def decide(facts: Facts, cursor: Cursor, policy: Policy = Policy()) -> Decision:
    """Apply the policy (module docstring) to one tick's facts."""
    if facts.champion_version is None:
        return Decision(False, "no champion yet: the first build trains one (raw drop sensor -> full_build)")
    if facts.in_flight:
        return Decision(False, f"pipeline run(s) in flight ({', '.join(facts.in_flight)}); waiting for them")
    if facts.drift_verdict is None or facts.data_fingerprint is None:
        return Decision(False, "no drift report yet: waiting for a monitoring run")
    if facts.report_version != facts.champion_version:
        return Decision(
            False,
            f"the latest drift report compares with v{facts.report_version} but the champion is "
            f"v{facts.champion_version}: waiting for the next monitoring run",
        )
    age = model_age_days(facts)
    triggers = []
    if facts.drift_verdict == "drift":
        triggers.append(f"data drift ({facts.drift_reason})")
    if facts.performance_degraded:
        triggers.append(f"performance drop ({facts.performance_reason})")
    if facts.estimate_degraded:
        triggers.append(f"estimated performance drop ({facts.estimate_reason})")
    if age is not None and age > policy.max_model_age_days:
        triggers.append(f"model age {age:.0f} d of data > {policy.max_model_age_days:g} d")
    if not triggers:
        age_text = "unknown" if age is None else f"{age:.0f} d"
        return Decision(
            False,
            f"no trigger: drift verdict {facts.drift_verdict} ({facts.drift_reason}); performance: "
            f"{facts.performance_reason}; model age {age_text} of data <= {policy.max_model_age_days:g} d; "
            f"estimate: {facts.estimate_reason}",
        )
    summary = "; ".join(triggers)
    if facts.data_fingerprint in cursor.retrained:
        return Decision(
            False,
            f"{summary} - but a retrain on this data (fingerprint {facts.data_fingerprint}) was already "
            "requested: waiting for new data",
            tuple(triggers),
        )
    if age is None or age < policy.min_new_data_days:
        age_text = "unknown" if age is None else f"{age:.1f} d"
        return Decision(
            False,
            f"{summary} - but not enough new data: as-of advanced {age_text} since the champion's training "
            f"data (< {policy.min_new_data_days:g} d)",
            tuple(triggers),
        )
    if cursor.last_requested_at is not None:
        since = facts.now - cursor.last_requested_at
        if since < pd.Timedelta(hours=policy.cooldown_hours):
            return Decision(
                False,
                f"{summary} - but in cooldown: last retrain requested {_days(since) * 24:.1f} h ago "
                f"(< {policy.cooldown_hours:g} h)",
                tuple(triggers),
            )
    tags = {
        "hvbuyer/trigger": summary[:250],
        "hvbuyer/data_fingerprint": facts.data_fingerprint,
        "hvbuyer/champion_version": facts.champion_version,
    }
    if facts.data_as_of is not None:
        tags["hvbuyer/data_as_of"] = facts.data_as_of.isoformat()
    return Decision(True, f"retrain: {summary}", tuple(triggers), f"retrain-{facts.data_fingerprint}", tags)


def facts_from(**values: Any) -> Facts:
    """Facts with timestamps normalised to UTC (strings accepted), for callers reading metadata."""
    for key in ("now", "data_as_of", "champion_data_as_of"):
        if values.get(key) is not None:
            ts = pd.Timestamp(values[key])
            values[key] = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return Facts(**values)
