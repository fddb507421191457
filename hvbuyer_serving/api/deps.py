"""Dependencies of the routes, as ``Annotated[..., Depends(...)]`` aliases: the settings, the champion store,
the online store, the admin token check and the size-limited request body.

The objects live on ``app.state`` (set by the lifespan in ``hvbuyer_serving.app``); only this module reads it.
Every dependency is ``async`` so FastAPI calls it on the event loop (a sync one costs a thread hop per request).

``POST /predict`` calls ``read_body`` / ``get_store`` / ``served_model`` directly instead of declaring them:
FastAPI 0.165 spends ~15 us of CPU resolving each declared dependency, which on a single-row call (~280 us
over HTTP) would cost ~10 % of the throughput the README quotes (measured in-process: 120 us per call
without, 160-185 us with two).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hvbuyer_serving.model_store import ChampionStore, ServedModel
from hvbuyer_serving.online_store import OnlineStore
from hvbuyer_serving.settings import ServingSettings

bearer = HTTPBearer(auto_error=False, description="HVBUYER_ADMIN_TOKEN")


async def get_settings(request: Request) -> ServingSettings:
    """The service's settings (read once at start-up)."""
    return request.app.state.settings


async def get_store(request: Request) -> ChampionStore:
    """The store following the registry's ``champion`` alias."""
    return request.app.state.store


async def get_customers(request: Request) -> OnlineStore:
    """The online store of the latest batch scores and features, by customer."""
    return request.app.state.customers


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
StoreDep = Annotated[ChampionStore, Depends(get_store)]
CustomersDep = Annotated[OnlineStore, Depends(get_customers)]


def served_model(store: ChampionStore) -> ServedModel:
    """The champion being served now (503 until one is loaded). A request keeps this one to the end even if
    a new version is swapped in meanwhile."""
    served = store.current
    if served is None:
        raise HTTPException(503, "no champion model is loaded yet")
    return served


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 beyond ``HVBUYER_MAX_BODY_BYTES`` (declared or streamed)."""
    limit = (await get_settings(request)).max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


RequestBody = Annotated[bytes, Depends(read_body)]

JSON = "application/json"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def media_type(request: Request, accepted: tuple[str, ...]) -> str:
    """The body's media type (parameters such as ``charset`` aside), refused with 415 naming the accepted ones
    unless it is one of ``accepted`` (a form, text, XML, an image or no type is never read as JSON)."""
    given = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if given not in accepted:
        sent = f"content type {given!r}" if given else "no content type"
        raise HTTPException(415, f"unsupported media type: {sent}; send {' or '.join(accepted)}")
    return given


async def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
) -> None:
    """``Authorization: Bearer $HVBUYER_ADMIN_TOKEN`` (401 otherwise); 403 while the token is unset."""
    if settings.admin_token is None:
        raise HTTPException(403, "admin endpoints are disabled: set HVBUYER_ADMIN_TOKEN to enable them")
    given = "" if credentials is None else credentials.credentials
    if not hmac.compare_digest(given.encode(), settings.admin_token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


AdminDep = Annotated[None, Depends(require_admin)]
