"""Limits met before any route runs: the Host allow-list and request body sizes (RAGCHAT_ALLOWED_HOSTS,
RAGCHAT_MAX_REQUEST_KB, RAGCHAT_MAX_UPLOAD_MB), on the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from ragchat.api.limits import default_allowed_hosts
from ragchat.config import Settings
from tests.support.app import app_client


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return str(error["message"])


async def test_bodies_over_their_limit_are_refused_and_store_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(max_request_kb=4, max_upload_mb=0.05)
    async with app_client(settings) as client:
        message = assert_error(
            await client.post("/api/search", json={"query": "x" * 8000}), 413, "request_too_large"
        )
        assert "RAGCHAT_MAX_REQUEST_KB" in message

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams in
            yield b'{"query": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        response = await client.post(
            "/api/search", content=chunked(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413, response.text
        assert "RAGCHAT_MAX_REQUEST_KB" in response.json()["error"]["message"]

        files = [
            ("files", (f"note-{i}.md", b"# Note\n\n" + b"words " * 3000, "text/markdown")) for i in range(3)
        ]
        message = assert_error(await client.post("/api/documents", files=files), 413, "request_too_large")
        assert "RAGCHAT_MAX_UPLOAD_MB" in message
        assert (await client.get("/api/documents")).json()["documents"] == []

        small = [("files", ("note.md", b"# Note\n\nA short note about limits.", "text/markdown"))]
        assert (await client.post("/api/documents", files=small)).status_code == 202


async def test_only_listed_host_names_are_answered(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(allowed_hosts="rag.example.com, localhost")
    async with app_client(settings) as client:
        assert (await client.get("/health", headers={"host": "rag.example.com:8080"})).status_code == 200
        assert (await client.get("/health")).status_code == 200  # localhost
        rebound = await client.get("/health", headers={"host": "attacker.example"})
        assert "RAGCHAT_ALLOWED_HOSTS" in assert_error(rebound, 400, "host_not_allowed")


@pytest.mark.parametrize(
    ("bind", "allowed"),
    [("127.0.0.1", ("127.0.0.1", "::1", "[::1]", "localhost")), ("::1", None), ("0.0.0.0", ("*",))],
)
def test_a_loopback_binding_answers_only_to_loopback_names(
    bind: str, allowed: tuple[str, ...] | None
) -> None:
    hosts = default_allowed_hosts(bind)
    if allowed is None:
        assert "localhost" in hosts and "*" not in hosts
    else:
        assert set(hosts) == set(allowed)
