"""``GET /``: the API's home is its documentation (``/docs``, Swagger UI; ``/redoc``, ReDoc; both served with
their assets from the ``fastapi-offline`` package, so they render without internet)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def home(request: Request) -> RedirectResponse:
    """Redirect to the interactive documentation."""
    return RedirectResponse(f"{request.scope.get('root_path', '')}{DOCS_URL}")
