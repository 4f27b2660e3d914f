"""`RetryingTransport`: idempotent vLLM requests survive a router's failover 500s; chat completions do not."""

from __future__ import annotations

import httpx

from ragchat.infra.llm.retrying_transport import RetryingTransport


def failing_then_ok(failures: int, seen: list[str]) -> httpx.MockTransport:
    """A server that answers 500 `failures` times (as the router does for a dead worker), then 200."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {request.content.decode()}")
        if len(seen) <= failures:
            return httpx.Response(500, text="Request failed: error sending request for url")
        return httpx.Response(200, json={"count": 3})

    return httpx.MockTransport(handler)


async def test_models_and_tokenize_are_retried_until_they_answer() -> None:
    for method, path, body in (("GET", "/v1/models", None), ("POST", "/tokenize", {"prompt": "hi"})):
        seen: list[str] = []
        transport = RetryingTransport(failing_then_ok(2, seen), pauses_s=(0, 0, 0))
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as http:
            response = await http.request(method, path, json=body)
        assert response.status_code == 200
        assert len(seen) == 3 and len(set(seen)) == 1  # the same request, body included, three times


async def test_a_lasting_failure_is_returned_after_the_last_retry() -> None:
    seen: list[str] = []
    async with httpx.AsyncClient(
        transport=RetryingTransport(failing_then_ok(10, seen), pauses_s=(0, 0)), base_url="http://router"
    ) as http:
        response = await http.get("/v1/models")
    assert response.status_code == 500 and len(seen) == 3


async def test_chat_completions_are_sent_once() -> None:
    seen: list[str] = []
    async with httpx.AsyncClient(
        transport=RetryingTransport(failing_then_ok(1, seen), pauses_s=(0, 0)), base_url="http://router"
    ) as http:
        response = await http.post("/v1/chat/completions", json={"messages": []})
    assert response.status_code == 500 and len(seen) == 1
