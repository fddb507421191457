"""One real uvicorn process serving the built workspace's champion, shared by the read-only API tests (the process
itself: ``hvbuyer_tests/serving/service.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hvbuyer_tests.serving.service import ADMIN_TOKEN, serve


@pytest.fixture(scope="session")
def api(built) -> Iterator[httpx.Client]:
    """One service on the built workspace (admin token set), shared by the read-only API tests."""
    with serve(built.root, HVBUYER_ADMIN_TOKEN=ADMIN_TOKEN) as client:
        yield client
