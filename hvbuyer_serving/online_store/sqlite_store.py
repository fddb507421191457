"""The embedded online store: one SQLite file (WAL journal, so readers never wait on a write); a write is one
transaction, so readers see the previous version or the new one, never part of one."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import polars as pl

from hvbuyer_serving.online_store.base import OnlineStore, WriteResult, change_set

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS customers (customer_id TEXT PRIMARY KEY, record TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
)
LOOKUP = "SELECT m.value, (SELECT record FROM customers WHERE customer_id = ?) FROM meta AS m WHERE m.key = 'current'"
LOOKUP_RAW = LOOKUP.replace("SELECT record", "SELECT CAST(record AS BLOB)")  # the record's bytes as stored
CHUNK = 50_000  # rows per executemany while writing (memory follows the chunk, not the table)


class SqliteStore(OnlineStore):
    """``sqlite:///PATH``: the file is created by the first write; one connection per reading thread."""

    kind = "sqlite"
    errors = (sqlite3.Error, OSError)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = Path(url.removeprefix("sqlite:///")).expanduser()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection | None:
        """This thread's connection to the file as it is now (None while there is no file): a file replaced
        or removed since the connection was opened is noticed by one stat per call, never answered from."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._reset()
            return None
        identity = (stat.st_dev, stat.st_ino)
        if getattr(self._local, "identity", None) != identity:
            self._reset()
        con = getattr(self._local, "con", None)
        if con is None:
            # mode=rw: a reader never creates the file (a missing file is "nothing written yet")
            con = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=5, check_same_thread=False)
            self._local.con, self._local.identity = con, identity
        return con

    def _reset(self) -> None:
        con = getattr(self._local, "con", None)
        self._local.con = self._local.identity = None
        if con is not None:
            con.close()

    def _lookup(self, customer_id: str) -> tuple[str | bytes, str | None] | None:
        con = self._connection()
        found = [] if con is None else con.execute(LOOKUP, (customer_id,)).fetchall()  # all: ends the read
        return (found[0][0], found[0][1]) if found else None

    async def _lookup_raw(self, customer_id: str) -> tuple[str | bytes, bytes | None] | None:
        """On the event loop itself: a point read of the primary key is a few microseconds (WAL: readers never
        wait on a writer), cheaper than the hop to a worker thread."""
        try:
            con = self._connection()
            found = [] if con is None else con.execute(LOOKUP_RAW, (customer_id,)).fetchall()
        except self.errors:
            self._reset()  # the event loop's connection: reopened by the next look-up
            raise
        return (found[0][0], found[0][1]) if found else None

    def _meta(self) -> str | bytes | None:
        con = self._connection()
        found = [] if con is None else con.execute("SELECT value FROM meta WHERE key = 'current'").fetchall()
        return found[0][0] if found else None

    def _commit(self, rows: pl.DataFrame, meta: dict[str, Any]) -> WriteResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a crash of the process
            con.execute("BEGIN IMMEDIATE")  # one writer at a time; readers keep the previous version meanwhile
            for statement in SCHEMA:
                con.execute(statement)
            current = con.execute("SELECT value FROM meta WHERE key = 'current'").fetchone()
            manifest = con.execute("SELECT value FROM meta WHERE key = 'manifest'").fetchone()
            version = 1 + (int(json.loads(current[0])["version"]) if current else 0)
            changes = change_set(rows, manifest[0] if manifest else None)
            upsert = (
                "INSERT INTO customers (customer_id, record) VALUES (?, ?) "
                "ON CONFLICT (customer_id) DO UPDATE SET record = excluded.record"
            )
            for chunk in changes.changed.iter_slices(CHUNK):
                con.executemany(upsert, zip(chunk["customer_id"].to_list(), chunk["record"].to_list(), strict=True))
            con.executemany("DELETE FROM customers WHERE customer_id = ?", ((cid,) for cid in changes.removed))
            done = {**meta, "version": version, "customers": len(rows)}
            con.execute("INSERT OR REPLACE INTO meta VALUES ('manifest', ?)", (changes.manifest,))
            con.execute("INSERT OR REPLACE INTO meta VALUES ('current', ?)", (json.dumps(done),))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return WriteResult(version, len(changes.changed), len(changes.removed), changes.unchanged)
