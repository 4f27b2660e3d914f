"""`ChatModel` for any OpenAI-compatible server: vLLM (LLM_BACKEND=vllm, the default) or OpenAI.

Requests go out on one `httpx` client; streamed events are parsed here with `json.loads` (the official
`openai` client's typed chunks cost ~4x the CPU per token: `bench/relay_cost.py`). vLLM specifics: the
model is VLLM_MODEL or the first one `/v1/models` lists, `max_model_len` comes from the same listing,
tokens are counted exactly (see `token_counting`), and failed requests are not retried (a local server
that refuses a connection will refuse the retry too; the user hears about it at once). OpenAI:
OPENAI_MODEL, a context length of `UNKNOWN_CONTEXT_TOKENS` unless the server reports `max_model_len`,
byte-bound token estimates, and two retries (after 0.5 s, then 1 s) of a request that could not connect
or got 408/409/429/5xx, as the official client does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import httpx

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
from ragchat.infra.llm.retrying_transport import RetryingTransport
from ragchat.infra.llm.token_counting import (
    ByteBoundCounter,
    TokenCounter,
    VllmTokenizeCounter,
    calibrate_local_counter,
    checked_json,
    describe_transport_error,
    server_message,
)

Backend = Literal["vllm", "openai"]

UNKNOWN_CONTEXT_TOKENS = 16_384
"""Context length assumed when the backend does not report one (current OpenAI chat models take more)."""

_RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


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
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # vLLM's router in front may answer 500 while it fails over: see `retrying_transport`.
        transport = RetryingTransport(httpx.AsyncHTTPTransport()) if backend == "vllm" else None
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport)
        self._retries = 0 if backend == "vllm" else 2
        self.reachable: bool | None = None
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
        body = {
            "model": info.model,
            "messages": payload,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        finish_reason: str | None = None
        usage: TokenUsage | None = None
        async with self._completion_stream(body) as response:
            try:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, other SSE fields
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = _event(data)
                    for choice in event.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield ChatDelta(text)
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
                    if event.get("usage"):
                        usage = _usage(event["usage"])
            except httpx.TimeoutException:
                self._forget_model()
                self.reachable = False
                raise LLMTimeout(
                    f"the LLM server at {self.base_url} sent nothing for too long (LLM_READ_TIMEOUT_S)"
                ) from None
            except httpx.TransportError as exc:
                self._forget_model()
                self.reachable = False
                cause = describe_transport_error(exc)
                raise LLMStreamBroken(
                    f"the LLM server at {self.base_url} dropped the answer midway: {cause}"
                ) from None
            except LLMStreamBroken:
                self._forget_model()
                raise
        if finish_reason is None:
            self._forget_model()
            raise LLMStreamBroken("the LLM stream ended before the answer was complete")
        yield ChatDelta("", finish_reason=finish_reason, usage=usage)

    async def aclose(self) -> None:
        await self._http.aclose()

    @asynccontextmanager
    async def _completion_stream(self, body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """The streaming response of POST /chat/completions, status checked; closed on exit, also when
        the caller is cancelled (which is what stops vLLM generating for a client that went away)."""
        url = f"{self.base_url}/chat/completions"
        attempt = 0
        while True:
            try:
                response = await self._http.send(
                    self._http.build_request("POST", url, json=body), stream=True
                )
            except httpx.TransportError as exc:
                if attempt < self._retries and not isinstance(exc, httpx.TimeoutException):
                    attempt += 1
                    await anyio.sleep(0.5 * attempt)
                    continue
                raise self._no_answer(exc) from None
            self.reachable = True
            if response.status_code in _RETRIED_STATUSES and attempt < self._retries:
                await response.aclose()
                attempt += 1
                await anyio.sleep(0.5 * attempt)
                continue
            break
        try:
            if response.status_code >= 400:
                await response.aread()
                raise self._status_error(response)
            yield response
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

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
        except httpx.TransportError as exc:
            raise self._no_answer(exc) from None
        self.reachable = True
        if response.status_code == 404 and self.backend == "openai":
            raise LLMModelNotFound(
                f"{self.base_url} does not serve the model {self._configured_model!r}: check OPENAI_MODEL"
            )
        return checked_json(response)

    def _no_answer(self, exc: httpx.TransportError) -> LLMError:
        """The error for a request that got no answer at all (timeout or connection failure)."""
        self._forget_model()
        self.reachable = False
        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeout(f"the LLM server at {self.base_url} did not answer in time")
        cause = describe_transport_error(exc)
        return LLMUnavailable(f"cannot reach the LLM server at {self.base_url}: {cause} ({self._hint()})")

    def _hint(self) -> str:
        if self.backend == "vllm":
            return "is vLLM running? start it with scripts/start_vllm.sh, or set VLLM_BASE_URL"
        return "check OPENAI_BASE_URL and the network"

    def _forget_model(self) -> None:
        """Ask the backend again on the next request: it may come back restarted, with another model."""
        self._info = None
        self._counter = None

    def _status_error(self, response: httpx.Response) -> LLMError:
        message = server_message(response)
        if response.status_code == 404:
            self._forget_model()
            return LLMModelNotFound(f"the LLM server at {self.base_url} answered 404: {message}")
        if response.status_code >= 500:
            self._forget_model()
            return LLMUnavailable(
                f"the LLM server at {self.base_url} failed ({response.status_code}): {message}"
            )
        return LLMRequestRejected(f"the LLM server refused the request ({response.status_code}): {message}")


def _event(data: str) -> dict[str, Any]:
    """One streamed chunk, parsed; an error event (or garbage) raises `LLMStreamBroken`."""
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise LLMStreamBroken(f"the LLM server sent a malformed stream event: {data[:120]!r}") from None
    if not isinstance(event, dict):
        raise LLMStreamBroken(f"the LLM server sent a malformed stream event: {data[:120]!r}")
    if "error" in event:
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise LLMStreamBroken(f"the LLM server reported an error midway through the answer: {message}")
    return event


def _usage(usage: dict[str, Any]) -> TokenUsage:
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens")
    return TokenUsage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_prompt_tokens=int(cached) if cached is not None else None,
    )
