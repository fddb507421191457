"""``GET /customers/{customer_id}/prediction``: a customer's latest batch score and features."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from hvbuyer_serving.api.deps import CustomersDep
from hvbuyer_serving.api.errors import responses
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
    """From the latest ``customer_scores`` and ``customer_features`` assets (re-read when they change)."""
    try:
        found = customers.lookup(customer_id)
    except LookupError as exc:
        raise HTTPException(503, str(exc)) from exc
    if found is None:
        raise HTTPException(404, f"unknown customer_id {customer_id!r}")
    return CustomerPrediction.model_validate(found)
