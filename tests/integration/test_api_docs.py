"""`/docs` works on a host without internet: the page and every file it loads come from the app itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from ragchat.config import Settings
from tests.support.app import app_client

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    # Authentication off: who may see /docs is the route matrix's concern (tests/integration/test_access.py).
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path_factory.mktemp("docs") / "data", auth="off", host="127.0.0.1"
    )
    async with app_client(settings) as http:
        yield http


async def test_docs_page_loads_swagger_ui_from_the_app_only(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page.text, re.IGNORECASE)  # no other host
    assert '"validatorUrl": null' in page.text  # Swagger UI would otherwise ask validator.swagger.io

    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3  # the stylesheet, the icon and the script
    kinds = {"js": "javascript", "css": "text/css", "svg": "image/svg+xml"}
    for asset in assets:
        assert asset.startswith("/static/")
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert kinds[asset.rsplit(".", 1)[-1]] in response.headers["content-type"]
    assert "SwaggerUIBundle" in (await client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")).text

    spec = await client.get(re.findall(r"url: '([^']+)'", page.text)[0])
    assert spec.json()["info"]["title"] == "ragchat"
    assert (await client.get("/redoc")).status_code == 404  # ReDoc would come from a CDN: not served
