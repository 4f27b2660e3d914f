"""`OpenAICompatibleChatModel.stream` against a scripted upstream: faults a real vLLM cannot be made to show
on demand (an error event or garbage mid-stream, a 503 that clears on retry, a stream cut short). The
happy path and a real vLLM killed mid-stream are covered in tests/integration with the real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from ragchat.infra.llm import (
    ChatDelta,
    ChatMessage,
    LLMRequestRejected,
    LLMStreamBroken,
    LLMUnavailable,
)
from ragchat.infra.llm.openai_compatible import Backend, OpenAICompatibleChatModel

MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "max_model_len": 2048}]}


def event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def token(text: str) -> bytes:
    return event({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


FINISH = event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
DONE = b"data: [DONE]\n\n"

Reply = tuple[int, str, bytes]  # status, content type, body


@asynccontextmanager
async def scripted_upstream(replies: list[Reply]) -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP server that answers GETs with the model list and each POST with the next scripted reply."""
    posts: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if head.startswith(b"GET"):
                    status, kind, body = (
                        200,
                        "application/json",
                        json.dumps(MODELS["data"][0] if b"/models/" in head else MODELS).encode(),
                    )
                else:
                    posts.append(head.split(b" ")[1].decode())
                    status, kind, body = replies.pop(0)
                headers = f"content-type: {kind}\r\ncontent-length: {len(body)}\r\n"
                writer.write(f"HTTP/1.1 {status} X\r\n{headers}\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v1", posts


def model(base_url: str, backend: Backend = "vllm") -> OpenAICompatibleChatModel:
    return OpenAICompatibleChatModel(
        backend=backend,
        base_url=base_url,
        api_key="k" if backend == "openai" else None,
        model="m" if backend == "openai" else None,
        connect_timeout_s=2,
        read_timeout_s=5,
    )


async def collect(llm: OpenAICompatibleChatModel, into: list[ChatDelta]) -> None:
    async for delta in llm.stream([ChatMessage("user", "q")], max_tokens=8, temperature=0):
        into.append(delta)


def sse(*events: bytes) -> Reply:
    return 200, "text/event-stream", b"".join(events)


async def run(
    replies: list[Reply], backend: Backend = "vllm"
) -> tuple[list[ChatDelta], list[str], Callable[[], None]]:
    deltas: list[ChatDelta] = []
    async with scripted_upstream(replies) as (url, posts):
        llm = model(url, backend)
        try:
            await collect(llm, deltas)
            raised = None
        except Exception as exc:  # returned for the test to inspect
            raised = exc
        finally:
            await llm.aclose()

    def reraise() -> None:
        if raised is not None:
            raise raised

    return deltas, posts, reraise


async def test_a_whole_stream_gives_text_then_finish_reason_and_usage() -> None:
    deltas, posts, reraise = await run([sse(token("Hel"), token("lo"), FINISH, USAGE, DONE)])
    reraise()
    assert posts == ["/v1/chat/completions"]
    assert [d.text for d in deltas] == ["Hel", "lo", ""]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens == 2


async def test_an_error_event_mid_stream_is_a_broken_stream_naming_the_server_message() -> None:
    error = event({"error": {"message": "engine dead", "type": "InternalServerError"}})
    deltas, _, reraise = await run([sse(token("Par"), error)])
    assert [d.text for d in deltas] == ["Par"]
    with pytest.raises(LLMStreamBroken, match="engine dead"):
        reraise()


async def test_garbage_in_the_stream_is_a_broken_stream() -> None:
    _, _, reraise = await run([sse(token("a"), b"data: {not json\n\n")])
    with pytest.raises(LLMStreamBroken, match="malformed stream event"):
        reraise()


async def test_a_stream_that_ends_without_a_finish_reason_is_broken() -> None:
    _, _, reraise = await run([sse(token("a"), DONE)])
    with pytest.raises(LLMStreamBroken, match="ended before the answer was complete"):
        reraise()


async def test_vllm_is_not_retried_and_its_503_says_what_failed() -> None:
    busy = (503, "application/json", json.dumps({"error": {"message": "overloaded"}}).encode())
    _, posts, reraise = await run([busy, sse(token("x"), FINISH, DONE)])
    assert len(posts) == 1
    with pytest.raises(LLMUnavailable, match=r"failed \(503\): overloaded"):
        reraise()


async def test_openai_backend_retries_a_503_then_streams() -> None:
    busy = (503, "application/json", json.dumps({"error": {"message": "overloaded"}}).encode())
    deltas, posts, reraise = await run([busy, sse(token("ok"), FINISH, DONE)], backend="openai")
    reraise()
    assert len(posts) == 2
    assert [d.text for d in deltas] == ["ok", ""]


async def test_a_rejected_request_is_not_retried_and_carries_the_server_message() -> None:
    bad = (400, "application/json", json.dumps({"error": {"message": "max_tokens is too large"}}).encode())
    _, posts, reraise = await run([bad], backend="openai")
    assert len(posts) == 1
    with pytest.raises(LLMRequestRejected, match=r"\(400\): max_tokens is too large"):
        reraise()
