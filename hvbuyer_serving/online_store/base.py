"""What every online store shares: the change set of a write (against the manifest the last write stored), the
answer of a lookup, and errors that name the store (never its password)."""

from __future__ import annotations

import asyncio
import io
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import pydantic_core

# (customer_id, digest of its record) of every customer of the last committed write: what "changed" is judged by.
MANIFEST_COLUMNS = ("customer_id", "digest")


class StoreUnavailable(LookupError):
    """The store cannot answer: unreachable, unreadable, or nothing written yet (the message names the store)."""


@dataclass(frozen=True)
class WriteResult:
    """One committed write: its version and how many rows it wrote, removed and left as they were."""

    version: int
    written: int
    removed: int
    unchanged: int


@dataclass(frozen=True)
class ChangeSet:
    """What a write must do: the new or changed rows, the customers no longer scored, the manifest to store."""

    changed: pl.DataFrame  # customer_id, record, new (not in the last write)
    removed: list[str]
    manifest: bytes
    unchanged: int


# The layout score_records writes: {"large_purchase_probability":..,"model_version":..,"feature_as_of":..,
# "features":{..}[,"reasons":{..}]} (a JSON string never holds an unescaped quote, so these markers are unambiguous).
RECORD_HEAD = b'{"large_purchase_probability":'
AS_OF = b',"feature_as_of":'
FEATURES = b',"features":{'
REASONS = b',"reasons":'


def response_body(customer_id: str, scored_at: bytes, record: bytes) -> bytes | None:
    """The JSON of ``GET /customers/{id}/prediction`` (no explain) spliced from the stored record, byte for byte
    what the validating path (``CustomerPrediction``) answers; None for a record not in ``score_records``' layout
    (the caller then takes the validating path). ``scored_at``: the version's ``scored_at`` as JSON."""
    if not record.startswith(RECORD_HEAD) or not record.endswith(b"}"):
        return None
    as_of = record.find(AS_OF)
    if as_of < 0 or record.find(FEATURES, as_of) < 0:
        return None
    reasons = record.find(REASONS, as_of)
    end = len(record) - 1 if reasons < 0 else reasons
    head = b'{"customer_id":' + pydantic_core.to_json(customer_id) + b","
    return b"".join((head, record[1:as_of], b',"scored_at":', scored_at, record[as_of:end], b',"explanation":null}'))


def redact(url: str) -> str:
    """``url`` without its password (the name errors and logs use)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _brief(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def change_set(rows: pl.DataFrame, manifest: bytes | None) -> ChangeSet:
    """The rows of ``rows`` (customer_id, record) whose record differs from the last write's, and the customers
    that write had and ``rows`` has not; ValueError for a customer listed twice."""
    if rows["customer_id"].is_duplicated().any():
        twice = rows.filter(pl.col("customer_id").is_duplicated())["customer_id"].head(3).to_list()
        raise ValueError(f"customer ids listed more than once, e.g. {twice}")
    rows = rows.with_columns(digest=pl.col("record").hash(seed=0))
    previous = (
        pl.read_ipc_stream(io.BytesIO(manifest))
        if manifest
        else pl.DataFrame(schema={"customer_id": pl.String, "digest": pl.UInt64})
    )
    joined = rows.join(previous.rename({"digest": "previous"}), on="customer_id", how="left")
    changed = joined.filter(pl.col("previous").is_null() | (pl.col("digest") != pl.col("previous")))
    removed = previous.join(rows, on="customer_id", how="anti")["customer_id"].to_list()
    buffer = io.BytesIO()
    rows.select(MANIFEST_COLUMNS).write_ipc_stream(buffer)
    changed = changed.select("customer_id", "record", pl.col("previous").is_null().alias("new"))
    return ChangeSet(changed, removed, buffer.getvalue(), len(rows) - len(changed))


class OnlineStore(ABC):
    """One customer per key; ``write`` commits a new version atomically, ``lookup`` reads one customer of the
    committed version. Subclasses implement ``_lookup``, ``_commit`` and ``_reset``."""

    kind: ClassVar[str]
    errors: ClassVar[tuple[type[BaseException], ...]] = ()  # the client library's failures: unreachable, unreadable

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = redact(url)
        self._scored: tuple[str | bytes, bytes] | None = None  # (meta, its scored_at as JSON): the last seen

    async def answer(self, customer_id: str) -> bytes | None:
        """The 200 body of ``GET /customers/{id}/prediction`` from the stored bytes (``response_body``), read
        without leaving the event loop where the store allows it; None whenever the validating path must answer
        (unknown customer, nothing written, a record in another layout) and an exception when the store cannot
        answer (the validating path then words the 503)."""
        found = await self._lookup_raw(customer_id)
        if found is None or found[1] is None:
            return None
        meta, record = found
        scored = self._scored
        if scored is None or scored[0] != meta:
            scored = self._scored = (meta, pydantic_core.to_json(json.loads(meta).get("scored_at")))
        return response_body(customer_id, scored[1], record)

    async def _lookup_raw(self, customer_id: str) -> tuple[str | bytes, bytes | None] | None:
        """``_lookup`` with the record as bytes; a store without a faster way reads it on a worker thread."""
        found = await asyncio.to_thread(self._lookup, customer_id)
        if found is None or found[1] is None:
            return found
        record = found[1]
        return found[0], record.encode() if isinstance(record, str) else record

    def lookup(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's record (score, model version, as-of time, features, reasons) and the version's
        ``scored_at``; None for an unknown customer; StoreUnavailable naming the store when it cannot answer."""
        try:
            found = self._lookup(customer_id)
            if found is None:
                raise StoreUnavailable(f"no customer scores yet in the online store {self.name}: run the scoring first")
            meta, record = found
            if record is None:
                return None
            out = json.loads(record)
            out["scored_at"] = json.loads(meta).get("scored_at")
        except StoreUnavailable:
            raise
        except (*self.errors, ValueError, KeyError, TypeError) as exc:
            self._reset()  # the next request connects afresh (the store may be back, or the file replaced)
            raise StoreUnavailable(f"the online store {self.name} cannot be read ({_brief(exc)})") from exc
        out["customer_id"] = customer_id
        return out

    def write(self, rows: pl.DataFrame, meta: dict[str, Any]) -> WriteResult:
        """Commit ``rows`` (customer_id, record JSON) as a new version with ``meta`` (``scored_at`` and the like):
        only changed rows are written, readers switch to it at once, a failure leaves the previous version
        answering (StoreUnavailable naming the store)."""
        try:
            return self._commit(rows.select("customer_id", "record"), meta)
        except self.errors as exc:
            self._reset()
            raise StoreUnavailable(
                f"writing the online store {self.name} failed ({_brief(exc)}); the previous version still answers"
            ) from exc

    def version(self) -> int | None:
        """The committed version (None before the first write)."""
        meta = self._meta()
        return None if meta is None else int(json.loads(meta)["version"])

    @abstractmethod
    def _lookup(self, customer_id: str) -> tuple[str | bytes, str | bytes | None] | None:
        """(committed meta JSON, the customer's record or None), read at one instant; None before any write."""

    @abstractmethod
    def _meta(self) -> str | bytes | None:
        """The committed meta JSON (None before any write)."""

    @abstractmethod
    def _commit(self, rows: pl.DataFrame, meta: dict[str, Any]) -> WriteResult:
        """Write the change set of ``rows`` against the stored manifest as version (committed + 1), atomically."""

    @abstractmethod
    def _reset(self) -> None:
        """Drop this thread's connection (the next call reconnects)."""

    def close(self) -> None:
        """Release connections."""
        self._reset()
