"""``GET /metrics``: Prometheus text."""

from __future__ import annotations

from fastapi import APIRouter, Response

from hvbuyer_serving import metrics

router = APIRouter()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
async def prometheus_metrics() -> Response:
    """Request counts, latency histogram, served model version/runtime, model load failures."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
