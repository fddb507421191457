"""Production mode's online store is Redis (``HVBUYER_ONLINE_STORE``): the scoring on the Celery workers wrote it,
the API answers customer look-ups from it, and a store outage is a 503 naming the store, never a 500, until it is
back (the session's own redis-server, stopped and started; the machine's Redis is never touched)."""

from __future__ import annotations

import pytest

from hvbuyer_tests.prod.deployment import PROD_MARKS, Deployment, Outcome, api_get, wait_for
from hvbuyer_tests.prod.scenario import read_table
from hvbuyer_tests.serving.redis_server import PrivateRedis

pytestmark = PROD_MARKS


def test_an_online_store_outage_is_a_503_naming_the_store_then_recovers(
    prod: Deployment, first_build: Outcome, online_redis: PrivateRedis
) -> None:
    assert first_build.run["status"] == "SUCCESS", first_build.run
    assert prod.env["HVBUYER_ONLINE_STORE"] == online_redis.url(2)
    scores = read_table(prod, "scores/customer_scores.parquet")
    row = scores.iloc[len(scores) // 3]
    url = f"/customers/{row['customer_id']}/prediction"
    before = api_get(prod, url)
    assert before.status_code == 200, before.text
    assert before.json()["large_purchase_probability"] == pytest.approx(float(row["large_purchase_probability"]))
    assert before.json()["model_version"] == str(row["model_version"])

    online_redis.stop()
    try:
        down = api_get(prod, url)
        assert down.status_code == 503, down.text
        assert down.json()["detail"].startswith(f"the online store {online_redis.url(2)} cannot be read")
        assert api_get(prod, "/health/live").status_code == 200  # the process itself is fine
    finally:
        online_redis.start()
    wait_for(lambda: api_get(prod, url).status_code == 200, "look-ups answering again", timeout=60)
    assert api_get(prod, url).json() == before.json()  # the append-only file kept the committed version
    statuses = [line for line in api_get(prod, "/metrics").text.splitlines() if "/customers/{customer_id}" in line]
    assert not any('status="500"' in line for line in statuses), statuses
