"""``GET /customers/{customer_id}/prediction``: a customer's latest batch score and features, one key of the
online store (``HVBUYER_ONLINE_STORE``) per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from hvbuyer_serving.api.deps import CustomersDep
from hvbuyer_serving.api.errors import responses
from hvbuyer_serving.online_store import StoreUnavailable
from hvbuyer_serving.schemas import CustomerPrediction

router = APIRouter()


@router.get(
    "/customers/{customer_id}/prediction",
    response_model=CustomerPrediction,
    responses=responses(404, 503),
    summary="A customer's latest batch score and features",
)
def customer_prediction(
    customers: CustomersDep, customer_id: Annotated[str, Path(min_length=1, max_length=128)]
) -> CustomerPrediction:
    """From the online store the latest ``customer_scores`` run wrote (its committed version)."""
    try:
        found = customers.lookup(customer_id)
    except StoreUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    if found is None:
        raise HTTPException(404, f"unknown customer_id {customer_id!r}")
    return CustomerPrediction.model_validate(found)
