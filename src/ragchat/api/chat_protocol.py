"""Pydantic models mirroring OpenAI's chat completion API, plus ragchat's additions.

Requests tolerate unknown fields (OpenAI clients send many; they are ignored). ragchat adds:
- request: `collection` (extra body field) to pick the collection; otherwise `model` = `ragchat/<collection>`,
  `ragchat` (the default collection) or an alias (RAGCHAT_MODEL_ALIASES); another model name is refused;
- request: `store: true` (OpenAI's own parameter) saves the exchange as a new conversation;
  `conversation_id` (extra body field) continues a saved conversation server-side (send only the new
  question);
- response: `sources` at the top level of a completion, and in the last chunk of a stream (a chunk with
  `choices: []`, sent just before `data: [DONE]`); when the exchange is saved, `conversation_id` and
  `turn_id` at the top level of a completion and of the stream's first chunk. OpenAI clients keep such
  extra fields (the Python client exposes them as attributes, e.g. `completion.sources`) or ignore them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragchat.core.chat import Source
from ragchat.core.errors import UnknownModel
from ragchat.infra.llm import ChatMessage, TokenUsage

MODEL_PREFIX = "ragchat"


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Tolerant):
    """One part of a multi-part message; only `text` parts carry meaning here."""

    type: str
    text: str | None = None


class RequestMessage(_Tolerant):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message text (text parts joined by newlines)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.type == "text" and part.text)


class StreamOptions(_Tolerant):
    include_usage: bool = False


class ChatCompletionRequest(_Tolerant):
    """POST /v1/chat/completions. Client `system`/`developer`/`tool` messages are ignored: ragchat's own
    system prompt governs answering from passages with citations."""

    model: str = MODEL_PREFIX
    messages: list[RequestMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    n: int = Field(1, ge=1, le=1, description="Only one choice is supported.")
    collection: str | None = Field(None, min_length=1, max_length=64)
    store: bool | None = Field(None, description="Save the exchange as a new conversation.")
    conversation_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Continue this saved conversation (send only the question).",
    )

    def conversation(self) -> list[ChatMessage]:
        """The user and assistant turns, in order."""
        return [
            ChatMessage(m.role, m.text())  # type: ignore[arg-type]
            for m in self.messages
            if m.role in ("user", "assistant")
        ]

    def requested_collection(self, aliases: Mapping[str, str]) -> str | None:
        """`collection` if given (`model` is then not read), else the `<name>` of `model="ragchat/<name>"`
        or the collection of the alias `model`, else None (the default) for `model="ragchat"`.

        Raises `UnknownModel` for any other model name.
        """
        if self.collection:
            return self.collection
        prefix = MODEL_PREFIX + "/"
        if self.model.startswith(prefix) and len(self.model) > len(prefix):
            return self.model[len(prefix) :]
        if self.model in aliases:
            return aliases[self.model]
        if self.model == MODEL_PREFIX:
            return None
        raise UnknownModel(
            f"the model {self.model!r} is not served here: use {MODEL_PREFIX!r} (the default collection) or "
            f"'{MODEL_PREFIX}/<collection>'; GET /v1/models lists them"
        )

    def answer_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class SourceOut(BaseModel):
    """A passage the answer rests on; `index` is its [n] in the answer."""

    index: int
    chunk_id: str
    document_id: str
    document: str
    heading: str
    snippet: str
    score: float
    start: int
    end: int
    cited: bool

    @classmethod
    def of(cls, source: Source) -> SourceOut:
        passage = source.passage
        return cls(
            index=source.index,
            chunk_id=passage.chunk_id,
            document_id=passage.document_id,
            document=passage.document_path,
            heading=passage.heading,
            snippet=source.snippet,
            score=passage.score,
            start=passage.start,
            end=passage.end,
            cited=source.cited,
        )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: TokenUsage) -> Usage:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
        )


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    sources: list[SourceOut]
    conversation_id: str | None = None
    turn_id: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body: `conversation_id` and `turn_id` only when the exchange was saved."""
        body = self.model_dump(mode="json")
        for name in ("conversation_id", "turn_id"):
            if body[name] is None:
                del body[name]
        return body


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One SSE event of a streamed completion. Serialise with `exclude_unset=True`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    sources: list[SourceOut] | None = None
    conversation_id: str | None = None
    turn_id: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = MODEL_PREFIX
    collection: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
