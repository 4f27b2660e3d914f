"""The benchmark's HTTP side: one streamed chat request timed chunk by chunk, and the server probes.

Why raw httpx and not the `openai` client: the timings must be those of the bytes on the wire. Here each SSE
`data:` event is stamped with `time.perf_counter()` the moment its line is decoded, before any JSON parsing;
there are no automatic retries (the `openai` client retries twice by default, which would hide failures and
inflate latencies), no per-chunk model validation on the clock, and vLLM's extensions (`ignore_eos`) and
non-OpenAI chunks (ragchat's `sources` chunk with `choices: []`) pass through untouched. This is the method
of vLLM's own `vllm bench serve` (aiohttp, stamping each decoded SSE message).

Exceptions: `ServerProblem` (the server cannot be used at all: unreachable, wrong model, key refused) is
raised by the probes; a failing *benchmark request* never raises, it returns a `RequestResult` with
`success=False` and the reason.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ragchat.inference_bench.prometheus import MetricsSnapshot, parse_metrics
from ragchat.infra.llm.vllm_metrics import router_workers

Message = dict[str, str]


class ServerProblem(RuntimeError):
    """The server cannot be benchmarked; the message is one line saying why and what to do."""


@dataclass
class RequestResult:
    """One measured request. Times are seconds from the request's own start (`time.perf_counter`)."""

    index: int
    start_s: float = 0.0
    ttft_s: float | None = None
    e2e_s: float | None = None
    content_times_s: list[float] = field(default_factory=list)
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    finish_reason: str | None = None
    output_chars: int = 0
    success: bool = False
    error: str | None = None

    @property
    def itl_s(self) -> list[float]:
        """Gaps between consecutive content-carrying chunks (vLLM's ITL)."""
        times = self.content_times_s
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    @property
    def tpot_s(self) -> float | None:
        """(E2E - TTFT) / (output tokens - 1) as vLLM defines it; None for 1-token or usage-less replies."""
        if self.ttft_s is None or self.e2e_s is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready values (times rounded to microseconds)."""
        return {
            "index": self.index,
            "success": self.success,
            "error": self.error,
            "start_s": _round(self.start_s),
            "ttft_s": _round(self.ttft_s),
            "e2e_s": _round(self.e2e_s),
            "tpot_s": _round(self.tpot_s),
            "output_tokens": self.output_tokens,
            "prompt_tokens": self.prompt_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "finish_reason": self.finish_reason,
            "output_chars": self.output_chars,
            "content_times_s": [_round(t) for t in self.content_times_s],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RequestResult:
        """Rebuild a result from `to_record` output (used by `ragchat bench compare`)."""
        return cls(
            index=record["index"],
            start_s=record.get("start_s") or 0.0,
            ttft_s=record.get("ttft_s"),
            e2e_s=record.get("e2e_s"),
            content_times_s=list(record.get("content_times_s") or []),
            output_tokens=record.get("output_tokens"),
            prompt_tokens=record.get("prompt_tokens"),
            cached_prompt_tokens=record.get("cached_prompt_tokens"),
            finish_reason=record.get("finish_reason"),
            output_chars=record.get("output_chars") or 0,
            success=bool(record.get("success")),
            error=record.get("error"),
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def server_root(base_url: str) -> str:
    """`http://host:8000/v1` -> `http://host:8000` (where vLLM serves /metrics, /tokenize, /version)."""
    trimmed = base_url.rstrip("/")
    return trimmed.removesuffix("/v1")


def _error_text(body: bytes) -> str:
    """The readable part of an error body: OpenAI's `error.message`, FastAPI's `detail`, or the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        if data.get("message"):
            return str(data["message"])[:300]
        if data.get("detail"):
            return str(data["detail"])[:300]
    return text[:300]


