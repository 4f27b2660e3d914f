"""Trusted proxy headers through a real uvicorn: honoured from an address in RAGCHAT_TRUSTED_PROXIES,
ignored from any other (X-Forwarded-For included), as `ragchat serve` runs the app (proxy_headers off)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ragchat.config import Settings
from tests.support.live_app import live_app

HEADERS = {"X-Forwarded-User": "carol", "X-Forwarded-Groups": "engineering|oncall"}


def _settings(make_settings: Callable[..., Settings], proxies: str) -> Settings:
    return make_settings(
        auth="on",
        trusted_user_header="X-Forwarded-User",
        trusted_groups_header="X-Forwarded-Groups",
        trusted_proxies=proxies,
    )


def test_headers_from_a_trusted_proxy_sign_the_user_in(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(make_settings, "127.0.0.1/32, 10.0.0.0/8")
    with live_app(settings, proxy_headers=False) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/api/auth/me").status_code == 401  # no header: anonymous
        me = client.get("/api/auth/me", headers=HEADERS)
        assert me.status_code == 200, me.text
        user = me.json()["user"]
        assert (user["name"], user["auth"]) == ("carol", "proxy")
        assert user["groups"] == ["engineering", "oncall"]
        # A change needs the CSRF token of the session GET /api/auth/me opened, as in a password login.
        refused = client.post("/api/keys", json={"scope": "read"}, headers=HEADERS)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
        headers = {**HEADERS, "X-CSRF-Token": me.json()["csrf_token"]}
        created = client.post("/api/keys", json={"scope": "read"}, headers=headers)
        assert created.status_code == 201, created.text
        # The proxy now names someone else: the old session's token does not carry over.
        other = {**headers, "X-Forwarded-User": "dave"}
        assert client.post("/api/keys", json={"scope": "read"}, headers=other).status_code == 403


def test_headers_from_anywhere_else_are_ignored(make_settings: Callable[..., Settings]) -> None:
    settings = _settings(make_settings, "10.9.9.9")
    with live_app(settings, proxy_headers=False) as url, httpx.Client(base_url=url, timeout=60) as client:
        for headers in (HEADERS, {**HEADERS, "X-Forwarded-For": "10.9.9.9"}):
            answer = client.get("/api/auth/me", headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"]["code"] == "unauthenticated"
