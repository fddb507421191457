"""The fast path of ``GET /customers/{customer_id}/prediction`` (no query string), taken by the outermost layer
of the application's middleware stack (``FastLookup``, installed by ``app.create_app``): it answers the stored
bytes of the online store's record as they are (``OnlineStore.answer``), read on the event loop, without
FastAPI's middleware, routing, dependency resolution, worker-thread hop and pydantic validation (a look-up's cost
was those, not the store's read: docs/api.md). It records the request in the metrics as the route would.

Anything else goes on to the FastAPI route, which stays the one definition of the endpoint: ``?explain=K``, an id
the route would refuse (422), an unknown customer (404), a store with nothing written yet or unreachable or
unreadable (503 naming the store), a record in another layout. So every answer but the plain 200 is the route's
own, and the plain 200 is byte for byte the route's (``hvbuyer_tests/serving/test_fast_lookup.py``).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from hvbuyer_serving import metrics

PREFIX, SUFFIX = "/customers/", "/prediction"
TEMPLATE = "/customers/{customer_id}/prediction"
MAX_ID = 128  # the route's Path(max_length=128)
HEADERS = [(b"content-type", b"application/json")]

log = logging.getLogger(__name__)


class FastLookup:
    """The outermost ASGI layer of ``app``'s middleware stack ``inner``: a plain look-up is answered here."""

    def __init__(self, inner: Any, app: Any) -> None:
        self.inner, self.app = inner, app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and await answered(self.app, scope, send):
            return
        await self.inner(scope, receive, send)


async def answered(app: Any, scope: dict[str, Any], send: Any) -> bool:
    """Answer a plain look-up (``GET``, no query string) from ``app.state.customers`` and record it in the
    metrics as the route would; False, having sent nothing, for every other request."""
    if scope["method"] != "GET" or scope["query_string"] or scope.get("root_path"):
        return False
    path: str = scope["path"]
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return False
    customer_id = path[len(PREFIX) : -len(SUFFIX)]
    if not 0 < len(customer_id) <= MAX_ID or "/" in customer_id:
        return False
    started = time.perf_counter()
    store = getattr(app.state, "customers", None)
    try:
        body = None if store is None else await store.answer(customer_id)
    except Exception as exc:  # the route reads again and words the 503 (or answers if the store is back)
        log.debug("fast look-up of %r fell back to the route: %s", customer_id, exc)
        return False
    if body is None:
        return False
    headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    requests, latency = _series()
    requests.inc()
    latency.observe(time.perf_counter() - started)
    return True


@functools.cache
def _series() -> tuple[Any, Any]:
    """The route's request counter (status 200) and latency histogram (bound once: ``labels`` is a lookup)."""
    return metrics.REQUESTS.labels("GET", TEMPLATE, "200"), metrics.LATENCY.labels(TEMPLATE)
