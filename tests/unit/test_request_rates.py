"""RequestRates: a token bucket per API key or user, on a clock the test moves."""

from __future__ import annotations

import pytest

from ragchat.core.access import Principal
from ragchat.core.rates import RateLimited, RequestRates

KEY = Principal(name="carol", role="member", auth="key", user_id=3, key_id="k1")
SESSION = Principal(name="carol", role="member", auth="session", user_id=3)
OTHER_KEY = Principal(name="carol", role="member", auth="key", user_id=3, key_id="k2")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_rate_passes_then_429_until_a_token_comes_back() -> None:
    clock = Clock()
    rates = RequestRates(60, clock=clock)  # one token a second
    for _ in range(60):
        rates.take(KEY)
    with pytest.raises(RateLimited) as refused:
        rates.take(KEY)
    assert refused.value.retry_after_s == 1
    assert "RAGCHAT_REQUESTS_PER_MINUTE" in refused.value.message and refused.value.code == "rate_limited"
    clock.now += 1.0
    rates.take(KEY)
    with pytest.raises(RateLimited):
        rates.take(KEY)


def test_each_key_and_each_session_user_has_its_own_bucket() -> None:
    clock = Clock()
    rates = RequestRates(2, clock=clock)
    rates.take(KEY)
    rates.take(KEY)
    with pytest.raises(RateLimited) as refused:
        rates.take(KEY)
    assert refused.value.retry_after_s == 30  # 2 a minute: the next token in 30 s
    rates.take(OTHER_KEY)
    rates.take(SESSION)


def test_zero_turns_the_limit_off_and_keyless_callers_are_not_counted() -> None:
    unlimited = RequestRates(0, clock=Clock())
    for _ in range(1000):
        unlimited.take(KEY)
    rates = RequestRates(1, clock=Clock())
    for _ in range(10):
        rates.take(Principal.local_admin("local", "off"))
