"""Which raw drops are new and complete, and what to request for them: the pure logic of ``raw_drop_sensor``.

A *drop* named NAME is one file of every raw source kind (``core.sources``): ``customers_NAME.csv`` and
``transactions_NAME.json(l)`` (datagen ``--drop NAME``); ``customers.csv`` + ``transactions.json`` is the unnamed
first drop. A file's *version* is ``size-mtime_ns`` for a local file and ``etag-LastModified`` (epoch seconds)
for an S3 object.

Arrival: a drop "arrives" when its writer says so, else when storage received it. A local file arrives at its
modification time (which ``touch -d``, ``cp -p`` or ``rsync -t`` set); an S3 object, whose ``LastModified`` no
writer can set, at its user metadata ``arrived-at`` (:data:`ARRIVAL_KEY`, ISO 8601, e.g. a backfill of old
exports) and else at ``LastModified``. Rows stamped after their file arrived are set aside by cleaning, and
"latest wins" orders records by arrival.

Completion rule: a drop is complete when

- a marker ``_SUCCESS_NAME`` (``_SUCCESS`` for the unnamed drop) exists: the writer says it is done, so the
  data files present are taken as they are (a transactions-only drop is allowed); or
- every kind is present and every file of the drop has the same version as at the previous tick (or the
  version a successful run already read): a file that is still being written changes between ticks.

Exactly once: the run reads every file of every complete drop; its run key is a hash of those sorted
``(name, version)`` pairs, so the same files give the same key (Dagster launches a run key once, also across
daemon restarts). A failed run is retried with a new key (``<hash>-retry<n>``) up to ``max_retries`` times;
then the files wait for a new version or a new drop (whose run reads them again).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hvbuyer_assets.core.sources import SOURCES

MARKER = "marker"
MARKER_PATTERNS = ("_SUCCESS", "_SUCCESS_*")
KIND_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    *((source.kind, source.patterns) for source in SOURCES),
    (MARKER, MARKER_PATTERNS),
)
ALL_PATTERNS = tuple(pattern for _, patterns in KIND_PATTERNS for pattern in patterns)
MAX_RETRIES = 2
UNNAMED = "default"  # how the unnamed drop (customers.csv + transactions.json) is shown
ARRIVAL_KEY = "arrived-at"  # S3 user metadata (header x-amz-meta-arrived-at): when the object's drop arrived

# Run states as the sensor reports them from the Dagster instance.
IN_PROGRESS, SUCCEEDED, FAILED = "in_progress", "succeeded", "failed"


def local_version(size: int, mtime_ns: int) -> str:
    """Version of a local file: it changes whenever the file grows or is rewritten."""
    return f"{int(size)}-{int(mtime_ns)}"


def s3_version(etag: str, last_modified: datetime) -> str:
    """Version of an S3 object: its ETag (content) and LastModified (a re-upload of the same bytes)."""
    return f"{etag.strip(chr(34))}-{int(last_modified.timestamp())}"


def declared_arrival(value: str) -> datetime:
    """The arrival an S3 object declares in its ``arrived-at`` metadata: ISO 8601 (a date, or a date and time;
    UTC when no offset is given), as an aware UTC datetime. Raises ValueError saying what is wrong."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"metadata {ARRIVAL_KEY}={value!r} is not an ISO 8601 timestamp (e.g. 2026-07-01T00:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def file_kind(name: str) -> str | None:
    """A source kind (``customers``, ``transactions``), ``marker`` or None (hidden files, e.g. atomic temp
    files, and others)."""
    if not name or name.startswith(".") or "/" in name:
        return None
    for kind, patterns in KIND_PATTERNS:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return kind
    return None


def drop_name(name: str) -> str:
    """The drop a file belongs to: ``customers_q3.csv`` / ``transactions_q3.jsonl`` / ``_SUCCESS_q3`` -> ``q3``;
    ``customers.csv`` / ``_SUCCESS`` -> ``""`` (the unnamed drop)."""
    kind = file_kind(name)
    if kind is None:
        raise ValueError(f"{name!r} is not a raw drop file (expected {', '.join(ALL_PATTERNS)})")
    if kind == MARKER:
        return name[len("_SUCCESS") :].lstrip("_")
    stem = name.rsplit(".", 1)[0]
    return stem[len(kind) :].lstrip("_-.")


def label(drop: str) -> str:
    """A drop's display name."""
    return drop or UNNAMED


@dataclass(frozen=True)
class Drop:
    """One drop as seen at this tick."""

    name: str
    files: dict[str, str]  # data file name -> version
    marker: bool
    waiting_for: str = ""  # why it is not complete; empty when complete

    @property
    def complete(self) -> bool:
        return not self.waiting_for and bool(self.files)


def group_drops(observed: Mapping[str, str], previous: Mapping[str, str], consumed: Mapping[str, str]) -> list[Drop]:
    """Group the observed files (name -> version) into drops and apply the completion rule.

    ``previous``: versions seen at the previous tick; ``consumed``: versions read by the latest successful run.
    """
    members: dict[str, dict[str, str]] = {}
    markers: set[str] = set()
    for name, version in observed.items():
        kind = file_kind(name)
        if kind is None:
            continue
        drop = drop_name(name)
        members.setdefault(drop, {})
        if kind == MARKER:
            markers.add(drop)
        else:
            members[drop][name] = version
    drops = []
    for drop in sorted(members):
        files = members[drop]
        drops.append(Drop(drop, files, drop in markers, _waiting_for(drop, files, drop in markers, previous, consumed)))
    return drops


def _waiting_for(
    drop: str, files: Mapping[str, str], marker: bool, previous: Mapping[str, str], consumed: Mapping[str, str]
) -> str:
    if marker:
        return ""
    kinds = {file_kind(name) for name in files}
    suffix = f"_{drop}" if drop else ""
    missing = [f"{source.kind}{suffix}.{source.form}" for source in SOURCES if source.kind not in kinds]
    if missing:
        return f"{' and '.join(missing)} (or a _SUCCESS{suffix} marker)"
    unsettled = sorted(
        name for name, version in files.items() if version not in (previous.get(name), consumed.get(name))
    )
    if unsettled:
        return f"{', '.join(unsettled)} to settle (new or changed since the last tick)"
    return ""


def run_key(files: Mapping[str, str], attempt: int = 0) -> str:
    """The run key of a run reading exactly ``files`` (name -> version); attempt n > 0 is a retry."""
    digest = hashlib.sha256("\n".join(f"{n}\t{v}" for n, v in sorted(files.items())).encode()).hexdigest()[:20]
    return f"drop-{digest}" if attempt == 0 else f"drop-{digest}-retry{attempt}"


@dataclass(frozen=True)
class Plan:
    """What this tick sees: the files a run would read, which of them are new, and incomplete drops."""

    ready: dict[str, str]  # every data file of every complete drop (what the run reads)
    new: dict[str, str]  # ready files whose version no successful run has read
    new_drops: list[str]  # labels of the drops with new files
    waiting: list[str] = field(default_factory=list)  # "drop q4: waiting for ..."

    def keys(self, max_retries: int = MAX_RETRIES) -> list[str]:
        """Run keys of the first attempt and every retry, in order."""
        return [run_key(self.ready, attempt) for attempt in range(max_retries + 1)]


def plan(observed: Mapping[str, str], previous: Mapping[str, str], consumed: Mapping[str, str]) -> Plan:
    """Apply the completion rule and find the new files (see the module docstring)."""
    drops = group_drops(observed, previous, consumed)
    ready: dict[str, str] = {}
    new: dict[str, str] = {}
    new_drops: list[str] = []
    waiting: list[str] = []
    for drop in drops:
        if not drop.complete:
            if drop.files:
                waiting.append(f"drop {label(drop.name)}: waiting for {drop.waiting_for}")
            continue
        ready.update(drop.files)
        fresh = {name: v for name, v in drop.files.items() if consumed.get(name) != v}
        if fresh:
            new.update(fresh)
            new_drops.append(label(drop.name))
    return Plan(ready, new, new_drops, waiting)


@dataclass(frozen=True)
class PastRun:
    """A run the sensor requested earlier, by run key."""

    state: str  # IN_PROGRESS, SUCCEEDED or FAILED
    run_id: str


@dataclass(frozen=True)
class Decision:
    """Either a run request (key, attempt, files to read) or a skip reason."""

    run_key: str | None = None
    attempt: int = 0
    skip_reason: str | None = None


def decide(the_plan: Plan, past_runs: Mapping[str, PastRun], max_retries: int = MAX_RETRIES) -> Decision:
    """Request a run for new complete files, unless one is in flight, already succeeded, or failed too often."""
    if not the_plan.new:
        waiting = "; ".join(the_plan.waiting)
        if waiting:
            return Decision(skip_reason=f"no complete new drop: {waiting}")
        if not the_plan.ready:
            return Decision(skip_reason="no raw drop files yet")
        return Decision(skip_reason=f"no new raw files ({len(the_plan.ready)} files, all read by a successful run)")
    drops = ", ".join(the_plan.new_drops)
    failures: list[str] = []
    for attempt, key in enumerate(the_plan.keys(max_retries)):
        past = past_runs.get(key)
        if past is None:
            return Decision(run_key=key, attempt=attempt)
        if past.state == IN_PROGRESS:
            return Decision(skip_reason=f"drop {drops}: run {past.run_id} ({key}) is in progress")
        if past.state == SUCCEEDED:
            return Decision(skip_reason=f"drop {drops}: already processed by run {past.run_id} ({key})")
        failures.append(past.run_id)
    return Decision(
        skip_reason=(
            f"drop {drops}: {len(failures)} runs failed (last {failures[-1]}); waiting for a new version of its "
            "files or a new drop (whose run reads these files again)"
        )
    )


def choose_job(champion_exists: bool, champion_materialized: bool) -> str:
    """``full_build`` until a champion exists and was materialized in this instance, then ``ingest_drop``."""
    return "ingest_drop" if champion_exists and champion_materialized else "full_build"


def split_by_kind(files: Iterable[str]) -> dict[str, list[str]]:
    """Data files by source kind, sorted: what each raw asset should read."""
    out: dict[str, list[str]] = {source.kind: [] for source in SOURCES}
    for name in sorted(files):
        kind = file_kind(name)
        if kind in out:
            out[kind].append(name)
    return out
