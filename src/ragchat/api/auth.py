"""Who is calling, and may they call this route: the access level every route declares.

Each route depends on one `Requires` object, whose `level` says who may call it:

    public   anyone (liveness, the page shell and its files, login)
    user     any signed-in caller: a key of either scope or a session
    read     like user; the route then answers only from collections the caller may read
    write    a write key or a session (a read key gets 403); collection rules apply inside
    admin    an admin (a read-only admin key only for GET)
    metrics  the RAGCHAT_METRICS_TOKEN bearer, or an admin

`access_level(route)` reads the level back from the app's routes; the route-matrix test checks each route
against it, so a route added without a level fails that test. Credentials: `Authorization: Bearer
rck_...` (an API key) or the `ragchat_session` cookie. A cookie-authenticated request that changes state
must carry `X-CSRF-Token` and, when the browser sends one, a same-site `Origin`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Annotated, Literal, TypeVar

import anyio.to_thread
from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragchat.api.proxy_auth import proxied_identity
from ragchat.core.access import AccessService, CsrfFailed, Forbidden, Principal, Unauthenticated
from ragchat.core.sso import SingleSignOn

Level = Literal["public", "user", "read", "write", "admin", "metrics"]
SESSION_COOKIE = "ragchat_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")

ANONYMOUS = Principal(name="anonymous", role="member", auth="off", scope="read")
_LOCAL_ADMIN = Principal.local_admin("local", "off")
_METRICS_SCRAPER = Principal(name="metrics", role="member", auth="metrics", scope="read")


async def blocking(function: Callable[..., T], *args: object) -> T:
    """Run a blocking access call (database, argon2) in a worker thread."""
    return await anyio.to_thread.run_sync(function, *args)


def access_service(request: Request) -> AccessService:
    service: AccessService = request.app.state.services.access
    return service


def client_address(request: Request) -> str | None:
    """The client's address as the server saw it (uvicorn applies X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else None


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def check_origin(request: Request) -> None:
    """`CsrfFailed` when the browser says the request comes from a page of another origin (one not in
    RAGCHAT_CORS_ORIGINS)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {own_origin(request), *request.app.state.settings.cors_origins}
    if origin.rstrip("/") not in allowed:
        raise CsrfFailed("request refused: it comes from a page of another site (Origin check)")


class Requires:
    """A route dependency that authenticates the caller and checks the route's access `level`; it returns
    the `Principal` (and keeps it in `request.state.principal`)."""

    def __init__(self, level: Level) -> None:
        self.level = level

    def __repr__(self) -> str:
        return f"Requires({self.level!r})"

    async def __call__(self, request: Request) -> Principal:
        if self.level == "public":
            return ANONYMOUS
        principal = await self._authenticate(request)
        request.state.principal = principal
        request.app.state.services.rates.take(principal)
        if self.level == "write" and principal.scope != "write":
            raise Forbidden("this API key is read-only; use a write key")
        if self.level == "admin" and (
            not principal.is_admin or (principal.scope != "write" and request.method not in _SAFE_METHODS)
        ):
            raise Forbidden("only an admin may do this")
        if self.level == "metrics" and not (principal.is_admin or principal.auth == "metrics"):
            raise Forbidden("metrics need RAGCHAT_METRICS_TOKEN or an admin key")
        return principal

    async def _authenticate(self, request: Request) -> Principal:
        settings = request.app.state.settings
        if settings.auth == "off":
            return _LOCAL_ADMIN
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("send the API key as 'Authorization: Bearer <key>'")
            metrics_token = settings.metrics_token
            if (
                self.level == "metrics"
                and metrics_token is not None
                and hmac.compare_digest(token.encode(), metrics_token.get_secret_value().encode())
            ):
                return _METRICS_SCRAPER
            return await blocking(access_service(request).principal_for_key, token)
        proxied = proxied_identity(request, settings)
        if proxied is not None:
            principal = await _proxied_principal(request, *proxied)
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            if not cookie:
                raise Unauthenticated("log in, or send an API key as 'Authorization: Bearer <key>'")
            principal = await blocking(access_service(request).principal_for_session, cookie)
        if request.method not in _SAFE_METHODS:
            check_origin(request)
            sent = request.headers.get(CSRF_HEADER, "")
            if not principal.csrf_token or not hmac.compare_digest(
                sent.encode(), principal.csrf_token.encode()
            ):
                raise CsrfFailed(f"request refused: the {CSRF_HEADER} header is missing or wrong")
        return principal


async def _proxied_principal(request: Request, name: str, groups: tuple[str, ...]) -> Principal:
    """The user a trusted proxy names (docs/security.md#trusted-proxy-headers). The browser behind it is
    as exposed to cross-site requests as a cookie session, so changes need the CSRF token of the ragchat
    session that `GET /api/auth/me` opens for the same user."""
    sso: SingleSignOn = request.app.state.services.sso
    principal = await blocking(sso.principal_for_proxy, name, groups, client_address(request))
    cookie = request.cookies.get(SESSION_COOKIE)
    csrf_token = None
    if cookie:
        try:
            session = await blocking(access_service(request).principal_for_session, cookie)
        except Unauthenticated:
            session = None
        if session is not None and session.user_id == principal.user_id:
            csrf_token = session.csrf_token
    return replace(principal, csrf_token=csrf_token)


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    """Set the `ragchat_session` cookie (HttpOnly, SameSite=Lax, Secure when the request came over TLS)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


PUBLIC = Requires("public")
USER = Requires("user")
READ = Requires("read")
WRITE = Requires("write")
ADMIN = Requires("admin")
METRICS = Requires("metrics")

UserPrincipal = Annotated[Principal, Depends(USER)]
ReadPrincipal = Annotated[Principal, Depends(READ)]
WritePrincipal = Annotated[Principal, Depends(WRITE)]
AdminPrincipal = Annotated[Principal, Depends(ADMIN)]


def declare_public(mount: Mount) -> Mount:
    """Mark a mounted app (static files) as public: mounts have no dependencies to carry a level."""
    mount.ragchat_access = PUBLIC  # type: ignore[attr-defined]
    return mount


def declared_routes(app: FastAPI) -> Iterator[tuple[str, frozenset[str], Level | None]]:
    """(path, methods, declared level) of every route the app serves, those of included routers and
    mounts (methods empty) too, as the router matches them."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        methods = frozenset(getattr(route, "methods", None) or ())
        yield context.path or "", methods, access_level(route)


def access_level(route: BaseRoute) -> Level | None:
    """The level a route declared (a `Requires` among its dependencies, or set on a mount); None if none."""
    declared = getattr(route, "ragchat_access", None)
    if isinstance(declared, Requires):
        return declared.level
    dependant = getattr(route, "dependant", None)
    pending = [dependant] if dependant is not None else []
    while pending:
        current = pending.pop()
        if isinstance(current.call, Requires):
            return current.call.level
        pending.extend(current.dependencies)
    return None


# --- response headers and CORS ---------------------------------------------------------------------------

# The JSON API's policy (the page shell sends its own, stricter for scripts): nothing may frame a response.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    """Adds nosniff, no-referrer and a frame-ancestors CSP to every response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", API_CONTENT_SECURITY_POLICY.encode()),
                    (b"x-frame-options", b"DENY"),
                ):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
