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

One drop, one partition, one run: every complete drop is a partition of the raw and clean assets (key
:func:`label`), added in arrival order; a run reads the files of one drop only. Its run key is a hash of that
drop's sorted ``(name, version)`` pairs, so the same files give the same key (Dagster launches a run key once,
also across daemon restarts). Drops are ingested one at a time in arrival order (cleaning a drop reads the ids
of the drops before it): while a drop's run is in flight the next waits. A failed run is retried with a new key
(``<hash>-retry<n>``) up to ``max_retries`` times; then that drop waits for a new version of its files and the
next drop goes ahead.
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
    return drop_of_file(name, kind)


def drop_of_file(name: str, kind: str) -> str:
    """The drop of a data file of source ``kind`` (its name after the kind, without the suffix)."""
    stem = name.rsplit(".", 1)[0]
    return stem[len(kind) :].lstrip("_-.")


def label(drop: str) -> str:
    """A drop's display name, which is also its partition key."""
    return drop or UNNAMED


def drop_of_partition(key: str) -> str:
    """The drop name of a partition key (inverse of :func:`label`)."""
    return "" if key == UNNAMED else key


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


def keys_of(files: Mapping[str, str], max_retries: int = MAX_RETRIES) -> list[str]:
    """Run keys of the first attempt and every retry of a run reading ``files``, in order."""
    return [run_key(files, attempt) for attempt in range(max_retries + 1)]


@dataclass(frozen=True)
class Plan:
    """What this tick sees: the complete drops in arrival order (each one partition), those with a file no
    successful run has read, and the incomplete drops."""

    ready: list[Drop]  # complete drops, in arrival order
    new: list[Drop]  # ready drops with new or changed files, in arrival order
    waiting: list[str] = field(default_factory=list)  # "drop q4: waiting for ..."

    def keys(self, max_retries: int = MAX_RETRIES) -> list[str]:
        """Run keys (first attempt and every retry) of every new drop."""
        return [key for drop in self.new for key in keys_of(drop.files, max_retries)]


def plan(
    observed: Mapping[str, str],
    previous: Mapping[str, str],
    consumed: Mapping[str, str],
    arrivals: Mapping[str, float] | None = None,
) -> Plan:
    """Apply the completion rule and find the new drops (see the module docstring). ``arrivals`` (file name ->
    when it landed, seconds) orders the drops: a drop arrives with its last file; ties and unknown arrivals by
    name."""
    arrivals = arrivals or {}
    ready: list[Drop] = []
    waiting: list[str] = []
    for drop in group_drops(observed, previous, consumed):
        if drop.complete:
            ready.append(drop)
        elif drop.files:
            waiting.append(f"drop {label(drop.name)}: waiting for {drop.waiting_for}")
    ready.sort(key=lambda d: (max((arrivals.get(name, 0.0) for name in d.files), default=0.0), d.name))
    new = [d for d in ready if any(consumed.get(name) != v for name, v in d.files.items())]
    return Plan(ready, new, waiting)


@dataclass(frozen=True)
class PastRun:
    """A run the sensor requested earlier, by run key."""

    state: str  # IN_PROGRESS, SUCCEEDED or FAILED
    run_id: str


@dataclass(frozen=True)
class Decision:
    """Either a run request (the drop, key, attempt) or a skip reason."""

    run_key: str | None = None
    attempt: int = 0
    drop: Drop | None = None
    skip_reason: str | None = None


def decide(the_plan: Plan, past_runs: Mapping[str, PastRun], max_retries: int = MAX_RETRIES) -> Decision:
    """One run for the first new drop (arrival order) that needs one; a drop whose run is in flight holds back
    the drops after it (each drop's cleaning reads the ids of the drops before it). A drop already processed, or
    whose runs failed ``max_retries + 1`` times, lets the next one go (a failed drop fails only itself)."""
    if not the_plan.new:
        waiting = "; ".join(the_plan.waiting)
        if waiting:
            return Decision(skip_reason=f"no complete new drop: {waiting}")
        if not the_plan.ready:
            return Decision(skip_reason="no raw drop files yet")
        files = sum(len(d.files) for d in the_plan.ready)
        return Decision(skip_reason=f"no new raw files ({files} files, all read by a successful run)")
    reasons: list[str] = []
    for position, drop in enumerate(the_plan.new):
        name = label(drop.name)
        failures: list[str] = []
        for attempt, key in enumerate(keys_of(drop.files, max_retries)):
            past = past_runs.get(key)
            if past is None:
                return Decision(run_key=key, attempt=attempt, drop=drop)
            if past.state == IN_PROGRESS:
                later = [label(d.name) for d in the_plan.new[position + 1 :]]
                waits = f"; drop {', '.join(later)} waits for it" if later else ""
                reasons.append(f"drop {name}: run {past.run_id} ({key}) is in progress{waits}")
                return Decision(skip_reason="; ".join(reasons))
            if past.state == SUCCEEDED:
                reasons.append(f"drop {name}: already processed by run {past.run_id} ({key})")
                break
            failures.append(past.run_id)
        else:
            reasons.append(
                f"drop {name}: {len(failures)} runs failed (last {failures[-1]}); waiting for a new version of "
                "its files"
            )
    return Decision(skip_reason="; ".join(reasons))


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


def emptied_files(stored: Mapping[str, int], now: Mapping[str, int], partition: str) -> list[str]:
    """A rebuild of drop ``partition`` must not empty it: the problems (``file: ...``) of the files that held rows
    in the drop's stored raw table (``stored``: rows per file name) and hold none now (``now``), e.g. a header-only
    re-export. A file that held no rows, or a drop never stored, has none."""
    return [
        f"{name}: has no rows, but drop {partition} is stored with {stored[name]:,} rows of it; a rebuild with "
        "this file would empty them, so it is refused (send the file again with its rows)"
        for name, rows in now.items()
        if rows == 0 and stored.get(name, 0) > 0
    ]
