"""An httpx transport that retries the vLLM client's idempotent requests when a router in front fails over.

Behind vLLM's router (`vllm-router`), a worker that has just died still receives requests until the router's
circuit breaker or health checks notice (seconds). The router retries chat completions on another worker
itself, but `GET /v1/models` and `POST /tokenize` are answered with a 500 ("Request failed: error sending
request for url ...") at once (seen with vllm-router 0.1.17). Those two are safe to repeat, so a 5xx answer
to them is retried a few times with a growing pause; the router has skipped the dead worker by then.
Connection failures are not retried (nothing answers at VLLM_BASE_URL: the user hears so at once), and
chat completions never are (the router already did).
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import httpx

RETRY_PAUSES_S: tuple[float, ...] = (0.5, 1.0, 2.0)
_RETRIED_STATUSES = frozenset({500, 502, 503, 504})


class RetryingTransport(httpx.AsyncBaseTransport):
    """Sends through `inner`; a 5xx answer to `GET` or `POST .../tokenize` is sent again after each pause."""

    def __init__(self, inner: httpx.AsyncBaseTransport, pauses_s: Sequence[float] = RETRY_PAUSES_S) -> None:
        self._inner = inner
        self._pauses_s = tuple(pauses_s)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        retried = request.method == "GET" or (
            request.method == "POST" and request.url.path.endswith("/tokenize")
        )
        for pause in self._pauses_s if retried else ():
            response = await self._inner.handle_async_request(request)
            if response.status_code not in _RETRIED_STATUSES:
                return response
            await response.aclose()
            await anyio.sleep(pause)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
