"""``GET /health``, ``/health/live`` and ``/health/ready``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from hvbuyer_serving.api.deps import StoreDep
from hvbuyer_serving.schemas import HealthResponse, LiveResponse, ReadyResponse

router = APIRouter()


@router.get("/health", response_model=HealthResponse, summary="Liveness and served version")
async def health(store: StoreDep) -> HealthResponse:
    """Service liveness and the champion version being served."""
    loaded = store.current
    return HealthResponse(status="ok" if loaded else "no_model", model_version=loaded.version if loaded else None)


@router.get("/health/live", response_model=LiveResponse, summary="The process answers")
async def health_live() -> LiveResponse:
    """Always 200 while the process serves HTTP."""
    return LiveResponse(status="ok")


@router.get(
    "/health/ready",
    response_model=ReadyResponse,
    response_model_exclude_none=True,
    responses={503: {"model": ReadyResponse, "description": "No verified model loaded yet."}},
    summary="Ready to predict",
)
async def health_ready(store: StoreDep) -> Response:
    """200 with a loaded, verified champion, 503 without one. While the registry cannot be reached the loaded
    version keeps answering, so the service stays in rotation (200) with ``status: degraded`` and the ``reason``
    (it would not follow a new champion until the registry answers again)."""
    status, reason = store.readiness()
    served = store.current
    if served is None:
        return JSONResponse(ReadyResponse(status=status).model_dump(exclude_none=True), status_code=503)
    body = ReadyResponse(status=status, model_version=served.version, runtime=served.runtime, reason=reason)
    return JSONResponse(body.model_dump(exclude_none=True))
