"""`OpenAICompatibleChatModel.stream` against a scripted upstream: faults a real vLLM cannot be made to show
on demand (an error event or garbage mid-stream, a 503 that clears on retry, a stream cut short). The
happy path and a real vLLM killed mid-stream are covered in tests/integration with the real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ragchat.infra.llm import (
    ChatDelta,
    ChatMessage,
    LLMRequestRejected,
    LLMStreamBroken,
    LLMUnavailable,
)
from ragchat.infra.llm.openai_compatible import OpenAICompatibleChatModel
from ragchat.infra.llm.providers import Backend, OpenAIProvider, Provider, VllmProvider

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
    provider: Provider = (
        VllmProvider(base_url, model=None)
        if backend == "vllm"
        else OpenAIProvider(base_url, api_key="k", model="m")
    )
    return OpenAICompatibleChatModel(provider, connect_timeout_s=2, read_timeout_s=5)


async def collect(llm: OpenAICompatibleChatModel, into: list[ChatDelta]) -> None:
    async for delta in llm.stream([ChatMessage("user", "q")], max_tokens=8, temperature=0):
        into.append(delta)


def sse(*events: bytes) -> Reply:
    return 200, "text/event-stream", b"".join(events)


@dataclass
class Outcome:
    deltas: list[ChatDelta]
    posts: list[str]  # paths of the POSTs the upstream received
    error: Exception | None


async def run(replies: list[Reply], backend: Backend = "vllm") -> Outcome:
    """Stream one answer from the scripted upstream; what came out, what was sent, what was raised."""
    outcome = Outcome([], [], None)
    async with scripted_upstream(replies) as (url, posts):
        llm = model(url, backend)
        try:
            await collect(llm, outcome.deltas)
        except Exception as exc:  # the tests inspect it
            outcome.error = exc
        finally:
            await llm.aclose()
        outcome.posts = posts
    return outcome


def raised(outcome: Outcome, kind: type[Exception], text: str) -> bool:
    return isinstance(outcome.error, kind) and text in str(outcome.error)


async def test_a_whole_stream_gives_text_then_finish_reason_and_usage() -> None:
    outcome = await run([sse(token("Hel"), token("lo"), FINISH, USAGE, DONE)])
    assert outcome.error is None
    assert outcome.posts == ["/v1/chat/completions"]
    assert [d.text for d in outcome.deltas] == ["Hel", "lo", ""]
    last = outcome.deltas[-1]
    assert last.finish_reason == "stop" and last.usage is not None and last.usage.completion_tokens == 2


async def test_an_error_event_mid_stream_is_a_broken_stream_naming_the_server_message() -> None:
    error = event({"error": {"message": "engine dead", "type": "InternalServerError"}})
    outcome = await run([sse(token("Par"), error)])
    assert [d.text for d in outcome.deltas] == ["Par"]
    assert raised(outcome, LLMStreamBroken, "engine dead")


async def test_garbage_in_the_stream_is_a_broken_stream() -> None:
    outcome = await run([sse(token("a"), b"data: {not json\n\n")])
    assert raised(outcome, LLMStreamBroken, "malformed stream event")


async def test_a_stream_that_ends_without_a_finish_reason_is_broken() -> None:
    outcome = await run([sse(token("a"), DONE)])
    assert raised(outcome, LLMStreamBroken, "ended before the answer was complete")


async def test_vllm_is_not_retried_and_its_503_says_what_failed() -> None:
    busy = (503, "application/json", json.dumps({"error": {"message": "overloaded"}}).encode())
    outcome = await run([busy, sse(token("x"), FINISH, DONE)])
    assert len(outcome.posts) == 1
    assert raised(outcome, LLMUnavailable, "failed (503): overloaded")


async def test_openai_backend_retries_a_503_then_streams() -> None:
    busy = (503, "application/json", json.dumps({"error": {"message": "overloaded"}}).encode())
    outcome = await run([busy, sse(token("ok"), FINISH, DONE)], backend="openai")
    assert outcome.error is None
    assert len(outcome.posts) == 2
    assert [d.text for d in outcome.deltas] == ["ok", ""]


async def test_a_rejected_request_is_not_retried_and_carries_the_server_message() -> None:
    bad = (400, "application/json", json.dumps({"error": {"message": "max_tokens is too large"}}).encode())
    outcome = await run([bad], backend="openai")
    assert len(outcome.posts) == 1
    assert raised(outcome, LLMRequestRejected, "(400): max_tokens is too large")
