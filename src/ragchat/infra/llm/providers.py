"""Where an OpenAI-compatible chat model is served, and what differs from one such host to another.

A `Provider` holds the base URL and the key, finds the served model (its name, context length and how its
tokens are counted), says how often a failed request is retried and what to check when the server cannot
be reached. `OpenAICompatibleChatModel` does everything else the same way for every provider (as
pydantic-ai separates its Model from its Provider). To serve another OpenAI-compatible host, add a
provider here and pick it in `provider_from_settings`.

- `VllmProvider` (LLM_BACKEND=vllm, the default): the model is VLLM_MODEL or the first one `/v1/models`
  lists, `max_model_len` comes from the same listing, tokens are counted exactly (`token_counting`), and
  failed requests are not retried (a local server that refuses a connection will refuse the retry too;
  the user hears about it at once).
- `OpenAIProvider` (LLM_BACKEND=openai): OPENAI_MODEL, a context length of `UNKNOWN_CONTEXT_TOKENS` unless
  the server reports `max_model_len`, byte-bound token estimates, and two retries (after 0.5 s, then 1 s)
  of a request that could not connect or got 408/409/429/5xx, as the official client does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from ragchat.config import Settings
from ragchat.infra.llm import LLMModelNotFound
from ragchat.infra.llm.http_errors import checked_json
from ragchat.infra.llm.token_counting import (
    ByteBoundCounter,
    TokenCounter,
    VllmTokenizeCounter,
    calibrate_local_counter,
)

Backend = Literal["vllm", "openai"]
Get = Callable[[str], Awaitable[httpx.Response]]
"""GET a URL on the model's HTTP client (a transport failure is already an `LLMError`)."""

UNKNOWN_CONTEXT_TOKENS = 16_384
"""Context length assumed when the backend does not report one (current OpenAI chat models take more)."""


@dataclass(frozen=True, slots=True)
class ServedModel:
    """What a provider found: the model name to send, its context length and its token counter."""

    name: str
    max_model_len: int
    counter: TokenCounter


class Provider(Protocol):
    """An OpenAI-compatible host: where it is, how to find its model, and how to treat its failures."""

    backend: Backend
    base_url: str
    """The `/v1` base URL, without a trailing slash."""
    api_key: str | None
    retries: int
    """Extra attempts for a request that could not connect or got a retryable status."""
    hint: str
    """What to check when the server cannot be reached."""

    async def discover(self, get: Get, http: httpx.AsyncClient) -> ServedModel:
        """Ask the server which model it serves (raises `LLMError` subclasses)."""
        ...


class VllmProvider:
    """A vLLM server (the model's own tokenizer through `/tokenize`, or its files when they are here)."""

    backend: Backend = "vllm"
    retries = 0
    hint = "is vLLM running? start it with scripts/start_vllm.sh, or set VLLM_BASE_URL"

    def __init__(self, base_url: str, *, model: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key: str | None = None
        self._configured_model = model

    @property
    def root_url(self) -> str:
        """The server root (vLLM serves /tokenize, /metrics and /health there, outside /v1)."""
        return self.base_url.removesuffix("/v1")

    async def discover(self, get: Get, http: httpx.AsyncClient) -> ServedModel:
        entry = await self._served_model(get)
        name = str(entry["id"])
        remote = VllmTokenizeCounter(http, root_url=self.root_url, model=name)
        local = await calibrate_local_counter(entry.get("root"), remote)
        max_model_len = int(entry.get("max_model_len") or UNKNOWN_CONTEXT_TOKENS)
        return ServedModel(name, max_model_len, local or remote)

    async def _served_model(self, get: Get) -> dict[str, Any]:
        listing = checked_json(await get(f"{self.base_url}/models"))
        entries = [e for e in listing.get("data") or [] if isinstance(e, dict) and e.get("id")]
        if not entries:
            raise LLMModelNotFound(f"the vLLM server at {self.base_url} serves no model")
        if self._configured_model is None:
            return entries[0]
        for entry in entries:
            if entry["id"] == self._configured_model:
                return entry
        served = ", ".join(str(e["id"]) for e in entries)
        raise LLMModelNotFound(
            f"the vLLM server at {self.base_url} serves {served}, not {self._configured_model!r}: "
            "set VLLM_MODEL to a served name (or leave it unset to use the first one)"
        )


class OpenAIProvider:
    """OpenAI, or any OpenAI-compatible host without a tokenizer endpoint."""

    backend: Backend = "openai"
    retries = 2
    hint = "check OPENAI_BASE_URL and the network"

    def __init__(self, base_url: str, *, api_key: str | None, model: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._model = model

    async def discover(self, get: Get, http: httpx.AsyncClient) -> ServedModel:
        response = await get(f"{self.base_url}/models/{self._model}")
        if response.status_code == 404:
            raise LLMModelNotFound(
                f"{self.base_url} does not serve the model {self._model!r}: check OPENAI_MODEL"
            )
        entry = checked_json(response)
        max_model_len = int(entry.get("max_model_len") or UNKNOWN_CONTEXT_TOKENS)
        return ServedModel(self._model, max_model_len, ByteBoundCounter())


def provider_from_settings(settings: Settings) -> Provider:
    """The provider LLM_BACKEND names, with its URL, key and model settings."""
    if settings.llm_backend == "vllm":
        return VllmProvider(settings.vllm_base_url, model=settings.vllm_model)
    return OpenAIProvider(
        settings.openai_base_url, api_key=settings.openai_api_key, model=settings.openai_model
    )
