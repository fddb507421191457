"""``GET /plots/{name}``: the plots of the pipeline's asset metadata (ROC, calibration, lift, drift, score
histogram), stored once by content under ``<HVBUYER_DATA_DIR>/plots/``; the Dagster UI shows them inline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from hvbuyer_assets.storage.plots import MEDIA_TYPE, NAME, read_plot
from hvbuyer_serving.api.deps import SettingsDep
from hvbuyer_serving.api.errors import responses

router = APIRouter()
IMMUTABLE = "public, max-age=31536000, immutable"  # a name is its content's hash: the file never changes


@router.get(
    "/plots/{name}",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "the PNG"}, **responses(404)},
    summary="A plot of the pipeline's asset metadata",
)
def plot(settings: SettingsDep, name: Annotated[str, Path(pattern=NAME.pattern)]) -> Response:
    """A PNG an asset attached to its materialization (the Dagster UI links it), by its content-hash name."""
    png = read_plot(settings.data_dir, name, settings.s3_endpoint_url)
    if png is None:
        raise HTTPException(404, f"no plot {name!r} in {settings.data_dir}/plots")
    return Response(png, media_type=MEDIA_TYPE, headers={"Cache-Control": IMMUTABLE})
