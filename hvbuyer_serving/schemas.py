"""Request and response models of the prediction API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hvbuyer_serving.settings import MAX_BATCH_ROWS


class PredictRequest(BaseModel):
    """One customer. Demographics as in the seed example; behaviour fields are optional and, when omitted,
    mean "no purchase history known" (exactly what the batch features give a customer without transactions)."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
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

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"large_purchase_probability": 0.1, "model_version": "1"}]}
    )


class BatchRequest(BaseModel):
    """Up to 10,000 customers in one call; answers come back in the same order."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"rows": [{"age": 35, "region": "East", "loyalty_points": 1200}, {"age": 61, "region": "west"}]}
            ]
        },
    )

    rows: list[PredictRequest] = Field(..., min_length=1, max_length=MAX_BATCH_ROWS)


class BatchResponse(BaseModel):
    """One probability per request row, in order, all from the same model version."""

    large_purchase_probability: list[float]
    model_version: str


class CustomerPrediction(BaseModel):
    """A customer's latest batch score (scores asset) and the features it was computed from."""

    customer_id: str
    large_purchase_probability: float
    model_version: str | None
    scored_at: str | None = None
    feature_as_of: str | None = None
    features: dict[str, float | str | None]


class ModelInfo(BaseModel):
    """The served champion: version, runtime, provenance, hold-out metrics, input schema, load failures."""

    status: str = Field(..., description="serving | no_model")
    version: str | None
    alias: str
    runtime: str | None = Field(None, description="onnx | sklearn (fallback when no verified ONNX graph)")
    runtime_note: str | None = None
    trained_at: str | None = None
    data_as_of: str | None = None
    holdout_cutoff: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    onnx_max_abs_diff: str | None = None
    feature_schema: dict[str, Any] = Field(default_factory=dict)
    loaded_at: str | None = None
    checked_at: str | None = None
    last_error: str | None = None
    rejected_version: str | None = None
    load_failures: int = 0


class ReadyResponse(BaseModel):
    """Ready only with a loaded, verified model."""

    status: str
    model_version: str | None = None
    runtime: str | None = None


class LiveResponse(BaseModel):
    """The process answers."""

    status: str


class ReloadResponse(BaseModel):
    """Outcome of re-resolving the champion now."""

    changed: bool
    model_version: str | None
    runtime: str | None
    last_error: str | None
    rejected_version: str | None


class ErrorResponse(BaseModel):
    """An error with a message (never a stack trace)."""

    detail: str


class ValidationIssue(BaseModel):
    """One invalid field: where (``loc``), what is wrong (``msg``) and the error type."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """422: every invalid field of the request."""

    detail: list[ValidationIssue]


class HealthResponse(BaseModel):
    """Liveness plus the loaded model version (null until a champion exists)."""

    status: str
    model_version: str | None
