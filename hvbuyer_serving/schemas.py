"""Request and response models of the prediction API; ``PredictRequest`` is derived from the feature
declaration (``core.feature_spec.FEATURES``: one field per feature column, its bounds and description)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from hvbuyer_assets.core.feature_spec import FEATURES, REQUIRED_FIELDS, Feature
from hvbuyer_serving.settings import MAX_BATCH_ROWS

SEED_EXAMPLE = {"age": 35, "region": "East", "loyalty_points": 1200}
BATCH_EXAMPLE = {"rows": [SEED_EXAMPLE, {"age": 61, "region": "west", "loyalty_points": 80}]}
COLUMNS_EXAMPLE = {"columns": {"age": [35, 61], "region": ["East", "west"], "loyalty_points": [1200, 80]}}
PREDICT_REQUEST_DOC = (
    f"One customer. The seed example's fields ({', '.join(REQUIRED_FIELDS)}) are required, null when unknown;\n"
    'behaviour fields are optional and, when omitted, mean "no purchase history known" (exactly what the batch\n'
    "features give a customer without transactions)."
)


FLOAT32_MAX = float.fromhex("0x1.fffffep+127")  # the model's inputs are float32: a larger number would become inf


def numeric_bounds(feature: Feature) -> tuple[float, float]:
    """The range a sent number must lie in: the declared bounds, never beyond float32 (the model's input type)."""
    ge = -FLOAT32_MAX if feature.ge is None else max(feature.ge, -FLOAT32_MAX)
    le = FLOAT32_MAX if feature.le is None else min(feature.le, FLOAT32_MAX)
    return ge, le


def _field(feature: Feature) -> tuple[Any, Any]:
    """(type, FieldInfo) of one declared feature: numbers or strings within the declared bounds, null allowed.
    Strict: a JSON string or boolean is not a number (no ``"35"`` or ``true`` coerced into an age)."""
    default = ... if feature.required else None
    if feature.kind == "categorical":
        return str | None, Field(default, max_length=feature.max_length, description=feature.description)
    ge, le = numeric_bounds(feature)
    return float | None, Field(default, ge=ge, le=le, strict=True, description=feature.description)


PredictRequest = create_model(
    "PredictRequest",
    __doc__=PREDICT_REQUEST_DOC,
    __config__=ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [SEED_EXAMPLE]},
    ),
    __module__=__name__,
    **{feature.name: _field(feature) for feature in FEATURES},
)


class Reason(BaseModel):
    """One feature's contribution to this customer's probability (exact TreeSHAP), and the value it had."""

    feature: str
    value: float | str | None
    contribution: float


class Explanation(BaseModel):
    """Why this probability: ``expected_value`` (the forest's average answer) plus every feature's contribution
    equals ``forest_probability``; ``top`` lists the K largest contributions by size, ``others`` the sum of the
    rest. ``forest_probability`` is the sklearn forest's (the served ONNX graph agrees within 1e-4)."""

    expected_value: float
    forest_probability: float
    top: list[Reason]
    others: float


class PredictResponse(BaseModel):
    """The champion's probability of a large purchase in the horizon, and which version answered (with
    ``?explain=K``, the K features that moved it most)."""

    large_purchase_probability: float = Field(..., ge=0, le=1)
    model_version: str
    explanation: Explanation | None = None

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"large_purchase_probability": 0.1, "model_version": "1"}]}
    )


class BatchRequest(BaseModel):
    """Up to 10,000 customers in one call; answers come back in the same order."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [BATCH_EXAMPLE]},
    )

    rows: list[PredictRequest] = Field(..., min_length=1, max_length=MAX_BATCH_ROWS)


class BatchResponse(BaseModel):
    """One probability per request row, in order, all from the same model version."""

    large_purchase_probability: list[float]
    model_version: str
    explanations: list[Explanation] | None = None


class CustomerPrediction(BaseModel):
    """A customer's latest batch score (scores asset) and the features it was computed from."""

    customer_id: str
    large_purchase_probability: float
    model_version: str | None
    scored_at: str | None = None
    feature_as_of: str | None = None
    features: dict[str, float | str | None]
    explanation: Explanation | None = None


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
    metrics: dict[str, float] = Field(
        default_factory=dict, description="the version's hold-out metrics at its registration (its own hold-out)"
    )
    promotion: dict[str, Any] = Field(
        default_factory=dict,
        description="roc_auc_at_registration; the same-hold-out comparison that promoted it: compared_with (the "
        "champion it replaced), candidate_roc_auc_same_holdout, previous_roc_auc_same_holdout; decision",
    )
    onnx_max_abs_diff: str | None = None
    feature_schema: dict[str, Any] = Field(default_factory=dict)
    loaded_at: str | None = None
    checked_at: str | None = None
    last_error: str | None = None
    rejected_version: str | None = None
    load_failures: int = 0
    worker_pid: int | None = Field(None, description="the worker process that answered (HVBUYER_API_WORKERS > 1)")


class ReadyResponse(BaseModel):
    """Ready only with a loaded, verified model; ``degraded`` (still 200) with the ``reason`` while the registry
    cannot be reached."""

    status: str
    model_version: str | None = None
    runtime: str | None = None
    reason: str | None = None


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
