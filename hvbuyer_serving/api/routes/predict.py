"""``POST /predict`` and ``POST /predict/batch``: the champion's probability of a large purchase.

Both read and validate the JSON body themselves (``model_validate_json``, or ``inputs.fast_batch`` for a
plainly valid batch: no intermediate dict, no DataFrame) and write the response bytes directly; the OpenAPI
document still describes both bodies (``api.openapi``). A 422 lists every invalid field at once: the schema's
errors and, when a model is served, the regions it does not know.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pydantic_core
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from hvbuyer_assets.core.feature_spec import REQUIRED_FIELDS
from hvbuyer_serving import columns, explain, inputs, metrics
from hvbuyer_serving.api import deps
from hvbuyer_serving.api.errors import issues, region_issue, responses, unknown_regions, unprocessable
from hvbuyer_serving.api.openapi import batch_request_body, request_body
from hvbuyer_serving.model_store import ChampionStore, ServedModel
from hvbuyer_serving.schemas import (
    SEED_EXAMPLE,
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
)
from hvbuyer_serving.settings import MAX_BATCH_ROWS

router = APIRouter()
EXPLAIN_PARAMETER = {
    "name": "explain",
    "in": "query",
    "required": False,
    "description": "K: also answer the K features that pushed the probability up or down most, with their exact "
    f"TreeSHAP contributions (1 to {explain.FEATURE_COUNT}; batches of up to {explain.MAX_EXPLAIN_ROWS:,} rows)",
    "schema": {"type": "integer", "minimum": 1, "maximum": explain.FEATURE_COUNT},
}
LARGE_BODY = 64 * 1024  # from this size on, a batch is parsed and scored off the event loop
_REQUIRED = ", ".join(f"`{name}`" for name in REQUIRED_FIELDS)
VALIDATION = (
    f"**Required:** {_REQUIRED} (the seed example's fields) must be present in every customer; `null` means "
    "unknown. A body without them, such as `{}`, is refused with 422 rather than scored as a customer about whom "
    "nothing is known: a client that sent nothing most likely has a bug. The behaviour fields are optional; "
    "omitted means no purchase history known.\n\n"
    "**422** lists every invalid field in one response: missing, mistyped or out-of-range fields, unknown "
    "fields, and regions the served model does not know."
)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=responses(413, 415, 422, 503),
    openapi_extra={**request_body(PredictRequest, SEED_EXAMPLE), "parameters": [EXPLAIN_PARAMETER]},
    summary="Score one customer",
    description="Probability that this customer makes a large purchase within the horizon (body: "
    f"`PredictRequest`).\n\n{VALIDATION}",
)
async def predict(request: Request) -> Response:
    """Score one customer (the route's description above is what the API documents)."""
    # dependencies called, not declared: the single-row hot path (see api/deps.py)
    deps.media_type(request, (deps.JSON,))
    body = await deps.read_body(request)
    store = await deps.get_store(request)
    try:
        row = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        return unprocessable(issues(exc, ["body"]) + _sent_unknown_regions(store.current, body, exc, batch=False))
    served = deps.served_model(store)
    region = [inputs.normalised_region(row.region)]
    if region[0] not in served.regions:
        return unprocessable(unknown_regions(served.regions, region, ["body"]))
    matrix = inputs.row_matrix(row)
    proba = float(served.predict(matrix, region)[0])
    metrics.PREDICTED_ROWS.labels("/predict").inc()
    answer: dict[str, Any] = {"large_purchase_probability": proba, "model_version": served.version}
    if request.scope["query_string"]:  # ?explain=K (parsed only when a query string was sent: the hot path)
        try:
            k = explain.requested(request.query_params.get("explain"))
            if k is not None:  # ~1-10 ms of numpy: off the event loop
                answer["explanation"] = (await asyncio.to_thread(explain.explain_served, served, matrix, region, k))[0]
        except explain.ExplainRefused as exc:
            return unprocessable([exc.issue])
    return Response(json.dumps(answer), media_type="application/json")


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=responses(413, 415, 422, 503),
    openapi_extra={**batch_request_body(), "parameters": [EXPLAIN_PARAMETER]},
    summary=f"Score up to {MAX_BATCH_ROWS:,} customers in one call",
    description=f"Probabilities for up to {MAX_BATCH_ROWS:,} customers, in request order, one ONNX call. Three "
    'forms of body: `application/json` rows (`BatchRequest`: `{"rows": [<customer>, ...]}`), `application/json` '
    'columns (`{"columns": {"age": [...], "region": [...], ...}}`, one list per field, all as long), or an '
    "Apache Arrow IPC stream (`application/vnd.apache.arrow.stream`, one column per field: numbers or null, "
    f"region strings). Every form follows the same rules.\n\n{VALIDATION}",
)
async def predict_batch(request: Request) -> Response:
    """Score a batch (the route's description above is what the API documents)."""
    media = deps.media_type(request, (deps.JSON, deps.ARROW_STREAM))
    body = await deps.read_body(request)
    store = await deps.get_store(request)
    raw_k = request.query_params.get("explain")
    if len(body) >= LARGE_BODY or raw_k:  # parse, score (and explain) off the event loop
        return await asyncio.to_thread(score_batch, body, media, store, raw_k)
    return score_batch(body, media, store)


