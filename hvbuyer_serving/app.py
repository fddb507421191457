"""The prediction API: serves the registry's ``champion`` (ONNX Runtime) and follows the alias without a restart.

Run: ``uvicorn hvbuyer_serving.app:app --host 127.0.0.1 --port 8080`` or ``python -m hvbuyer_serving``.

This module is wiring only: the lifespan (logging, settings, champion store, online store, the task
following the alias), the middleware, the error handlers, the routers (``api.main``), the offline API docs
and the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from hvbuyer_serving import metrics
from hvbuyer_serving.api import errors, fast_lookup, openapi
from hvbuyer_serving.api.main import ROUTERS
from hvbuyer_serving.api.routes.docs import DOCS_URL, REDOC_URL
from hvbuyer_serving.model_store import ChampionStore
from hvbuyer_serving.online_store import open_store
from hvbuyer_serving.settings import load_serving_settings

log = logging.getLogger(__name__)
LOGGER = "hvbuyer_serving"  # the package's loggers: one line per loaded / swapped / rejected version


def configure_logging() -> None:
    """Give the package's logger a stderr handler (uvicorn configures only its own loggers), once."""
    logger = logging.getLogger(LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # no second copy through a root handler someone else installed


async def _follow_champion(store: ChampionStore, poll_seconds: float) -> None:
    while True:
        try:
            await asyncio.to_thread(store.refresh)
        except Exception:  # the registry may be briefly unreachable; keep serving and retry
            log.exception("could not re-resolve the champion alias")
        await asyncio.sleep(poll_seconds)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the settings, open the champion store and the online store, follow the alias until shutdown."""
    configure_logging()
    settings = load_serving_settings()
    app.state.settings = settings
    app.state.store = ChampionStore(settings.mlflow_tracking_uri)
    app.state.customers = open_store(settings.online_store)  # connects on the first lookup
    log.info("following the registry alias champion (checked every %.1f s)", settings.poll_seconds)
    task = asyncio.create_task(_follow_champion(app.state.store, settings.poll_seconds))
    try:
        yield
    finally:
        task.cancel()
        app.state.customers.close()


def create_app() -> FastAPI:
    """The FastAPI application (``/docs`` and ``/redoc`` from packaged assets, no CDN)."""
    app = FastAPIOffline(
        docs_url=DOCS_URL,
        redoc_url=REDOC_URL,
        title="hvbuyer",
        version="0.2.0",
        lifespan=lifespan,
        description="P(large purchase in the next 90 days) from the MLflow champion model, served with ONNX Runtime.",
        swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would otherwise call an online validator
        # FastAPI 0.165's native OpenTelemetry is unused here (Prometheus: /metrics); enabled, it asks the global
        # providers on every request whether one was configured (~10 us of each look-up's CPU)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(metrics.MetricsMiddleware)
    errors.install(app)
    # The routers' routes are added to the app's own router instead of app.include_router: FastAPI 0.165
    # resolves included routers lazily on every request (~25 us per call, ~10 % of a single-row /predict).
    for router in ROUTERS:
        app.router.routes.extend(router.routes)
    openapi.install(app)
    stack = app.build_middleware_stack  # a plain look-up is answered before the whole stack (api.fast_lookup)
    app.build_middleware_stack = lambda: fast_lookup.FastLookup(stack(), app)  # type: ignore[method-assign]
    return app


app = create_app()
