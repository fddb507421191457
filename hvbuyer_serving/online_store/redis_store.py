"""The production online store: Redis (``redis://host:port/db``; db 1 is Celery's result backend).

Keys (prefix ``hvbuyer:online:``): ``meta`` is the committed version (JSON), ``c:<id>`` a customer's newest record
and ``p:<id>`` the one before it while a write is in flight, each ``b"<version>\\t<record>"`` (an empty record
once the customer is gone). A reader fetches ``meta``, ``c:<id>`` and ``p:<id>`` in one ``MGET`` (one instant)
and answers from ``c`` if its version is committed, else from ``p``; so a write becomes visible only when it
sets ``meta``, all of it at once. A write lists its customers in ``pending`` first: the next write puts back
whatever an interrupted one left behind, so a failed write never shows, then or later.
"""

from __future__ import annotations

import io
import json
from typing import Any

import polars as pl
import pyarrow as pa
import redis

from hvbuyer_serving.online_store.base import OnlineStore, WriteResult, change_set
from hvbuyer_serving.online_store.resp import AsyncReader

PREFIX = "hvbuyer:online:"
CHUNK = 2_000  # customers per script call: each call holds the server for ~5 ms at most
SLICE = 50_000  # customers packed and sent at a time (memory follows the slice)
# Write one version's records: the current record becomes the previous one, the new one current.
WRITE = """
local prefix, version = ARGV[1], ARGV[2]
for i = 3, #ARGV, 2 do
  local current = prefix .. 'c:' .. ARGV[i]
  local old = redis.call('GET', current)
  if old then redis.call('SET', prefix .. 'p:' .. ARGV[i], old) end
  redis.call('SET', current, version .. '\\t' .. ARGV[i + 1])
end
return (#ARGV - 2) / 2
"""
# Undo what an interrupted write (versions above the committed one) left on these customers.
RESTORE = """
local prefix, committed = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV do
  local current, previous = prefix .. 'c:' .. ARGV[i], prefix .. 'p:' .. ARGV[i]
  local value = redis.call('GET', current)
  if value and tonumber(string.match(value, '^(%d+)\\t')) > committed then
    local old = redis.call('GET', previous)
    if old then redis.call('SET', current, old) else redis.call('DEL', current) end
  end
  redis.call('DEL', previous)
end
return #ARGV - 2
"""


def _bulk(expr: pl.Expr) -> pl.Expr:
    """One RESP bulk string per row: ``$<bytes>\\r\\n<value>\\r\\n``."""
    return pl.concat_str(pl.lit("$"), expr.str.len_bytes().cast(pl.String), pl.lit("\r\n"), expr, pl.lit("\r\n"))