def score_batch(body: bytes, media: str, store: ChampionStore, raw_k: str | None = None) -> Response:
    """Validate (422 before 503, as for single rows) and score a batch body of any form on the current champion,
    explaining each row with ``?explain=K``."""
    columnar = media == deps.ARROW_STREAM
    try:
        parsed = columns.arrow_columns(body, MAX_BATCH_ROWS) if columnar else inputs.fast_batch(body, MAX_BATCH_ROWS)
        if parsed is None:  # not plainly valid rows: JSON columns, or pydantic decides (and words the 422)
            data = _json(body)
            if isinstance(data, dict) and "columns" in data and "rows" not in data:
                columnar, parsed = True, columns.json_columns(data, MAX_BATCH_ROWS)
            else:
                try:
                    rows = BatchRequest.model_validate_json(body).rows
                except ValidationError as exc:
                    return unprocessable(issues(exc, ["body"]) + _sent_unknown_regions(store.current, body, exc))
                parsed = inputs.numeric_matrix(rows), inputs.regions(rows)
    except columns.Invalid as exc:
        return unprocessable(exc.issues + _column_unknown_regions(store.current, exc))
    matrix, region = parsed
    served = deps.served_model(store)
    unknown = unknown_regions(served.regions, region, ["body", "rows"])
    if unknown:
        if columnar:  # located as the columnar forms locate every issue: column, then row
            unknown = [{**issue, "loc": [*columns.PREFIX, "region", issue["loc"][2]]} for issue in unknown]
        return unprocessable(unknown)
    try:
        k = explain.requested(raw_k, len(region))
        reasons = None if k is None else explain.explain_served(served, matrix, region, k)
    except explain.ExplainRefused as exc:
        return unprocessable([exc.issue])
    proba = served.predict(matrix, region)
    metrics.PREDICTED_ROWS.labels("/predict/batch").inc(len(region))
    answer: dict[str, Any] = {"large_purchase_probability": proba.tolist(), "model_version": served.version}
    if reasons is not None:
        answer["explanations"] = reasons
    return Response(msgspec.json.encode(answer), media_type="application/json")


def _json(body: bytes) -> Any:
    """The decoded body, or None when it is not JSON (pydantic then words the error)."""
    try:
        return pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError:
        return None


def _column_unknown_regions(served: ServedModel | None, exc: columns.Invalid) -> list[dict[str, Any]]:
    """Unknown-region issues of a columnar body refused for other reasons (at most 20), so that one 422 names
    every invalid field."""
    if served is None or exc.regions is None:
        return []
    flagged = {tuple(issue["loc"]) for issue in exc.issues}
    found = []
    for row, value in enumerate(exc.regions):
        loc: list[str | int] = [*columns.PREFIX, "region", row]
        if isinstance(value, str) and tuple(loc) not in flagged:
            normalised = inputs.normalised_region(value)
            if normalised not in served.regions:
                found.append(region_issue(loc, normalised, served.regions))
                if len(found) == 20:
                    break
    return found


def _sent_unknown_regions(
    served: ServedModel | None, body: bytes, exc: ValidationError, batch: bool = True
) -> list[dict[str, Any]]:
    """Unknown-region issues of a body that failed validation for other reasons, so that one 422 names every
    invalid field (nothing when no model is served yet, or the body is not JSON)."""
    if served is None:
        return []
    try:
        data = pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError:
        return []
    if batch:
        rows = data.get("rows") if isinstance(data, dict) else None
        located = list(enumerate(rows)) if isinstance(rows, list) else []
        prefix: list[str | int] = ["body", "rows"]
    else:
        located, prefix = [(None, data)], ["body"]
    invalid = {tuple(err["loc"]) for err in exc.errors(include_url=False)}
    found = []
    for index, row in located:
        loc = [*prefix, *([] if index is None else [index]), "region"]
        if not isinstance(row, dict) or not isinstance(row.get("region"), str) or tuple(loc[1:]) in invalid:
            continue
        value = inputs.normalised_region(row["region"])
        if value not in served.regions:
            found.append(region_issue(loc, value, served.regions))
            if len(found) == 20:
                break
    return found
