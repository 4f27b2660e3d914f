"""Request rates per caller: a token bucket per API key (or per signed-in user), in this process's memory.

Each bucket holds up to `per_minute` tokens and refills at `per_minute / 60` tokens a second; a request
takes one. An empty bucket refuses the request with `RateLimited`, saying in how many seconds a token will
be there. With several app processes each keeps its own buckets (a key may then make up to that many times
the rate). Thread-safe; the clock is injectable for tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ragchat.core.access import Principal, TooManyAttempts


class RateLimited(TooManyAttempts):
    """The caller made more requests than its rate allows; `retry_after_s` says when to try again."""

    code = "rate_limited"


class RequestRates:
    """Token buckets keyed by caller (see the module docstring); `per_minute` 0 turns the limit off."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._refill_per_s = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller: (tokens, at)
        self._lock = threading.Lock()

    def take(self, principal: Principal) -> None:
        """Count one request of `principal`; `RateLimited` when its bucket is empty. Callers with neither
        a key nor a user (auth off, the metrics scraper) are not limited."""
        caller = _caller(principal)
        if caller is None or self._capacity <= 0:
            return
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(caller, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) * self._refill_per_s)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                wait_s = max(1, math.ceil((1.0 - tokens) / self._refill_per_s))
                raise RateLimited(
                    f"too many requests: this {'API key' if principal.key_id else 'account'} may make "
                    f"{self._capacity:g} requests a minute (RAGCHAT_REQUESTS_PER_MINUTE); try again in "
                    f"{wait_s} s",
                    wait_s,
                )
            self._buckets[caller] = (tokens - 1.0, now)


def _caller(principal: Principal) -> str | None:
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    return None
