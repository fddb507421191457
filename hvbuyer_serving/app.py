"""The prediction API: serves the registry's ``champion`` (ONNX Runtime) and follows the alias without a restart.

Run: ``uvicorn hvbuyer_serving.app:app --host 127.0.0.1 --port 8080`` or ``python -m hvbuyer_serving``.

The prediction endpoints read and validate the JSON body themselves (``model_validate_json``: no intermediate
dict, no DataFrame) and write the response bytes directly; the OpenAPI document still describes both bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from hvbuyer_assets import registry
from hvbuyer_assets.core import features
from hvbuyer_serving import inputs, metrics
from hvbuyer_serving.customers import CustomerScores
from hvbuyer_serving.model_store import ChampionStore, ServedModel
from hvbuyer_serving.schemas import (
    BatchRequest,
    BatchResponse,
    CustomerPrediction,
    ErrorResponse,
    HealthResponse,
    LiveResponse,
    ModelInfo,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
    ReloadResponse,
    ValidationErrorResponse,
)
from hvbuyer_serving.settings import MAX_BATCH_ROWS, ServingSettings, load_serving_settings

log = logging.getLogger("hvbuyer.serving")
bearer = HTTPBearer(auto_error=False, description="HVBUYER_ADMIN_TOKEN")


async def _follow_champion(store: ChampionStore, poll_seconds: float) -> None:
    while True:
        try:
            await asyncio.to_thread(store.refresh)
        except Exception:  # the registry may be briefly unreachable; keep serving and retry
            log.exception("could not re-resolve the champion alias")
        await asyncio.sleep(poll_seconds)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_serving_settings()
    app.state.settings = settings
    app.state.store = ChampionStore(settings.mlflow_tracking_uri)
    app.state.customers = CustomerScores(settings.data_dir, settings.s3_endpoint_url)
    task = asyncio.create_task(_follow_champion(app.state.store, settings.poll_seconds))
    try:
        yield
    finally:
        task.cancel()


app = FastAPI(
    title="hvbuyer",
    version="0.2.0",
    lifespan=lifespan,
    description="P(large purchase in the next 90 days) from the MLflow champion model, served with ONNX Runtime.",
)
app.add_middleware(metrics.MetricsMiddleware)


# ---------------------------------------------------------------------------------------------- errors


@app.exception_handler(Exception)
async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def _issues(exc: ValidationError, prefix: Sequence[str | int]) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _unprocessable(detail: list[dict[str, Any]]) -> Response:
    return Response(json.dumps({"detail": detail}), status_code=422, media_type="application/json")


@app.exception_handler(RequestValidationError)
async def _request_invalid(request: Request, exc: RequestValidationError) -> Response:
    return _unprocessable(
        [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    403: {"model": ErrorResponse, "description": "Admin endpoints disabled (HVBUYER_ADMIN_TOKEN unset)."},
    404: {"model": ErrorResponse, "description": "Not found."},
    413: {"model": ErrorResponse, "description": "Request body too large."},
    422: {"model": ValidationErrorResponse, "description": "Invalid request: every offending field is listed."},
    503: {"model": ErrorResponse, "description": "No champion model loaded yet (or no scores yet)."},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERRORS[code] for code in codes}


def _body(model: type, example: dict[str, Any]) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "content": content}}


async def _read_body(request: Request) -> bytes:
    """The request body, refused with 413 beyond ``HVBUYER_MAX_BODY_BYTES`` (declared or streamed)."""
    limit = request.app.state.settings.max_body_bytes
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


def _served(request: Request) -> ServedModel:
    served = request.app.state.store.current
    if served is None:
        raise HTTPException(503, "no champion model is loaded yet")
    return served


def _unknown_regions(served: ServedModel, region: list[str], prefix: Sequence[str | int]) -> list[dict[str, Any]]:
    known = served.regions
    bad = [i for i, value in enumerate(region) if value not in known]
    listing = ", ".join(sorted(known))
    return [
        {
            "loc": [*prefix, *([i] if len(prefix) > 1 else []), "region"],
            "msg": f"unknown region {region[i]!r}; known regions: {listing}",
            "type": "value_error",
        }
        for i in bad[:20]
    ]


# ---------------------------------------------------------------------------------------------- prediction

SEED_EXAMPLE = {"age": 35, "region": "East", "loyalty_points": 1200}


@app.post(
    "/predict",
    response_model=PredictResponse,
    responses=_errors(413, 422, 503),
    openapi_extra=_body(PredictRequest, SEED_EXAMPLE),
    summary="Score one customer",
)
async def predict(request: Request) -> Response:
    """Probability that this customer makes a large purchase within the horizon (body: ``PredictRequest``)."""
    body = await _read_body(request)
    try:
        row = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        return _unprocessable(_issues(exc, ["body"]))
    served = _served(request)
    region = [inputs.normalised_region(row.region)]
    if region[0] not in served.regions:
        return _unprocessable(_unknown_regions(served, region, ["body"]))
    proba = float(served.predict(inputs.row_matrix(row), region)[0])
    metrics.PREDICTED_ROWS.labels("/predict").inc()
    return Response(
        json.dumps({"large_purchase_probability": proba, "model_version": served.version}),
        media_type="application/json",
    )


@app.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=_errors(413, 422, 503),
    openapi_extra=_body(BatchRequest, {"rows": [SEED_EXAMPLE, {"age": 61, "region": "west"}]}),
    summary=f"Score up to {MAX_BATCH_ROWS:,} customers in one call",
)
async def predict_batch(request: Request) -> Response:
    """Probabilities for up to 10,000 customers (body: ``BatchRequest``), in request order, one ONNX call."""
    body = await _read_body(request)
    store: ChampionStore = request.app.state.store
    if len(body) >= LARGE_BODY:  # parse and score off the event loop: single-row calls keep flowing meanwhile
        return await asyncio.to_thread(_score_batch, body, store)
    return _score_batch(body, store)


LARGE_BODY = 64 * 1024


def _score_batch(body: bytes, store: ChampionStore) -> Response:
    parsed = inputs.fast_batch(body, MAX_BATCH_ROWS)
    if parsed is None:  # not plainly valid: pydantic decides (and words the 422)
        try:
            rows = BatchRequest.model_validate_json(body).rows
        except ValidationError as exc:
            return _unprocessable(_issues(exc, ["body"]))
        parsed = inputs.numeric_matrix(rows), inputs.regions(rows)
    matrix, region = parsed
    served = store.current
    if served is None:
        raise HTTPException(503, "no champion model is loaded yet")
    unknown = _unknown_regions(served, region, ["body", "rows"])
    if unknown:
        return _unprocessable(unknown)
    proba = served.predict(matrix, region)
    metrics.PREDICTED_ROWS.labels("/predict/batch").inc(len(region))
    return Response(
        json.dumps({"large_purchase_probability": proba.tolist(), "model_version": served.version}),
        media_type="application/json",
    )


@app.get(
    "/customers/{customer_id}/prediction",
    response_model=CustomerPrediction,
    responses=_errors(404, 503),
    summary="A customer's latest batch score and features",
)
def customer_prediction(
    request: Request, customer_id: Annotated[str, Path(min_length=1, max_length=128)]
) -> CustomerPrediction:
    """From the latest ``customer_scores`` and ``customer_features`` assets (re-read when they change)."""
    try:
        found = request.app.state.customers.lookup(customer_id)
    except LookupError as exc:
        raise HTTPException(503, str(exc)) from exc
    if found is None:
        raise HTTPException(404, f"unknown customer_id {customer_id!r}")
    return CustomerPrediction.model_validate(found)


# ---------------------------------------------------------------------------------------------- model, health


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


@app.get("/model", response_model=ModelInfo, summary="The served champion")
async def model_info(request: Request) -> ModelInfo:
    """Version, alias, runtime, trained_at, data as-of, hold-out metrics, feature schema and load failures."""
    store: ChampionStore = request.app.state.store
    served = store.current
    common = {
        "alias": registry.CHAMPION_ALIAS,
        "checked_at": _iso(store.checked_at),
        "last_error": store.last_error,
        "rejected_version": store.rejected_version,
        "load_failures": store.load_failures,
    }
    if served is None:
        return ModelInfo(status="no_model", version=None, **common)
    tags = served.details.get("tags", {})
    return ModelInfo(
        status="serving",
        version=served.version,
        runtime=served.runtime,
        runtime_note=served.runtime_note,
        trained_at=served.details.get("trained_at"),
        data_as_of=tags.get(registry.DATA_AS_OF_TAG),
        holdout_cutoff=tags.get(registry.HOLDOUT_CUTOFF_TAG),
        metrics=served.details.get("metrics", {}),
        onnx_max_abs_diff=tags.get(registry.ONNX_DIFF_TAG),
        feature_schema={
            "numeric": [name for name in served.columns if name in features.FEATURE_NUMERIC],
            "categorical": {"region": sorted(served.regions)},
            "omitted_behaviour_means": "no purchase history known",
        },
        loaded_at=_iso(store.loaded_at),
        **common,
    )


@app.get("/health", response_model=HealthResponse, summary="Liveness and served version")
async def health(request: Request) -> HealthResponse:
    """Service liveness and the champion version being served."""
    loaded = request.app.state.store.current
    return HealthResponse(status="ok" if loaded else "no_model", model_version=loaded.version if loaded else None)


@app.get("/health/live", response_model=LiveResponse, summary="The process answers")
async def health_live() -> LiveResponse:
    """Always 200 while the process serves HTTP."""
    return LiveResponse(status="ok")


@app.get(
    "/health/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "No verified model loaded yet."}},
    summary="Ready to predict",
)
async def health_ready(request: Request) -> Response:
    """200 only with a loaded, verified champion; 503 otherwise."""
    served = request.app.state.store.current
    if served is None:
        return JSONResponse(ReadyResponse(status="not_ready").model_dump(), status_code=503)
    return JSONResponse(
        ReadyResponse(status="ready", model_version=served.version, runtime=served.runtime).model_dump()
    )


@app.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
async def prometheus_metrics() -> Response:
    """Request counts, latency histogram, served model version/runtime, model load failures."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


