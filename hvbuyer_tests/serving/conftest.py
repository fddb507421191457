"""One real uvicorn process serving the built workspace's champion, shared by the read-only API tests (the process
itself: ``hvbuyer_tests/serving/service.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from hvbuyer_serving.online_store import OnlineStore, open_store
from hvbuyer_serving.online_store.redis_store import RedisStore
from hvbuyer_tests.serving.redis_server import MACHINE_REDIS, TEST_DB
from hvbuyer_tests.serving.service import ADMIN_TOKEN, serve


@pytest.fixture(scope="session")
def api(built) -> Iterator[httpx.Client]:
    """One service on the built workspace (admin token set), shared by the read-only API tests."""
    with serve(built.root, HVBUYER_ADMIN_TOKEN=ADMIN_TOKEN) as client:
        yield client


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    """An empty online store: a SQLite file, or a prefix of its own on the machine's Redis (db 3, removed after)."""
    if request.param == "sqlite":
        opened: OnlineStore = open_store(f"sqlite:///{tmp_path}/scores/online_store.db")
        yield opened
        opened.close()
        return
    prefix = f"hvbuyer:test:{uuid.uuid4().hex}:"
    opened = RedisStore(f"{MACHINE_REDIS}/{TEST_DB}", prefix=prefix)
    try:
        yield opened
    finally:
        client = redis.Redis.from_url(f"{MACHINE_REDIS}/{TEST_DB}")
        keys = list(client.scan_iter(match=prefix + "*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.unlink(*keys[start : start + 10_000])
        opened.close()
