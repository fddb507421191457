"""``python -m hvbuyer_serving``: uvicorn on ``HVBUYER_API_HOST`` (127.0.0.1) : ``HVBUYER_API_PORT`` (8080)."""

from __future__ import annotations

import os

import uvicorn

if __name__ == "__main__":
    uvicorn.run(
        "hvbuyer_serving.app:app",
        host=os.environ.get("HVBUYER_API_HOST", "127.0.0.1"),
        port=int(os.environ.get("HVBUYER_API_PORT", "8080")),
        access_log=False,
    )
