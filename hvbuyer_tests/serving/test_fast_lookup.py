"""The fast path of ``GET /customers/{id}/prediction`` (``api.fast_lookup``) on the real SQLite file and the real
Redis server: byte for byte the route's answer, read without a worker thread; everything else (explain, 404, 503,
422) still the route's. In process (``httpx.ASGITransport``), the online store written by ``score_records``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import anyio.to_thread
import httpx
import numpy as np
import pandas as pd
import pytest

from hvbuyer_assets.core.features import FEATURE_COLUMNS, FEATURE_NUMERIC
from hvbuyer_serving import metrics
from hvbuyer_serving.app import create_app
from hvbuyer_serving.online_store import OnlineStore, score_records
from hvbuyer_serving.online_store.redis_store import RedisStore
from hvbuyer_tests.serving.redis_server import PrivateRedis, private_redis

REASONS = {
    "expected_value": 0.21,
    "forest_probability": 0.42,
    "top": [
        {"feature": "total_spend", "contribution": 0.15, "value": 1234.5},
        {"feature": "region", "contribution": -0.02, "value": "East"},
        {"feature": "age", "contribution": 0.01, "value": 41.0},
    ],
    "others": 0.07,
}


def customers() -> pd.DataFrame:
    """Three customers as the features asset holds them: full, with missing values, an id needing escapes."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({name: rng.uniform(0, 5000, 3) for name in FEATURE_NUMERIC})
    frame["age"] = [41.0, np.nan, 1e-05]
    frame["region"] = pd.Series(["East", None, 'Nörth "W"'], dtype=object)
    frame["feature_as_of"] = pd.to_datetime(["2026-01-02T03:04:05Z"] * 3)
    frame.index = pd.Index(["C0000001", "C0000002", "id é+%20x"], name="customer_id")
    return frame[[*FEATURE_COLUMNS, "feature_as_of"]]


def write(store: OnlineStore, reasons: bool) -> None:
    feats = customers()
    stored = [json.dumps(REASONS)] * len(feats) if reasons else None
    records = score_records(feats, np.array([0.42, 0.1, 1.0]), "7", stored)
    store.write(records, {"scored_at": "2026-01-02T04:00:00+00:00"})


@asynccontextmanager
async def client_of(store: OnlineStore) -> AsyncIterator[httpx.AsyncClient]:
    """The app with ``store`` as its online store (no lifespan: no champion, as a look-up needs none)."""
    app = create_app()
    app.state.customers, app.state.store = store, SimpleNamespace(current=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


def run(store: OnlineStore, check: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    """``check`` against the app on ``store``, in an event loop of its own."""

    async def main() -> None:
        async with client_of(store) as api:
            await check(api)

    asyncio.run(main())


def _url(customer_id: str) -> str:
    return f"/customers/{customer_id.replace('%', '%25').replace(' ', '%20')}/prediction"


@pytest.mark.parametrize("reasons", [False, True])
def test_the_fast_answer_is_the_routes_byte_for_byte(store: OnlineStore, reasons: bool) -> None:
    """A query string the route ignores (``?via=route``) takes the route: the two answers are the same bytes."""
    write(store, reasons)
    run(store, lambda api: _same_bytes(api, reasons))


async def _same_bytes(api: httpx.AsyncClient, reasons: bool) -> None:
    for customer_id in customers().index:
        fast, route = await api.get(_url(customer_id)), await api.get(_url(customer_id) + "?via=route")
        assert fast.status_code == route.status_code == 200
        assert fast.content == route.content
        assert fast.headers["content-type"] == route.headers["content-type"] == "application/json"
        assert fast.headers["content-length"] == str(len(fast.content))
        assert json.loads(fast.content)["customer_id"] == customer_id
    answer = (await api.get(_url("C0000001"))).json()
    assert answer["model_version"] == "7" and answer["scored_at"] == "2026-01-02T04:00:00+00:00"
    assert answer["explanation"] is None and "reasons" not in answer
    explained = await api.get(_url("C0000001") + "?explain=2")  # the route, from the stored reasons
    if reasons:
        assert [pick["feature"] for pick in explained.json()["explanation"]["top"]] == ["total_spend", "region"]
    else:  # no stored reasons and no champion: the route's 422
        assert explained.status_code == 422 and explained.json()["detail"][0]["loc"] == ["query", "explain"]


def test_a_plain_lookup_needs_no_worker_thread(store: OnlineStore) -> None:
    """Every worker thread taken: the fast path still answers (the route, a sync function, would wait for one)."""
    write(store, reasons=False)
    run(store, _without_threads)


async def _without_threads(api: httpx.AsyncClient) -> None:
    limiter = anyio.to_thread.current_default_thread_limiter()
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:
        await limiter.acquire_on_behalf_of(holder)
    try:
        answer = await asyncio.wait_for(api.get(_url("C0000002")), timeout=30)
    finally:
        for holder in holders:
            limiter.release_on_behalf_of(holder)
    assert answer.status_code == 200 and answer.json()["features"]["region"] is None


def test_unknown_ids_refused_ids_and_metrics_stay_the_routes(store: OnlineStore) -> None:
    run(store, _nothing_written)
    write(store, reasons=False)
    run(store, _errors_and_metrics)


async def _nothing_written(api: httpx.AsyncClient) -> None:
    empty = await api.get(_url("C0000001"))
    assert empty.status_code == 503 and "no customer scores yet in the online store" in empty.json()["detail"]


async def _errors_and_metrics(api: httpx.AsyncClient) -> None:
    unknown = await api.get(_url("nobody"))
    assert unknown.status_code == 404 and unknown.json() == {"detail": "unknown customer_id 'nobody'"}
    assert (await api.get(_url("x" * 129))).status_code == 422
    before = metrics.REQUESTS.labels("GET", "/customers/{customer_id}/prediction", "200")._value.get()
    assert (await api.get(_url("C0000001"))).status_code == 200
    after = metrics.REQUESTS.labels("GET", "/customers/{customer_id}/prediction", "200")._value.get()
    assert after == before + 1


def test_a_redis_outage_is_the_routes_503_and_the_fast_path_recovers(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        store = RedisStore(server.url(0))
        write(store, reasons=False)
        asyncio.run(_outage(server, store))
        store.close()


async def _outage(server: PrivateRedis, store: RedisStore) -> None:
    async with client_of(store) as api:
        assert (await api.get(_url("C0000001"))).status_code == 200
        server.stop()
        down = await api.get(_url("C0000001"))
        assert down.status_code == 503
        assert down.json()["detail"].startswith(f"the online store {server.url(0)} cannot be read")
        server.start()
        write(store, reasons=False)  # the private server keeps nothing across a restart
        back = await api.get(_url("C0000001"))
        assert back.status_code == 200 and back.content == (await api.get(_url("C0000001") + "?x=1")).content


def test_scores_outside_0_1_are_refused_when_written() -> None:
    """The fast path answers the stored bytes unvalidated: the write validates them once."""
    with pytest.raises(ValueError, match="probabilities"):
        score_records(customers(), np.array([0.4, np.nan, 0.2]), "7")
    with pytest.raises(ValueError, match="probabilities"):
        score_records(customers(), np.array([0.4, 1.5, 0.2]), "7")
