"""`ChatModel` for any OpenAI-compatible server; what differs between hosts (vLLM, OpenAI) is the
`Provider` it is given (`providers`: base URL, key, model discovery, token counting, retries, hints).

Requests go out on one `httpx` client; streamed events are parsed here with `json.loads` (the official
`openai` client's typed chunks cost more CPU per token: `bench/relay_cost.py`, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

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
from ragchat.infra.llm.http_errors import describe_transport_error, server_message
from ragchat.infra.llm.providers import Provider, VllmProvider, provider_from_settings
from ragchat.infra.llm.retrying_transport import RetryingTransport
from ragchat.infra.llm.token_counting import TokenCounter

_RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompatibleChatModel:
    """Streams chat completions from an OpenAI-compatible `/v1` API and budgets for the model it serves."""

    def __init__(self, provider: Provider, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.provider = provider
        self.base_url = provider.base_url
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        headers = {"Authorization": f"Bearer {provider.api_key}"} if provider.api_key else {}
        # vLLM's router in front may answer 500 while it fails over: see `retrying_transport`.
        routed = isinstance(provider, VllmProvider)
        transport = RetryingTransport(httpx.AsyncHTTPTransport()) if routed else None
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport)
        self.reachable: bool | None = None
        self._info: ModelInfo | None = None
        self._counter: TokenCounter | None = None
        self._info_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleChatModel:
        """The backend chosen by LLM_BACKEND, with the timeouts LLM_CONNECT_TIMEOUT_S / LLM_READ_TIMEOUT_S."""
        return cls(
            provider_from_settings(settings),
            connect_timeout_s=settings.llm_connect_timeout_s,
            read_timeout_s=settings.llm_read_timeout_s,
        )

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
                if attempt < self.provider.retries and not isinstance(exc, httpx.TimeoutException):
                    attempt += 1
                    await anyio.sleep(0.5 * attempt)
                    continue
                raise self._no_answer(exc) from None
            self.reachable = True
            if response.status_code in _RETRIED_STATUSES and attempt < self.provider.retries:
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
        served = await self.provider.discover(self._get, self._http)
        info = ModelInfo(
            backend=self.provider.backend,
            model=served.name,
            max_model_len=served.max_model_len,
            token_counting="exact" if served.counter.exact else "estimate",
        )
        return info, served.counter

    async def _get(self, url: str) -> httpx.Response:
        try:
            response = await self._http.get(url)
        except httpx.TransportError as exc:
            raise self._no_answer(exc) from None
        self.reachable = True
        return response

    def _no_answer(self, exc: httpx.TransportError) -> LLMError:
        """The error for a request that got no answer at all (timeout or connection failure)."""
        self._forget_model()
        self.reachable = False
        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeout(f"the LLM server at {self.base_url} did not answer in time")
        cause = describe_transport_error(exc)
        return LLMUnavailable(
            f"cannot reach the LLM server at {self.base_url}: {cause} ({self.provider.hint})"
        )

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
