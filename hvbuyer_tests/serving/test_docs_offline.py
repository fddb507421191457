"""The API documentation works without internet: /docs (Swagger UI) and /redoc (ReDoc) reference only assets
the service itself serves (packaged by ``fastapi-offline``), and ``GET /`` leads to /docs. Runs a real service
on an empty data dir (no model needed to read the docs)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from hvbuyer_tests.serving.service import serve

pytestmark = pytest.mark.slow  # a service process: 5-30 s to start (the inner loop starts none)

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.fixture(scope="module")
def docs_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with serve(tmp_path_factory.mktemp("docs") / "data", ready=False) as client:
        yield client


@pytest.mark.parametrize(("page", "marker"), [("/docs", "SwaggerUIBundle"), ("/redoc", "<redoc")])
def test_docs_pages_load_every_asset_from_the_service(docs_api: httpx.Client, page: str, marker: str) -> None:
    html = docs_api.get(page)
    assert html.status_code == 200 and marker in html.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html.text), "a URL outside the service"
    assets = ASSET.findall(html.text)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset  # served by this service, not a CDN
        response = docs_api.get(asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
    assert "/predict" in docs_api.get("/openapi.json").json()["paths"]


def test_the_root_redirects_to_the_docs(docs_api: httpx.Client) -> None:
    response = docs_api.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/docs"
    assert docs_api.get("/", follow_redirects=True).url.path == "/docs"
