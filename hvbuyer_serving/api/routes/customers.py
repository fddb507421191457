"""``GET /customers/{customer_id}/prediction``: a customer's latest batch score and features, one key of the
online store (``HVBUYER_ONLINE_STORE``) per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from hvbuyer_serving import explain as explaining
from hvbuyer_serving.api.deps import CustomersDep, StoreDep
from hvbuyer_serving.api.errors import responses, unprocessable
from hvbuyer_serving.online_store import StoreUnavailable
from hvbuyer_serving.schemas import CustomerPrediction

router = APIRouter()
EXPLAIN = (
    "K: also answer the K features that moved this score most (exact TreeSHAP): the reasons the scoring stored, "
    "or computed from the stored features when the served champion made the score (422 otherwise)"
)


@router.get(
    "/customers/{customer_id}/prediction",
    response_model=CustomerPrediction,
    responses=responses(404, 422, 503),
    summary="A customer's latest batch score and features",
)
def customer_prediction(
    customers: CustomersDep,
    store: StoreDep,
    customer_id: Annotated[str, Path(min_length=1, max_length=128)],
    explain: Annotated[int | None, Query(ge=1, le=explaining.FEATURE_COUNT, description=EXPLAIN)] = None,
) -> CustomerPrediction | Response:
    """From the online store the latest ``customer_scores`` run wrote (its committed version)."""
    try:
        found = customers.lookup(customer_id)
    except StoreUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    if found is None:
        raise HTTPException(404, f"unknown customer_id {customer_id!r}")
    if explain is not None:
        try:
            found["explanation"] = explaining.explain_record(store.current, found, explain)
        except explaining.ExplainRefused as exc:
            return unprocessable([exc.issue])
    return CustomerPrediction.model_validate(found)
