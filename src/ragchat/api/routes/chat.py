"""OpenAI-compatible chat over the user's documents: POST /v1/chat/completions and GET /v1/models.

The collection is the extra body field `collection`, else `model="ragchat/<collection>"` (or an alias,
RAGCHAT_MODEL_ALIASES), else the default for `model="ragchat"`; any other model name is a 404.
Failures: an unreachable LLM or embedding server is a 503 JSON error (or, when streaming, an SSE error
event then `[DONE]`); an LLM that dies midway ends the stream with an error event at once. Statuses and
codes come from `ragchat.api.errors.ERRORS`. A client that goes away cancels the LLM request (streaming
or not).

Saved conversations: `store: true` saves the exchange as a new conversation of the caller's;
`conversation_id` continues one of theirs (its turns are the history, its collection is used; another
collection in the request is a 400, another user's or an unknown id a 404). The ids ride in the completion
(`conversation_id`, `turn_id`) and in the stream's first chunk. The turn is saved once the answer is
complete: an answer that fails, or whose client goes away, saves nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
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
from ragchat.core.access import CollectionNotFound, Permission, Principal
from ragchat.core.chat import (
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    PreparedChat,
    Source,
    SourcesEvent,
)
from ragchat.core.conversations import Conversation, NewTurn, new_id
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


@dataclass(frozen=True, slots=True)
class _Saving:
    """Where an answered question is saved: the caller's conversation (new or continued) and the turn id."""

    principal: Principal
    conversation_id: str
    turn_id: str
    question: str

    def turn(self, prepared: PreparedChat, answer: str, sources: Sequence[Source]) -> NewTurn:
        return NewTurn(
            conversation_id=self.conversation_id,
            turn_id=self.turn_id,
            question=self.question,
            answer=answer,
            model=prepared.model,
            sources=[SourceOut.of(source).model_dump(mode="json") for source in sources],
            prompt_chunks=[passage.chunk_id for passage in prepared.prompt.added],
        )


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, principal: ReadPrincipal
) -> JSONResponse | StreamingResponse:
    """Answer the conversation from the collection's passages, citing them as [n]; OpenAI-compatible.

    `max_tokens` (or `max_completion_tokens`) above LLM_MAX_TOKENS is lowered to it: the answer stops
    there with `finish_reason: "length"`, as when the context is full. `store: true` saves the exchange
    as a new conversation; `conversation_id` continues a saved one (send only the new question).
    """
    chat = services.chat
    try:
        requested = body.requested_collection(services.settings.model_aliases)
    except UnknownModel as exc:
        services.metrics.error("not_found")
        raise api_error(exc) from None
    conversation: Conversation | None = None
    if body.conversation_id is not None:
        conversation = await blocking(
            services.conversations.continued, principal, body.conversation_id, requested
        )
        collection = conversation.record.collection
    else:
        collection = requested or chat.default_collection
    try:
        await blocking(services.access.require, principal, collection, Permission.READ)
    except CollectionNotFound:
        services.metrics.error("not_found")
        raise
    messages = body.conversation()
    try:
        prepared = await chat.prepare(
            messages,
            collection=collection,
            max_tokens=body.answer_tokens(),
            temperature=body.temperature,
            earlier=conversation.turns if conversation is not None else None,
        )
    except RequestRefused as exc:
        raise api_error(exc) from None
    except (LLMError, EmbeddingError) as exc:
        if body.stream:
            return EventStreamResponse(_error_stream(api_error(exc)), headers=_SSE_HEADERS)
        raise api_error(exc) from None

    saving = None
    if conversation is not None or body.store:
        saving = _Saving(
            principal=principal,
            conversation_id=conversation.record.id if conversation is not None else new_id(),
            turn_id=new_id(),
            question=messages[-1].content,
        )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    model = f"{MODEL_PREFIX}/{prepared.collection}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _event_stream(services, prepared, completion_id, model, created, include_usage, saving)
        return EventStreamResponse(events, headers=_SSE_HEADERS)
    completion = await _unless_disconnected(
        request, _complete(services, prepared, completion_id, model, created, saving)
    )
    return JSONResponse(completion.body())


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _error_stream(error: ApiError) -> AsyncIterator[str]:
    yield _sse_error(error)
    yield _DONE


async def _save(
    services: Services, saving: _Saving, prepared: PreparedChat, answer: str, sources: Sequence[Source]
) -> None:
    await blocking(
        functools.partial(
            services.conversations.record_turn,
            saving.principal,
            saving.turn(prepared, answer, sources),
            collection=prepared.collection,
        )
    )


async def _complete(
    services: Services,
    prepared: PreparedChat,
    completion_id: str,
    model: str,
    created: int,
    saving: _Saving | None,
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
    answer = "".join(parts)
    if saving is not None:
        await _save(services, saving, prepared, answer, sources)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[Choice(message=ResponseMessage(content=answer), finish_reason=finish_reason)],
        usage=Usage.of(usage) if usage else None,
        sources=[SourceOut.of(s) for s in sources],
        conversation_id=saving.conversation_id if saving else None,
        turn_id=saving.turn_id if saving else None,
    )


async def _event_stream(
    services: Services,
    prepared: PreparedChat,
    completion_id: str,
    model: str,
    created: int,
    include_usage: bool,
    saving: _Saving | None,
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

    ids: dict[str, object] = (
        {"conversation_id": saving.conversation_id, "turn_id": saving.turn_id} if saving else {}
    )
    yield chunk(
        [ChunkChoice(index=0, delta=ChunkDelta(role="assistant", content=""), finish_reason=None)], **ids
    )
    sources: tuple[Source, ...] = ()
    parts: list[str] = []
    try:
        async with aclosing(services.chat.generate(prepared)) as events:
            async for event in events:
                if isinstance(event, DeltaEvent):
                    parts.append(event.text)
                    yield chunk(
                        [ChunkChoice(index=0, delta=ChunkDelta(content=event.text), finish_reason=None)]
                    )
                elif isinstance(event, SourcesEvent):
                    sources = event.sources
                elif isinstance(event, DoneEvent):
                    if saving is not None:
                        await _save(services, saving, prepared, "".join(parts), sources)
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
