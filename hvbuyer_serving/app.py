"""The prediction API: serves the registry's ``champion`` and follows the alias without a restart.

Run: ``uvicorn hvbuyer_serving.app:app --host 127.0.0.1 --port 8080``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException

from hvbuyer_serving.model_store import ChampionStore
from hvbuyer_serving.schemas import HealthResponse, PredictRequest, PredictResponse
from hvbuyer_serving.settings import load_serving_settings

log = logging.getLogger("hvbuyer.serving")


async def _follow_champion(store: ChampionStore, poll_seconds: float) -> None:
    while True:
        await asyncio.sleep(poll_seconds)
        try:
            await asyncio.to_thread(store.refresh)
        except Exception:  # the registry may be briefly unreachable; keep serving and retry
            log.exception("could not re-resolve the champion alias")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_serving_settings()
    store = ChampionStore(settings.mlflow_tracking_uri)
    await asyncio.to_thread(store.refresh)
    app.state.store = store
    task = asyncio.create_task(_follow_champion(store, settings.poll_seconds))
    try:
        yield
    finally:
        task.cancel()


app = FastAPI(
    title="hvbuyer",
    version="0.1.0",
    lifespan=lifespan,
    description="P(large purchase in the next 90 days) from the MLflow champion model.",
)


@app.get("/health", response_model=HealthResponse)
def health() -> HealthResponse:
    """Service liveness and the champion version being served."""
    loaded = app.state.store.current
    return HealthResponse(status="ok" if loaded else "no_model", model_version=loaded.version if loaded else None)


@app.post("/predict", response_model=PredictResponse)
def predict(request: PredictRequest) -> PredictResponse:
    """Probability that this customer makes a large purchase within the horizon."""
    try:
        proba, version = app.state.store.predict([request.model_dump(exclude_none=True)])
    except LookupError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    return PredictResponse(large_purchase_probability=float(proba[0]), model_version=version)