def _commands(frame: pl.DataFrame, head: list[str], per_row: list[pl.Expr]) -> list[bytes]:
    """RESP commands of ``head`` followed by ``per_row``'s values of CHUNK rows each, packed in polars (no
    Python per row: redis-py's packing of one argument at a time was most of a write's time)."""
    packed = (
        frame.select(pl.concat_str(*(_bulk(e) for e in per_row)).alias("packed"))
        .with_row_index()
        .group_by(pl.col("index") // CHUNK, maintain_order=True)
        .agg(pl.col("packed").str.join(""), pl.len().alias("rows"))
    )
    prefix = "".join(f"${len(arg.encode())}\r\n{arg}\r\n" for arg in head)
    return [
        f"*{len(head) + rows * len(per_row)}\r\n{prefix}{body}".encode()
        for body, rows in zip(packed["packed"], packed["rows"], strict=True)
    ]


def _ids_blob(ids: list[str]) -> bytes:
    sink = io.BytesIO()
    pl.DataFrame({"customer_id": ids}, schema={"customer_id": pl.String}).write_ipc_stream(sink)
    return sink.getvalue()


class RedisStore(OnlineStore):
    """``redis://host:port/db``: a connection pool shared by the process's threads (2 s timeouts)."""

    kind = "redis"
    errors = (redis.RedisError, OSError, pa.ArrowException)

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        super().__init__(url)
        self.prefix = prefix
        self._client: redis.Redis | None = None
        self._reader = AsyncReader(url) if url.startswith("redis://") else None  # rediss://: redis-py's TLS

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=0
            )
        return self._client

    def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()  # the event loop's reader drops a failed connection by itself

    def close(self) -> None:
        self._reset()
        if self._reader is not None:
            self._reader.close()

    def _keys(self, customer_id: str) -> tuple[str, str, str]:
        return self.prefix + "meta", self.prefix + "c:" + customer_id, self.prefix + "p:" + customer_id

    def _lookup(self, customer_id: str) -> tuple[bytes, bytes | None] | None:
        return self._committed(*self.client.mget(*self._keys(customer_id)))

    async def _lookup_raw(self, customer_id: str) -> tuple[bytes, bytes | None] | None:
        """The same ``MGET`` on the event loop (``resp.AsyncReader``)."""
        if self._reader is None:
            return await super()._lookup_raw(customer_id)
        return self._committed(*await self._reader.call("MGET", *self._keys(customer_id)))

    @staticmethod
    def _committed(
        meta: bytes | None, current: bytes | None, previous: bytes | None
    ) -> tuple[bytes, bytes | None] | None:
        """(meta, the record of the committed version) of one ``MGET``'s values; None before any write."""
        if meta is None:
            return None
        committed = json.loads(meta)["version"]
        for value in (current, previous):
            if value is not None:
                version, _, record = value.partition(b"\t")
                if int(version) <= committed:
                    return meta, record or None
        return meta, None

    def _meta(self) -> bytes | None:
        return self.client.get(self.prefix + "meta")

    def _commit(self, rows: pl.DataFrame, meta: dict[str, Any]) -> WriteResult:
        client = self.client
        with client.lock(self.prefix + "writer", timeout=3600, blocking_timeout=600):  # one writer at a time
            current = client.get(self.prefix + "meta")
            committed = int(json.loads(current)["version"]) if current else 0
            self._undo_interrupted(committed)
            version = max(int(client.incr(self.prefix + "next")), committed + 1)
            old = json.loads(current).get("manifest") if current else None
            changes = change_set(rows, client.get(old) if old else None)
            gone = pl.DataFrame({"customer_id": changes.removed, "record": [""] * len(changes.removed)})
            writes = pl.concat([changes.changed, gone.cast(pl.String).with_columns(new=pl.lit(False))])
            touched = writes.filter(~pl.col("new"))["customer_id"].to_list()  # the ones with a record to keep
            client.set(self.prefix + "pending", json.dumps({"version": version}))
            client.set(self.prefix + "pending:ids", _ids_blob(writes["customer_id"].to_list()))  # every one written
            sha = client.script_load(WRITE)
            key, value = pl.lit(self.prefix + "c:") + pl.col("customer_id"), pl.lit(f"{version}\t") + pl.col("record")
            for piece in writes.iter_slices(SLICE):
                missing = piece.filter(pl.col("record").is_null())["customer_id"].head(1).to_list()
                if missing:  # a row that cannot be written fails the write where it stands
                    raise redis.DataError(f"no record for customer {missing[0]!r}")
                # a customer the last write did not have has no record to keep: a plain MSET
                fresh = _commands(piece.filter(pl.col("new")), ["MSET"], [key, value])
                head = ["EVALSHA", sha, "0", self.prefix, str(version)]
                kept = _commands(piece.filter(~pl.col("new")), head, [pl.col("customer_id"), pl.col("record")])
                self._send(fresh + kept)
            manifest = f"{self.prefix}manifest:{version}"
            client.set(manifest, changes.manifest)
            done = {**meta, "version": version, "customers": len(rows), "manifest": manifest}
            with client.pipeline(transaction=True) as pipe:  # the switch: meta and pending change together
                pipe.set(self.prefix + "meta", json.dumps(done)).delete(
                    self.prefix + "pending", self.prefix + "pending:ids"
                )
                pipe.execute()
            self._drop(self.prefix + "p:", touched)  # a reader that saw the new meta never needs them again
            if old:
                client.delete(old)
        return WriteResult(version, len(changes.changed), len(changes.removed), changes.unchanged)

    def _undo_interrupted(self, committed: int) -> None:
        """Put back the customers a write that never committed had touched (listed in ``pending``)."""
        if self.client.get(self.prefix + "pending") is None:
            return
        blob = self.client.get(self.prefix + "pending:ids")
        ids = pl.read_ipc_stream(io.BytesIO(blob))["customer_id"].to_list() if blob else []
        restore = self.client.register_script(RESTORE)
        for start in range(0, len(ids), CHUNK):
            restore(args=[self.prefix, committed, *ids[start : start + CHUNK]])
        self.client.delete(self.prefix + "pending", self.prefix + "pending:ids")

    def _drop(self, prefix: str, ids: list[str]) -> None:
        frame = pl.DataFrame({"key": ids}, schema={"key": pl.String}).select(pl.lit(prefix) + pl.col("key"))
        for piece in frame.iter_slices(SLICE):
            self._send(_commands(piece, ["UNLINK"], [pl.col("literal")]))

    def _send(self, commands: list[bytes]) -> None:
        """Send RESP commands on one connection (pipelined) and read every reply; an error reply raises."""
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(commands)
            failures = []
            for _ in commands:
                try:
                    connection.read_response()
                except redis.ResponseError as exc:  # read the other replies first: the connection stays in step
                    failures.append(exc)
            if failures:
                raise failures[0]
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