class BenchClient:
    """An OpenAI-compatible endpoint as the benchmark sees it: streamed chats plus vLLM's side endpoints."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        max_connections: int,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 600.0,
        max_tokens_field: str = "max_tokens",
        metrics_url: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.root_url = server_root(base_url)
        self.metrics_root = server_root(metrics_url) if metrics_url else self.root_url
        self._max_tokens_field = max_tokens_field
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=None),
            limits=httpx.Limits(
                max_connections=max_connections + 4, max_keepalive_connections=max_connections + 4
            ),
        )
        self._tokenize_available: bool | None = None

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- probes ------------------------------------------------------------------------------------

    async def list_models(self) -> list[dict[str, Any]]:
        """`GET /v1/models`; raises `ServerProblem` when the server is unreachable or refuses the key."""
        url = f"{self.base_url}/models"
        try:
            response = await self._http.get(url, timeout=httpx.Timeout(30.0, connect=10.0))
        except httpx.ConnectError as exc:
            raise ServerProblem(
                f"cannot reach {self.base_url} ({_reason(exc)}); is the server running? "
                "Point --base-url (or VLLM_BASE_URL) at it"
            ) from None
        except httpx.HTTPError as exc:
            raise ServerProblem(f"{url} failed: {_reason(exc)}") from None
        if response.status_code in (401, 403):
            reason = _error_text(response.content)
            raise ServerProblem(
                f"{self.base_url} refused the API key (HTTP {response.status_code}: {reason})"
            )
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise ServerProblem(
                f"{url} answered HTTP {response.status_code}: {_error_text(response.content)}"
            )
        try:
            data = response.json().get("data", [])
        except (ValueError, AttributeError):
            raise ServerProblem(
                f"{url} did not answer with OpenAI's model list; is this an OpenAI API?"
            ) from None
        return [item for item in data if isinstance(item, dict)]

    async def server_version(self) -> str | None:
        """vLLM's `GET /version` (of the metrics server), when served."""
        try:
            response = await self._http.get(f"{self.metrics_root}/version", timeout=10.0)
            if response.status_code == 200:
                version = response.json().get("version")
                return str(version) if version else None
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
        return None

    async def router_workers(self) -> list[str] | None:
        """The root URLs of the workers behind vLLM's router when the metrics server is one (it lists them
        at `GET /workers`, as `ragchat status` reads them), else None."""
        workers = await router_workers(self._http, self.metrics_root)
        return [worker.url for worker in workers] if workers is not None else None

    async def scrape_metrics(self, root_url: str | None = None) -> MetricsSnapshot | None:
        """vLLM's `/metrics` at `root_url` (default: `metrics_url`, else the server), or None when it does
        not answer or has no vLLM series."""
        try:
            # vLLM renders /metrics inside its API server's event loop: ask for no compression on top.
            response = await self._http.get(
                f"{root_url or self.metrics_root}/metrics",
                timeout=10.0,
                headers={"Accept-Encoding": "identity"},
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        snapshot = parse_metrics(response.text)
        return snapshot if snapshot.values else None

    async def count_prompt_tokens(self, model: str, messages: list[Message]) -> int | None:
        """Tokens of a chat prompt (template included) by vLLM's `/tokenize`; None where it is not served."""
        return await self._tokenize({"model": model, "messages": messages, "add_generation_prompt": True})

    async def count_text_tokens(self, model: str, text: str) -> int | None:
        """Tokens of plain text by vLLM's `/tokenize`; None where it is not served."""
        return await self._tokenize({"model": model, "prompt": text, "add_special_tokens": False})

    async def _tokenize(self, body: dict[str, Any]) -> int | None:
        if self._tokenize_available is False:
            return None
        try:
            response = await self._http.post(f"{self.root_url}/tokenize", json=body, timeout=60.0)
            count = response.json().get("count") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            count = None
        self._tokenize_available = count is not None
        return int(count) if count is not None else None

    # --- the measured request ----------------------------------------------------------------------

    def chat_body(
        self,
        model: str,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        ignore_eos: bool,
    ) -> dict[str, Any]:
        """The request body: streamed, with usage in the last chunk (`stream_options.include_usage`)."""
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": temperature,
            self._max_tokens_field: max_tokens,
        }
        if ignore_eos:
            body["ignore_eos"] = True
        return body

    async def stream_chat(self, index: int, body: dict[str, Any]) -> RequestResult:
        """Send one streamed chat completion and time it; failures come back in the result, never raised."""
        result = RequestResult(index=index)
        url = f"{self.base_url}/chat/completions"
        start = time.perf_counter()
        last_choice_event = start
        done = False
        try:
            async with self._http.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    result.error = f"HTTP {response.status_code}: {_error_text(await response.aread())}"
                    return result
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    stamp = time.perf_counter()
                    error, carried_choices = _consume_event(payload, stamp - start, result)
                    if error:
                        result.error = error
                        return result
                    if carried_choices:
                        last_choice_event = stamp
        except httpx.TimeoutException as exc:
            result.error = f"timeout ({type(exc).__name__})"
            return result
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__}: {_reason(exc)}"
            return result
        if not done:
            result.error = "the stream ended before [DONE]"
        elif not result.content_times_s:
            result.error = "the response carried no content"
        else:
            result.ttft_s = result.content_times_s[0]
            result.e2e_s = last_choice_event - start
            result.success = True
        return result


def _consume_event(payload: str, offset_s: float, result: RequestResult) -> tuple[str | None, bool]:
    """Fold one SSE event into `result`; return (error message or None, whether it carried `choices`).

    Like vLLM's benchmark, the request ends at the last event with `choices` (the usage chunk and ragchat's
    `sources` chunk, both with `choices: []`, carry no token).
    """
    try:
        data = json.loads(payload)
    except ValueError:
        return f"malformed SSE event: {payload[:80]!r}", False
    if not isinstance(data, dict):
        return f"unexpected SSE event: {payload[:80]!r}", False
    if "error" in data:
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else error
        return f"error event in stream: {str(message)[:300]}", False
    choices = data.get("choices") or []
    carried_choices = bool(choices) and isinstance(choices[0], dict)
    if carried_choices:
        choice = choices[0]
        delta = choice.get("delta") or {}
        text = (delta.get("content") or "") + (delta.get("reasoning_content") or delta.get("reasoning") or "")
        if text:
            result.content_times_s.append(offset_s)
            result.output_chars += len(text)
        if choice.get("finish_reason"):
            result.finish_reason = str(choice["finish_reason"])
    usage = data.get("usage")
    if isinstance(usage, dict):
        result.output_tokens = _int_or_none(usage.get("completion_tokens"))
        result.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            result.cached_prompt_tokens = _int_or_none(details.get("cached_tokens"))
    return None, carried_choices


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
