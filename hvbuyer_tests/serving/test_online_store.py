"""The online store on the real SQLite file and the real Redis server (the machine's, db 3, a prefix of the test's
own; a private redis-server where the test must break it): lookups, change-only writes, atomic version switches
under concurrent readers, a write failing half-way, an unreachable store."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import polars as pl
import pytest
import redis

from hvbuyer_serving.online_store import OnlineStore, StoreUnavailable, open_store
from hvbuyer_tests.serving.redis_server import private_redis
from hvbuyer_tests.serving.service import free_port

N = 20_000


def rows(write: int, n: int = N, changed: range | None = None, start: int = 0) -> pl.DataFrame:
    """n customers; those in ``changed`` (all when None) carry write number ``write``, the others write 1."""
    ids = [f"C{i:07d}" for i in range(start, start + n)]
    marks = [write if changed is None or i in changed else 1 for i in range(start, start + n)]
    records = [json.dumps({"large_purchase_probability": (i % 100) / 100, "write": w}) for i, w in enumerate(marks)]
    return pl.DataFrame({"customer_id": ids, "record": records})


def test_lookups_answer_the_committed_version_and_writes_touch_only_changed_rows(store: OnlineStore) -> None:
    with pytest.raises(StoreUnavailable, match="no customer scores yet in the online store"):
        store.lookup("C0000001")
    first = store.write(rows(1), {"scored_at": "w1"})
    assert (first.version, first.written, first.unchanged, first.removed) == (1, N, 0, 0)
    found = store.lookup("C0000042")
    assert found == {"customer_id": "C0000042", "large_purchase_probability": 0.42, "write": 1, "scored_at": "w1"}
    assert store.lookup("nobody") is None

    # 100 changed scores, the last 10 customers gone, 5 new ones: only those are written
    later = pl.concat([rows(2, N - 10, changed=range(100, 200)), rows(2, 5, start=N + 100)])
    second = store.write(later, {"scored_at": "w2"})
    assert (second.version, second.written, second.removed, second.unchanged) == (2, 105, 10, N - 110)
    assert store.lookup("C0000150")["write"] == 2 and store.lookup("C0000150")["scored_at"] == "w2"
    assert store.lookup("C0000050")["write"] == 1  # unchanged rows answer from the earlier write
    assert store.lookup(f"C{N - 1:07d}") is None  # no longer scored
    assert store.lookup(f"C{N + 102:07d}")["write"] == 2
    assert store.version() == 2

    third = store.write(later, {"scored_at": "w3"})  # the same scores again: nothing to write, a new version
    assert (third.version, third.written, third.removed, third.unchanged) == (3, 0, 0, N - 5)
    assert store.lookup("C0000150")["scored_at"] == "w3"


def test_readers_never_see_part_of_a_write(store: OnlineStore) -> None:
    """Readers hammer lookups while every row changes: each answer's record belongs to the committed version
    the same lookup reports (``scored_at`` "w1" <-> write 1, "w2" <-> write 2), and once a reader has seen the
    new version it never sees the old one again."""
    store.write(rows(1), {"scored_at": "w1"})
    stop, problems, seen = threading.Event(), [], []

    def read(offset: int) -> None:
        newest, i = 1, offset
        while not stop.is_set():
            found = store.lookup(f"C{i % N:07d}")
            write = int(found["scored_at"][1])
            if found["write"] != write or write < newest:
                problems.append((found, newest))
            newest = max(newest, write)
            seen.append(write)
            i += 7919

    readers = [threading.Thread(target=read, args=(k * 1000,)) for k in range(4)]
    for thread in readers:
        thread.start()
    try:
        store.write(rows(2), {"scored_at": "w2"})
        while seen.count(2) < 200:  # readers still running see the new version
            pass
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert problems == []
    assert 1 in seen and 2 in seen


def _broken(frame: pl.DataFrame, at: int) -> pl.DataFrame:
    """``frame`` with no record for row ``at``: the store fails there, half-way through writing."""
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == at).then(None).otherwise(pl.col("record")).alias("record")
    )


def test_a_write_failing_half_way_leaves_the_previous_version_answering(store: OnlineStore) -> None:
    store.write(rows(1), {"scored_at": "w1"})
    with pytest.raises(StoreUnavailable, match=f"writing the online store {store.name} failed.*previous version"):
        store.write(_broken(rows(2), at=N * 3 // 4), {"scored_at": "w2"})
    assert store.version() == 1
    for i in (0, N // 2, N - 1):  # rows before and after the failure point
        assert store.lookup(f"C{i:07d}") | {"customer_id": None} == {
            "customer_id": None,
            "large_purchase_probability": (i % 100) / 100,
            "write": 1,
            "scored_at": "w1",
        }
    # the next write commits whole, and nothing of the failed one shows through (rows it touched included)
    result = store.write(rows(3, changed=range(N // 2, N)), {"scored_at": "w3"})
    assert store.version() == result.version > 1 and result.written == N // 2
    assert store.lookup("C0000010")["write"] == 1 and store.lookup(f"C{N - 1:07d}")["write"] == 3


def test_an_unreachable_redis_is_named_and_passwords_are_not() -> None:
    store = open_store(f"redis://hvbuyer:secret@127.0.0.1:{free_port()}/2")
    with pytest.raises(StoreUnavailable) as caught:
        store.lookup("C0000001")
    message = str(caught.value)
    assert "the online store redis://hvbuyer:***@127.0.0.1:" in message and "ConnectionError" in message
    assert "secret" not in message
    with pytest.raises(StoreUnavailable, match="previous version still answers"):
        store.write(rows(1, 10), {"scored_at": "w1"})


def test_a_redis_out_of_memory_mid_write_and_a_restart_between_lookups(tmp_path: Path) -> None:
    """A real fault inside Redis: the server refuses writes past ``maxmemory`` half-way through a version; the
    previous one answers; with room again the next write commits. Stopped: StoreUnavailable; started: answers."""
    with private_redis(tmp_path) as server:
        store = open_store(server.url(2))
        store.write(rows(1, 2_000), {"scored_at": "w1"})
        used = int(redis.Redis(port=server.port).info("memory")["used_memory"])
        redis.Redis(port=server.port).config_set("maxmemory", used + 1_500_000)
        big = rows(2, 2_000).with_columns(pl.col("record") + pl.lit(" " * 2_000))
        with pytest.raises(StoreUnavailable, match="OOM|maxmemory"):
            store.write(big, {"scored_at": "w2"})
        assert store.version() == 1 and store.lookup("C0001999")["write"] == 1
        redis.Redis(port=server.port).config_set("maxmemory", 0)
        assert store.write(big, {"scored_at": "w3"}).written == 2_000
        assert store.lookup("C0001999")["scored_at"] == "w3"

        server.stop()
        with pytest.raises(StoreUnavailable, match=f"the online store {server.url(2)} cannot be read"):
            store.lookup("C0000001")
        server.start()  # an empty server: reachable, nothing written yet
        with pytest.raises(StoreUnavailable, match="no customer scores yet"):
            store.lookup("C0000001")
