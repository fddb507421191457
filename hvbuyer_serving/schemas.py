"""Request and response models of the prediction API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """One customer. Demographics as in the seed example; behaviour fields are optional and, when omitted,
    mean "no purchase history known" (exactly what the batch features give a customer without transactions)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"age": 35, "region": "East", "loyalty_points": 1200}]},
    )

    age: float | None = Field(None, ge=0, le=120, description="Age in years.")
    region: str | None = Field(None, max_length=64, description="Region; case and spaces are normalised.")
    loyalty_points: float | None = Field(None, ge=0, description="Current loyalty points balance.")
    tenure_days: float | None = Field(None, ge=0, description="Days since signup.")
    n_transactions: float | None = Field(None, ge=0)
    n_completed: float | None = Field(None, ge=0)
    n_completed_30d: float | None = Field(None, ge=0)
    n_completed_90d: float | None = Field(None, ge=0)
    n_completed_365d: float | None = Field(None, ge=0)
    total_spend: float | None = Field(None, ge=0)
    spend_90d: float | None = Field(None, ge=0)
    spend_365d: float | None = Field(None, ge=0)
    avg_spend: float | None = Field(None, ge=0)
    max_spend: float | None = Field(None, ge=0)
    last_amount: float | None = Field(None, ge=0)
    n_large: float | None = Field(None, ge=0)
    share_large: float | None = Field(None, ge=0, le=1)
    days_since_last_purchase: float | None = Field(None, ge=0)
    days_since_first_purchase: float | None = Field(None, ge=0)
    refund_rate: float | None = Field(None, ge=0, le=1)
    n_failed: float | None = Field(None, ge=0)


class PredictResponse(BaseModel):
    """The champion's probability of a large purchase in the horizon, and which version answered."""

    large_purchase_probability: float = Field(..., ge=0, le=1)
    model_version: str


class HealthResponse(BaseModel):
    """Liveness plus the loaded model version (null until a champion exists)."""

    status: str
    model_version: str | None