# ---------------------------------------------------------------------------------------------- admin


@app.post(
    "/admin/reload",
    response_model=ReloadResponse,
    responses=_errors(401, 403),
    summary="Re-resolve the champion now",
)
async def admin_reload(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
) -> ReloadResponse:
    """Load the version holding alias ``champion`` now (retrying a rejected one). Needs
    ``Authorization: Bearer $HVBUYER_ADMIN_TOKEN``; disabled (403) when the variable is unset."""
    settings: ServingSettings = request.app.state.settings
    if settings.admin_token is None:
        raise HTTPException(403, "admin endpoints are disabled: set HVBUYER_ADMIN_TOKEN to enable them")
    given = "" if credentials is None else credentials.credentials
    if not hmac.compare_digest(given.encode(), settings.admin_token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
    store: ChampionStore = request.app.state.store
    changed = await asyncio.to_thread(store.refresh, True)
    served = store.current
    return ReloadResponse(
        changed=changed,
        model_version=served.version if served else None,
        runtime=served.runtime if served else None,
        last_error=store.last_error,
        rejected_version=store.rejected_version,
    )


def _openapi() -> dict[str, Any]:
    """FastAPI's document plus the request bodies the prediction endpoints parse themselves."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (PredictRequest, BatchRequest):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(definition.pop("$defs", {}))
        components[model.__name__] = definition
    app.openapi_schema = schema
    return schema


app.openapi = _openapi  # type: ignore[method-assign]
