"""``POST /admin/reload``: re-resolve the champion now (bearer token ``HVBUYER_ADMIN_TOKEN``)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from hvbuyer_serving.api.deps import AdminDep, StoreDep
from hvbuyer_serving.api.errors import responses
from hvbuyer_serving.schemas import ReloadResponse

router = APIRouter()


@router.post(
    "/admin/reload",
    response_model=ReloadResponse,
    responses=responses(401, 403),
    summary="Re-resolve the champion now",
)
async def admin_reload(_admin: AdminDep, store: StoreDep) -> ReloadResponse:
    """Load the version holding alias ``champion`` now (retrying a rejected one). Needs
    ``Authorization: Bearer $HVBUYER_ADMIN_TOKEN``; disabled (403) when the variable is unset."""
    changed = await asyncio.to_thread(store.refresh, True)
    served = store.current
    return ReloadResponse(
        changed=changed,
        model_version=served.version if served else None,
        runtime=served.runtime if served else None,
        last_error=store.last_error,
        rejected_version=store.rejected_version,
    )
