"""``python -m hvbuyer_serving``: uvicorn on ``HVBUYER_API_HOST`` (127.0.0.1) : ``HVBUYER_API_PORT`` (8080) with
``HVBUYER_API_WORKERS`` (1) worker processes sharing the port; each follows the champion alias by itself."""

from __future__ import annotations

import uvicorn

from hvbuyer_serving.settings import load_serving_settings

if __name__ == "__main__":
    settings = load_serving_settings()
    uvicorn.run(
        "hvbuyer_serving.app:app",
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        access_log=False,
    )
