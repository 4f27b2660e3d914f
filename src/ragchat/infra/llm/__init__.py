"""Chat LLMs behind one small interface; one OpenAI-compatible implementation serves vLLM and OpenAI.

`ChatModel` streams an answer for a list of chat messages, reports what the backend serves (`model_info`),
and counts tokens the way the served model does (`count_tokens`), so prompts can be budgeted before they
are sent. Implementation: `openai_compatible.OpenAICompatibleChatModel` (built by `ragchat.container`).

Errors (never a stack trace to the user; each message says what to do):

    LLMError                  base class; `code` is a stable machine-readable name
     ├── LLMUnavailable       the backend cannot be reached (connection refused, DNS, connect timeout)
     │    └── LLMTimeout      the backend accepted the request but sent nothing for LLM_READ_TIMEOUT_S
     ├── LLMModelNotFound     the configured model is not served by the backend (VLLM_MODEL / OPENAI_MODEL)
     ├── LLMRequestRejected   the backend refused the request (a 4xx other than 404), e.g. an invalid value
     └── LLMStreamBroken      the answer started, then the backend died or dropped the connection
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a chat prompt."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts reported by the backend for one request."""

    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ChatDelta:
    """A piece of a streamed answer. The last delta carries `finish_reason` and, when known, `usage`."""

    text: str
    finish_reason: str | None = None
    usage: TokenUsage | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the backend serves: the model name to send, its context length, and how tokens are counted.

    `token_counting` is `exact` when counts come from the served model's own tokenizer (vLLM's /tokenize or
    the same tokenizer files read locally) and `estimate` when they are a conservative upper bound.
    """

    backend: str
    model: str
    max_model_len: int
    token_counting: Literal["exact", "estimate"]


class LLMError(Exception):
    """Base class of every LLM failure; `code` is stable, `message` is written for the user."""

    code = "llm_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LLMUnavailable(LLMError):
    """The backend cannot be reached."""

    code = "llm_unavailable"


class LLMTimeout(LLMUnavailable):
    """The backend sent nothing within the read timeout."""

    code = "llm_timeout"


class LLMModelNotFound(LLMError):
    """The configured model is not served by the backend."""

    code = "llm_model_not_found"


class LLMRequestRejected(LLMError):
    """The backend refused the request."""

    code = "llm_request_rejected"


class LLMStreamBroken(LLMError):
    """The backend failed after the answer had started."""

    code = "llm_stream_broken"


class ChatModel(Protocol):
    """A chat model served over the network."""

    reachable: bool | None
    """Whether the backend answered the last request sent to it (None until one is sent)."""

    async def model_info(self) -> ModelInfo:
        """The served model's name and context length (asked once, then cached until the backend fails)."""
        ...

    async def count_tokens(self, prompt: str | Sequence[ChatMessage]) -> int:
        """Tokens of `prompt`: a plain text, or messages rendered with the model's chat template
        (generation prompt included), exactly as the backend will count them or a safe upper bound."""
        ...

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> AsyncGenerator[ChatDelta, None]:
        """Stream the answer to `messages`. Raises `LLMError` subclasses only; closing the iterator early
        (e.g. when the user goes away) cancels the request upstream."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        ...
