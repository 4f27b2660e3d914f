"""`ChatModel` for any OpenAI-compatible server: vLLM (LLM_BACKEND=vllm, the default) or OpenAI.

Streaming goes through the official `openai` client. vLLM specifics: the model is VLLM_MODEL or the first
one `/v1/models` lists, `max_model_len` comes from the same listing, tokens are counted exactly (see
`token_counting`), and connection failures are not retried (a local server that refuses a connection
will refuse the retry too; the user hears about it at once). OpenAI: OPENAI_MODEL, a context length of
`UNKNOWN_CONTEXT_TOKENS` unless the server reports `max_model_len`, byte-bound token estimates, and the
client's usual two retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Literal, cast

import anyio
import httpx
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from ragchat.config import Settings
from ragchat.infra.llm import (
    ChatDelta,
    ChatMessage,
    LLMError,
    LLMModelNotFound,
    LLMRequestRejected,
    LLMStreamBroken,
    LLMTimeout,
    LLMUnavailable,
    ModelInfo,
    TokenUsage,
)
from ragchat.infra.llm.token_counting import (
    ByteBoundCounter,
    TokenCounter,
    VllmTokenizeCounter,
    calibrate_local_counter,
    checked_json,
    describe_transport_error,
)

Backend = Literal["vllm", "openai"]

UNKNOWN_CONTEXT_TOKENS = 16_384
"""Context length assumed when the backend does not report one (current OpenAI chat models take more)."""


class OpenAICompatibleChatModel:
    """Streams chat completions from an OpenAI-compatible `/v1` API and budgets for the model it serves."""

    def __init__(
        self,
        *,
        backend: Backend,
        base_url: str,
        api_key: str | None,
        model: str | None,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self.backend = backend
        self.base_url = base_url.rstrip("/")
        self._configured_model = model
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._client = AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key or "not-needed",
            timeout=openai.Timeout(read_timeout_s, connect=connect_timeout_s),
            max_retries=0 if backend == "vllm" else 2,
        )
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers)
        self._info: ModelInfo | None = None
        self._counter: TokenCounter | None = None
        self._info_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleChatModel:
        """The backend chosen by LLM_BACKEND, with the timeouts LLM_CONNECT_TIMEOUT_S / LLM_READ_TIMEOUT_S."""
        if settings.llm_backend == "vllm":
            return cls(
                backend="vllm",
                base_url=settings.vllm_base_url,
                api_key=None,
                model=settings.vllm_model,
                connect_timeout_s=settings.llm_connect_timeout_s,
                read_timeout_s=settings.llm_read_timeout_s,
            )
        return cls(
            backend="openai",
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            model=settings.openai_model,
            connect_timeout_s=settings.llm_connect_timeout_s,
            read_timeout_s=settings.llm_read_timeout_s,
        )

    @property
    def root_url(self) -> str:
        """The server root (vLLM serves /tokenize, /metrics and /health there, outside /v1)."""
        return self.base_url.removesuffix("/v1")

    async def model_info(self) -> ModelInfo:
        if self._info is not None:
            return self._info
        async with self._info_lock:
            if self._info is None:
                self._info, self._counter = await self._discover()
            return self._info

    async def count_tokens(self, prompt: str | Sequence[ChatMessage]) -> int:
        await self.model_info()
        assert self._counter is not None
        try:
            return await self._counter.count(prompt)
        except (LLMUnavailable, LLMModelNotFound):
            self._forget_model()
            raise

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> AsyncGenerator[ChatDelta, None]:
        info = await self.model_info()
        payload = [{"role": m.role, "content": m.content} for m in messages]
        try:
            upstream = await self._client.chat.completions.create(
                model=info.model,
                messages=cast("list[ChatCompletionMessageParam]", payload),
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.OpenAIError as exc:
            raise self._translate(exc, started=False) from None
        finish_reason: str | None = None
        usage: TokenUsage | None = None
        try:
            async for chunk in upstream:
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                    if choice.delta.content:
                        yield ChatDelta(choice.delta.content)
        except openai.OpenAIError as exc:
            raise self._translate(exc, started=True) from None
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.close()
        if finish_reason is None:
            self._forget_model()
            raise LLMStreamBroken("the LLM stream ended before the answer was complete")
        yield ChatDelta("", finish_reason=finish_reason, usage=usage)

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()

    async def _discover(self) -> tuple[ModelInfo, TokenCounter]:
        if self.backend == "vllm":
            entry = await self._served_vllm_model()
            name = str(entry["id"])
            remote = VllmTokenizeCounter(self._http, root_url=self.root_url, model=name)
            local = await calibrate_local_counter(entry.get("root"), remote)
            counter: TokenCounter = local or remote
        else:
            name = self._configured_model or ""
            entry = await self._get_json(f"{self.base_url}/models/{name}")
            counter = ByteBoundCounter()
        max_model_len = int(entry.get("max_model_len") or UNKNOWN_CONTEXT_TOKENS)
        info = ModelInfo(
            backend=self.backend,
            model=name,
            max_model_len=max_model_len,
            token_counting="exact" if counter.exact else "estimate",
        )
        return info, counter

    async def _served_vllm_model(self) -> dict[str, Any]:
        listing = await self._get_json(f"{self.base_url}/models")
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

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
        except httpx.TimeoutException:
            raise LLMTimeout(f"the LLM server at {self.base_url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise LLMUnavailable(
                f"cannot reach the LLM server at {self.base_url}: {describe_transport_error(exc)} "
                f"({self._hint()})"
            ) from None
        if response.status_code == 404 and self.backend == "openai":
            raise LLMModelNotFound(
                f"{self.base_url} does not serve the model {self._configured_model!r}: check OPENAI_MODEL"
            )
        return checked_json(response)

    def _hint(self) -> str:
        if self.backend == "vllm":
            return "is vLLM running? start it with scripts/start_vllm.sh, or set VLLM_BASE_URL"
        return "check OPENAI_BASE_URL and the network"

    def _forget_model(self) -> None:
        """Ask the backend again on the next request: it may come back restarted, with another model."""
        self._info = None
        self._counter = None

    def _translate(self, exc: openai.OpenAIError, *, started: bool) -> LLMError:
        if isinstance(exc, openai.APITimeoutError):
            self._forget_model()
            return LLMTimeout(
                f"the LLM server at {self.base_url} sent nothing for too long (LLM_READ_TIMEOUT_S)"
            )
        if isinstance(exc, openai.APIConnectionError):
            self._forget_model()
            cause = str(exc.__cause__ or "").strip() or exc.message
            if started:
                return LLMStreamBroken(
                    f"the LLM server at {self.base_url} dropped the answer midway: {cause}"
                )
            return LLMUnavailable(f"cannot reach the LLM server at {self.base_url}: {cause} ({self._hint()})")
        if isinstance(exc, openai.NotFoundError):
            self._forget_model()
            return LLMModelNotFound(f"the LLM server at {self.base_url} answered 404: {exc.message}")
        if isinstance(exc, openai.APIStatusError):
            if exc.status_code >= 500:
                self._forget_model()
                return LLMUnavailable(
                    f"the LLM server at {self.base_url} failed ({exc.status_code}): {exc.message}"
                )
            return LLMRequestRejected(
                f"the LLM server refused the request ({exc.status_code}): {exc.message}"
            )
        if isinstance(exc, openai.APIError) and started:
            self._forget_model()
            return LLMStreamBroken(
                f"the LLM server reported an error midway through the answer: {exc.message}"
            )
        return LLMUnavailable(f"LLM request failed: {exc}")


def _usage(usage: Any) -> TokenUsage:
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return TokenUsage(
        prompt_tokens=int(usage.prompt_tokens or 0),
        completion_tokens=int(usage.completion_tokens or 0),
        cached_prompt_tokens=int(cached) if cached is not None else None,
    )
