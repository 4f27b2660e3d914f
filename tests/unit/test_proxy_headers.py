"""Trusted proxy headers count only from RAGCHAT_TRUSTED_PROXIES (the ASGI peer address); the login callback's
query stays out of the access log."""

from __future__ import annotations

import logging

from starlette.requests import Request

from ragchat.api.proxy_auth import peer_is_trusted, proxied_identity
from ragchat.api.routes.sso import CallbackQueryFilter
from ragchat.config import Settings, load_settings


def _settings(**overrides: str) -> Settings:
    values = {
        "trusted_user_header": "X-Forwarded-User",
        "trusted_groups_header": "X-Forwarded-Groups",
        "trusted_proxies": "10.0.0.5, 192.168.7.0/24, fd00::/8",
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


def _request(peer: str, headers: dict[str, str]) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": (peer, 40000),
        }
    )


def test_headers_from_a_trusted_proxy_name_the_user_and_groups() -> None:
    headers = {"X-Forwarded-User": "carol", "X-Forwarded-Groups": "eng,ops|eng"}
    for peer in ("10.0.0.5", "192.168.7.200", "::ffff:10.0.0.5", "fd00::1"):
        assert proxied_identity(_request(peer, headers), _settings()) == ("carol", ("eng", "ops")), peer


def test_headers_from_anywhere_else_are_ignored() -> None:
    headers = {"X-Forwarded-User": "admin", "X-Forwarded-For": "10.0.0.5"}
    for peer in ("127.0.0.1", "10.0.0.6", "192.168.8.1", "::1", "not-an-address"):
        assert proxied_identity(_request(peer, headers), _settings()) is None, peer


def test_no_header_or_no_setting_means_no_proxied_user() -> None:
    assert proxied_identity(_request("10.0.0.5", {}), _settings()) is None
    assert proxied_identity(_request("10.0.0.5", {"X-Forwarded-User": "  "}), _settings()) is None
    plain = load_settings(_env_file=None)
    assert proxied_identity(_request("10.0.0.5", {"X-Forwarded-User": "carol"}), plain) is None
    assert not peer_is_trusted("10.0.0.5", ())


def test_the_callback_query_never_reaches_the_access_log() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None
    )
    record.args = ("127.0.0.1:5000", "GET", "/api/auth/oidc/callback?code=SECRET&state=S", "1.1", 303)
    assert CallbackQueryFilter().filter(record)
    assert "SECRET" not in record.getMessage() and "/api/auth/oidc/callback" in record.getMessage()
    other = ("127.0.0.1:5000", "GET", "/api/documents?collection=x", "1.1", 200)
    record.args = other
    CallbackQueryFilter().filter(record)
    assert record.args == other
