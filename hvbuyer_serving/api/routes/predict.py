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

import pydantic_core
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from hvbuyer_assets.core.feature_spec import REQUIRED_FIELDS
from hvbuyer_serving import inputs, metrics
from hvbuyer_serving.api import deps
from hvbuyer_serving.api.deps import RequestBody, StoreDep
from hvbuyer_serving.api.errors import issues, region_issue, responses, unknown_regions, unprocessable
from hvbuyer_serving.api.openapi import request_body
from hvbuyer_serving.model_store import ChampionStore, ServedModel
from hvbuyer_serving.schemas import (
    BATCH_EXAMPLE,
    SEED_EXAMPLE,
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
)
from hvbuyer_serving.settings import MAX_BATCH_ROWS

router = APIRouter()
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
    responses=responses(413, 422, 503),
    openapi_extra=request_body(PredictRequest, SEED_EXAMPLE),
    summary="Score one customer",
    description="Probability that this customer makes a large purchase within the horizon (body: "
    f"`PredictRequest`).\n\n{VALIDATION}",
)
async def predict(request: Request) -> Response:
    """Score one customer (the route's description above is what the API documents)."""
    # dependencies called, not declared: the single-row hot path (see api/deps.py)
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
    proba = float(served.predict(inputs.row_matrix(row), region)[0])
    metrics.PREDICTED_ROWS.labels("/predict").inc()
    return Response(
        json.dumps({"large_purchase_probability": proba, "model_version": served.version}),
        media_type="application/json",
    )


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=responses(413, 422, 503),
    openapi_extra=request_body(BatchRequest, BATCH_EXAMPLE),
    summary=f"Score up to {MAX_BATCH_ROWS:,} customers in one call",
    description=f"Probabilities for up to {MAX_BATCH_ROWS:,} customers (body: `BatchRequest`), in request order, "
    f"one ONNX call.\n\n{VALIDATION}",
)
async def predict_batch(body: RequestBody, store: StoreDep) -> Response:
    """Score a batch (the route's description above is what the API documents)."""
    if len(body) >= LARGE_BODY:  # parse and score off the event loop: single-row calls keep flowing meanwhile
        return await asyncio.to_thread(score_batch, body, store)
    return score_batch(body, store)


def score_batch(body: bytes, store: ChampionStore) -> Response:
    """Validate (422 before 503, as for single rows) and score a batch body on the current champion."""
    parsed = inputs.fast_batch(body, MAX_BATCH_ROWS)
    if parsed is None:  # not plainly valid: pydantic decides (and words the 422)
        try:
            rows = BatchRequest.model_validate_json(body).rows
        except ValidationError as exc:
            return unprocessable(issues(exc, ["body"]) + _sent_unknown_regions(store.current, body, exc, batch=True))
        parsed = inputs.numeric_matrix(rows), inputs.regions(rows)
    matrix, region = parsed
    served = deps.served_model(store)
    unknown = unknown_regions(served.regions, region, ["body", "rows"])
    if unknown:
        return unprocessable(unknown)
    proba = served.predict(matrix, region)
    metrics.PREDICTED_ROWS.labels("/predict/batch").inc(len(region))
    return Response(
        json.dumps({"large_purchase_probability": proba.tolist(), "model_version": served.version}),
        media_type="application/json",
    )


def _sent_unknown_regions(
    served: ServedModel | None, body: bytes, exc: ValidationError, batch: bool
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
