"""Prometheus metrics of the service: requests by endpoint/status, latency histogram, served model, failures."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # no ``*_created`` series next to every counter
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

REQUESTS = Counter(
    "hvbuyer_http_requests",
    "HTTP requests by method, route and status.",
    ["method", "endpoint", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "hvbuyer_http_request_duration_seconds",
    "Time from request start to the end of the response, by route.",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=REGISTRY,
)
PREDICTED_ROWS = Counter("hvbuyer_predicted_rows", "Rows scored, by route.", ["endpoint"], registry=REGISTRY)
MODEL_INFO = Gauge(
    "hvbuyer_model_info",
    "The served champion version and runtime (value 1).",
    ["version", "runtime"],
    registry=REGISTRY,
)
MODEL_VERSION = Gauge("hvbuyer_model_version", "Served champion version number (0: none).", registry=REGISTRY)
MODEL_LOAD_FAILURES = Counter(
    "hvbuyer_model_load_failures",
    "Champion versions that failed to load or verify (never served).",
    registry=REGISTRY,
)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def model_swapped(version: str, runtime: str) -> None:
    """Record the newly served version."""
    MODEL_INFO.clear()
    MODEL_INFO.labels(version=version, runtime=runtime).set(1)
    MODEL_VERSION.set(float(version) if version.isdigit() else 0)


def exposition() -> bytes:
    """The Prometheus text format of every metric."""
    return generate_latest(REGISTRY)


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task or body copy): counts and times every HTTP request by the
    route template it matched (``/customers/{customer_id}/prediction``, not the raw path)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(scope["method"], endpoint, str(status)).inc()
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
