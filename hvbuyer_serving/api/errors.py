"""Error bodies: 422 listing every invalid field (``loc``, ``msg``, ``type``), ``{"detail": ...}`` otherwise,
never a stack trace; the documented error responses of the routes."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from hvbuyer_serving.schemas import ErrorResponse, ValidationErrorResponse

log = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "Admin endpoints disabled (HVBUYER_ADMIN_TOKEN unset)."},
    404: {"model": ErrorResponse, "description": "Not found."},
    413: {"model": ErrorResponse, "description": "Request body too large."},
    415: {"model": ErrorResponse, "description": "Unsupported content type: the detail names the accepted ones."},
    422: {"model": ValidationErrorResponse, "description": "Invalid request: every offending field is listed."},
    503: {"model": ErrorResponse, "description": "No champion model loaded yet (or no scores yet)."},
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of these error codes."""
    return {code: ERRORS[code] for code in codes}


def issues(exc: ValidationError, prefix: Sequence[str | int]) -> list[dict[str, Any]]:
    """Every error of a pydantic validation, located under ``prefix`` (e.g. ``["body"]``)."""
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def region_issue(loc: list[str | int], value: str, known: Collection[str]) -> dict[str, Any]:
    """The issue of a (normalised) region the model was not trained on, listing the known ones."""
    listing = ", ".join(sorted(known))
    return {"loc": loc, "msg": f"unknown region {value!r}; known regions: {listing}", "type": "value_error"}


def unknown_regions(known: Collection[str], region: list[str], prefix: Sequence[str | int]) -> list[dict[str, Any]]:
    """Issues for the regions of validated rows the model was not trained on (at most 20)."""
    bad = [i for i, value in enumerate(region) if value not in known][:20]
    return [region_issue([*prefix, *([i] if len(prefix) > 1 else []), "region"], region[i], known) for i in bad]


def unprocessable(detail: list[dict[str, Any]]) -> Response:
    """The 422 response of these issues."""
    return Response(json.dumps({"detail": detail}), status_code=422, media_type="application/json")


async def _request_invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return unprocessable(
        [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
    )


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that went away before the answer: not a server error


async def _client_gone(request: Request, exc: Exception) -> Response:
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)  # recorded in /metrics; nobody is left to read it


def install(app: FastAPI) -> None:
    """Register the error handlers on the app."""
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(Exception, _internal_error)
