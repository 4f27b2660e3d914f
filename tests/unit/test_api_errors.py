"""The error handlers `ragchat.api.errors.install` registers: an unexpected exception is a plain 500 that
names nothing inside the server, while the server log gets the details; mapped errors keep their shape."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from ragchat.api import errors
from ragchat.core.errors import CollectionNotFound
from ragchat.infra.embeddings import EmbeddingError


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return app


async def get(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # as a server would answer
    async with httpx.AsyncClient(transport=transport, base_url="http://ragchat.test") as client:
        return await client.get("/boom")


async def test_an_unexpected_error_reveals_no_class_path_or_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ragchat.api.errors"):
        response = await get(app_raising(KeyError("/srv/ragchat/secret-path")))
    assert response.status_code == 500
    assert response.json() == {
        "error": {"message": errors.INTERNAL_ERROR_MESSAGE, "type": "server_error", "code": "internal_error"}
    }
    assert "KeyError" not in response.text and "/srv" not in response.text
    logged = [r for r in caplog.records if r.name == "ragchat.api.errors"]
    assert logged and "GET /boom failed" in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is KeyError


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (
            CollectionNotFound("collection 'x' does not exist"),
            404,
            {
                "message": "collection 'x' does not exist",
                "type": "not_found_error",
                "code": "collection_not_found",
            },
        ),
        (
            EmbeddingError("cannot reach the embedding server"),
            503,
            {
                "message": "cannot reach the embedding server",
                "type": "service_unavailable",
                "code": "embedding_unavailable",
            },
        ),
    ],
)
async def test_domain_and_adapter_errors_raised_in_a_route_get_their_mapped_status(
    exc: Exception, status: int, body: dict[str, str]
) -> None:
    response = await get(app_raising(exc))
    assert response.status_code == status
    assert response.json() == {"error": body}
