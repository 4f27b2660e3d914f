"""Limits every request meets before a route runs: the `Host` it names, and the size of its body.

- Host allow-list (`RAGCHAT_ALLOWED_HOSTS`): a request naming another host is refused with 400, so a web page
  whose DNS name was rebound to this server's address (DNS rebinding) cannot talk to it. When unset, an app
  bound to a loopback address answers only to loopback names; any other binding answers to any name.
- Body size: JSON routes take at most `RAGCHAT_MAX_REQUEST_KB`, an upload (multipart) at most
  `RAGCHAT_MAX_UPLOAD_MB` in all. A declared `Content-Length` over the limit is refused before anything is
  read; a body that grows past it while streaming stops being read there. Either way: 413 in the one
  error shape, and the route never sees a byte more.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragchat.api.errors import error_body
from ragchat.config import is_loopback

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """The Host names answered when RAGCHAT_ALLOWED_HOSTS is unset (see the module docstring)."""
    return tuple(sorted(LOOPBACK_NAMES)) if is_loopback(bind_host) else ("*",)


class RequestTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes its limit. An HTTPException, because FastAPI turns
    any other error met while reading a body into a 400; this one reaches the error handlers as a 413."""

    def __init__(self, message: str) -> None:
        super().__init__(413, detail=message)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status)


class RequestLimitsMiddleware:
    """Refuses requests to unknown hosts (400) and bodies over their limit (413), as described above."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: tuple[str, ...], max_json_bytes: int, max_upload_bytes: int
    ) -> None:
        self.app = app
        self._any_host = "*" in allowed_hosts
        self._hosts = frozenset(host.lower() for host in allowed_hosts)
        self._max_json_bytes = max_json_bytes
        self._max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value for name, value in scope["headers"]}
        host = headers.get(b"host", b"").decode("latin-1")
        if not self._any_host and _host_name(host) not in self._hosts:
            await _error(
                400,
                "host_not_allowed",
                "this server does not answer to the host name the request named; the server's "
                "administrator lists the names it answers to in RAGCHAT_ALLOWED_HOSTS",
            )(scope, receive, send)
            return
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit, setting = (
            (self._max_upload_bytes, "RAGCHAT_MAX_UPLOAD_MB")
            if multipart
            else (self._max_json_bytes, "RAGCHAT_MAX_REQUEST_KB")
        )
        message = f"the request body is larger than this server takes ({_size(limit)}, {setting}); " + (
            "send fewer or smaller files per request" if multipart else "send a shorter request"
        )
        too_large = _error(413, "request_too_large", message)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(message)
            return incoming

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, noting_send)
        except RequestTooLarge:
            if not started:
                await too_large(scope, receive, send)


def _host_name(host: str) -> str:
    """`host` without its port (IPv6 literals keep their brackets)."""
    host = host.lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _size(limit: int) -> str:
    return f"{limit / 1048576:g} MB" if limit >= 1048576 else f"{limit / 1024:g} KB"
