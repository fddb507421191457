"""The real service with one extra route that raises, to exercise its generic 500 handler over real HTTP
(``uvicorn hvbuyer_tests.serving.failing_app:app``). Nothing else differs from ``hvbuyer_serving.app``."""

from __future__ import annotations

from hvbuyer_serving.app import create_app

SECRET = "db-password=hunter2 in /srv/hvbuyer/secret_module.py"

app = create_app()


@app.get("/test/boom")
async def boom() -> None:
    """Fails the way an unexpected bug would: an exception whose text must never reach the client."""
    raise RuntimeError(SECRET)
