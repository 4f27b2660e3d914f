"""OpenAI-compatible chat over the user's documents: POST /v1/chat/completions and GET /v1/models.

The collection is the extra body field `collection`, else `model="ragchat/<collection>"` (or an alias,
RAGCHAT_MODEL_ALIASES), else the default for `model="ragchat"`; any other model name is a 404.
Failures: an unreachable LLM or embedding server is a 503 JSON error (or, when streaming, an SSE error
event then `[DONE]`); an LLM that dies midway ends the stream with an error event at once. Statuses and
codes come from `ragchat.api.errors.ERRORS`. A client that goes away cancels the LLM request (streaming
or not).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing, suppress
from typing import TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ragchat.api.auth import ReadPrincipal, blocking
from ragchat.api.chat_protocol import (
    MODEL_PREFIX,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    ModelCard,
    ModelList,
    ResponseMessage,
    SourceOut,
    Usage,
)
from ragchat.api.deps import ServicesDep
from ragchat.api.errors import INTERNAL_ERROR_MESSAGE, ApiError, api_error, error_body
from ragchat.container import Services
from ragchat.core.access import CollectionNotFound, Permission
from ragchat.core.chat import (
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    PreparedChat,
    Source,
    SourcesEvent,
)
from ragchat.core.errors import RequestRefused, UnknownModel
from ragchat.infra.embeddings import EmbeddingError
from ragchat.infra.llm import LLMError, TokenUsage

logger = logging.getLogger(__name__)
router = APIRouter(tags=["chat"])
T = TypeVar("T")

_DONE = "data: [DONE]\n\n"


def _sse(data: str) -> str:
    return f"data: {data}\n\n"


def _sse_error(error: ApiError) -> str:
    return _sse(json.dumps(error_body(error.status_code, error.code, error.message, error.type)))


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response that stops as soon as the client goes away and then closes its
    event source (which closes the LLM request upstream)."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream_then_stop() -> None:
                    with suppress(OSError):  # the client went away while we were writing
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream_then_stop)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it if the client disconnects first."""
    results: list[T] = []
    failures: list[Exception] = []
    async with anyio.create_task_group() as group:

        async def run() -> None:
            try:
                results.append(await work)
            except Exception as exc:  # re-raised below, outside the task group's ExceptionGroup
                failures.append(exc)
            group.cancel_scope.cancel()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(run)
        group.start_soon(watch)
    if failures:
        raise failures[0]
    if not results:
        raise ApiError(499, "client_closed_request", "the client closed the request")
    return results[0]


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, principal: ReadPrincipal
) -> ChatCompletion | StreamingResponse:
    """Answer the conversation from the collection's passages, citing them as [n]; OpenAI-compatible.

    `max_tokens` (or `max_completion_tokens`) above LLM_MAX_TOKENS is lowered to it: the answer stops
    there with `finish_reason: "length"`, as when the context is full.
    """
    chat = services.chat
    try:
        collection = body.requested_collection(services.settings.model_aliases) or chat.default_collection
    except UnknownModel as exc:
        services.metrics.error("not_found")
        raise api_error(exc) from None
    try:
        await blocking(services.access.require, principal, collection, Permission.READ)
    except CollectionNotFound:
        services.metrics.error("not_found")
        raise
    try:
        prepared = await chat.prepare(
            body.conversation(),
            collection=collection,
            max_tokens=body.answer_tokens(),
            temperature=body.temperature,
        )
    except RequestRefused as exc:
        raise api_error(exc) from None
    except (LLMError, EmbeddingError) as exc:
        if body.stream:
            return EventStreamResponse(_error_stream(api_error(exc)), headers=_SSE_HEADERS)
        raise api_error(exc) from None

    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    model = f"{MODEL_PREFIX}/{prepared.collection}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _event_stream(services, prepared, completion_id, model, created, include_usage)
        return EventStreamResponse(events, headers=_SSE_HEADERS)
    return await _unless_disconnected(request, _complete(services, prepared, completion_id, model, created))


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _error_stream(error: ApiError) -> AsyncIterator[str]:
    yield _sse_error(error)
    yield _DONE


async def _complete(
    services: Services, prepared: PreparedChat, completion_id: str, model: str, created: int
) -> ChatCompletion:
    parts: list[str] = []
    sources: tuple[Source, ...] = ()
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    async with aclosing(services.chat.generate(prepared)) as events:
        async for event in events:
            if isinstance(event, DeltaEvent):
                parts.append(event.text)
            elif isinstance(event, SourcesEvent):
                sources = event.sources
            elif isinstance(event, DoneEvent):
                finish_reason, usage = event.finish_reason, event.usage
            elif isinstance(event, ErrorEvent):
                raise api_error(event.error)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[Choice(message=ResponseMessage(content="".join(parts)), finish_reason=finish_reason)],
        usage=Usage.of(usage) if usage else None,
        sources=[SourceOut.of(s) for s in sources],
    )


async def _event_stream(
    services: Services,
    prepared: PreparedChat,
    completion_id: str,
    model: str,
    created: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(choices: list[ChunkChoice], **extra: object) -> str:
        event = ChatCompletionChunk(
            id=completion_id,
            object="chat.completion.chunk",
            created=created,
            model=model,
            choices=choices,
            **extra,  # type: ignore[arg-type]
        )
        return _sse(event.model_dump_json(exclude_unset=True))

    yield chunk([ChunkChoice(index=0, delta=ChunkDelta(role="assistant", content=""), finish_reason=None)])
    sources: tuple[Source, ...] = ()
    try:
        async with aclosing(services.chat.generate(prepared)) as events:
            async for event in events:
                if isinstance(event, DeltaEvent):
                    yield chunk(
                        [ChunkChoice(index=0, delta=ChunkDelta(content=event.text), finish_reason=None)]
                    )
                elif isinstance(event, SourcesEvent):
                    sources = event.sources
                elif isinstance(event, DoneEvent):
                    yield chunk([ChunkChoice(index=0, delta=ChunkDelta(), finish_reason=event.finish_reason)])
                    final: dict[str, object] = {"sources": [SourceOut.of(s) for s in sources]}
                    if include_usage and event.usage is not None:
                        final["usage"] = Usage.of(event.usage)
                    yield chunk([], **final)
                elif isinstance(event, ErrorEvent):
                    yield _sse_error(api_error(event.error))
    except Exception:
        logger.exception("chat stream failed")
        yield _sse_error(ApiError(500, "internal_error", INTERNAL_ERROR_MESSAGE))
    yield _DONE


@router.get("/v1/models")
async def list_models(services: ServicesDep, principal: ReadPrincipal) -> ModelList:
    """`ragchat` (the default collection), one `ragchat/<collection>` per collection the caller may read
    (`ragchat` only if they may read the default one), then the aliases of readable collections."""
    default = services.settings.default_collection
    collections = await blocking(services.access.readable_names, principal)
    created = int(time.time())
    cards = (
        [ModelCard(id=MODEL_PREFIX, created=created, collection=default)] if default in collections else []
    )
    for name in sorted(collections):
        cards.append(ModelCard(id=f"{MODEL_PREFIX}/{name}", created=created, collection=name))
    for alias, name in sorted(services.settings.model_aliases.items()):
        if name in collections:
            cards.append(ModelCard(id=alias, created=created, collection=name))
    return ModelList(data=cards)
