"""``GET /model``: the served champion's card."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from fastapi import APIRouter

from hvbuyer_assets import registry
from hvbuyer_assets.core import features
from hvbuyer_serving.api.deps import StoreDep
from hvbuyer_serving.schemas import ModelInfo

router = APIRouter()


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


@router.get("/model", response_model=ModelInfo, summary="The served champion")
async def model_info(store: StoreDep) -> ModelInfo:
    """Version, alias, runtime, trained_at, data as-of, hold-out metrics, feature schema and load failures."""
    served = store.current
    common = {
        "alias": registry.CHAMPION_ALIAS,
        "checked_at": _iso(store.checked_at),
        "last_error": store.last_error,
        "rejected_version": store.rejected_version,
        "load_failures": store.load_failures,
        "worker_pid": os.getpid(),
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
        promotion=registry.promotion_record(tags),
        onnx_max_abs_diff=tags.get(registry.ONNX_DIFF_TAG),
        feature_schema={
            "numeric": [name for name in served.columns if name in features.FEATURE_NUMERIC],
            "categorical": {"region": sorted(served.regions)},
            "omitted_behaviour_means": "no purchase history known",
        },
        loaded_at=_iso(store.loaded_at),
        **common,
    )
