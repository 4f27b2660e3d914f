"""Routes: single sign-on through an OpenID provider (docs/security.md#single-sign-on).

GET  /api/auth/methods          how one may sign in here: {"password": bool, "sso": bool} (public)
GET  /api/auth/oidc/login       -> 302 to the provider (state, nonce, PKCE); the state also rides in a
                                short-lived cookie, so only the browser that started a login ends it
GET  /api/auth/oidc/callback    the provider sends the browser back here: checks it all, opens a
                                ragchat session (the `ragchat_session` cookie) and -> 303 to /
POST /api/auth/oidc/logout      ends the session; {"redirect": the provider's end-session URL or "/"}
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from ragchat.api.auth import (
    PUBLIC,
    SESSION_COOKIE,
    UserPrincipal,
    blocking,
    client_address,
    set_session_cookie,
)
from ragchat.api.deps import ServicesDep
from ragchat.api.errors import ApiError
from ragchat.config import Settings
from ragchat.container import Services
from ragchat.core.access import AccessError, LoginResult
from ragchat.core.sso import SsoLoginFailed
from ragchat.infra.oidc import OidcError

router = APIRouter(tags=["single sign-on"])

STATE_COOKIE = "ragchat_oidc_state"
STATE_COOKIE_PATH = "/api/auth/oidc"
STATE_LIFETIME_S = 600  # as long as the pending login is kept server-side
CALLBACK_PATH = "/api/auth/oidc/callback"


class CallbackQueryFilter(logging.Filter):
    """Drops the query (the one-time `code` and the `state`) from uvicorn's access-log line of the
    callback: no credential of a login is ever written to a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            if path.startswith(CALLBACK_PATH + "?"):
                record.args = (*args[:2], CALLBACK_PATH + "?…", *args[3:])
        return True


def hide_callback_queries_from_access_log() -> None:
    """Install `CallbackQueryFilter` on uvicorn's access logger (once per process)."""
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, CallbackQueryFilter) for existing in access_log.filters):
        access_log.addFilter(CallbackQueryFilter())


class LoginMethods(BaseModel):
    password: bool = Field(description="Username and password login (POST /api/auth/login) is on")
    sso: bool = Field(description="Single sign-on is configured: GET /api/auth/oidc/login starts it")


def login_methods(settings: Settings) -> LoginMethods:
    """How one may sign in to this app (the UI shows a form, an SSO button, or both)."""
    return LoginMethods(password=settings.password_login == "on", sso=settings.sso_enabled)


class LogoutAnswer(BaseModel):
    redirect: str = Field(description="Where to send the browser: the provider's logout page, or /")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _provider_error(exc: OidcError) -> ApiError:
    return ApiError(502, exc.code, exc.message, type_="server_error")


@router.get(
    "/api/auth/methods",
    response_model=LoginMethods,
    summary="How to sign in",
    dependencies=[Depends(PUBLIC)],
)
async def methods(request: Request) -> LoginMethods:
    return login_methods(_settings(request))


@router.get(
    "/api/auth/oidc/login",
    summary="Sign in through the identity provider",
    description="Redirects the browser to the OpenID provider (authorization code flow with PKCE).",
    status_code=302,
    response_class=RedirectResponse,
    dependencies=[Depends(PUBLIC)],
    responses={
        404: {"description": "Single sign-on is not configured"},
        502: {"description": "Provider down"},
    },
)
async def oidc_login(request: Request, services: ServicesDep) -> RedirectResponse:
    settings = _settings(request)
    if not settings.sso_enabled:
        raise ApiError(404, "sso_not_configured", "single sign-on is not configured (RAGCHAT_OIDC_ISSUER)")
    redirect_uri = settings.oidc_redirect_url or str(request.url_for("oidc_callback"))
    try:
        authorization = await services.sso.begin(redirect_uri)
    except OidcError as exc:
        raise _provider_error(exc) from None
    response = RedirectResponse(authorization.url, status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        authorization.state,
        max_age=STATE_LIFETIME_S,
        path=STATE_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get(
    CALLBACK_PATH,
    name="oidc_callback",
    summary="The identity provider's answer",
    description="Checks state, code and ID token, maps the user and groups, opens a session, redirects to /. "
    "A refusal is the JSON error, or, for a browser (Accept: text/html), a redirect to "
    "/#sso_error=CODE&message=TEXT that the sign-in form shows.",
    status_code=303,
    response_class=RedirectResponse,
    dependencies=[Depends(PUBLIC)],
    responses={
        401: {"description": "The provider's answer was refused"},
        403: {"description": "The user may not sign in"},
        502: {"description": "Provider down"},
    },
)
async def oidc_callback(
    request: Request,
    services: ServicesDep,
    state: str = Query("", max_length=512),
    code: str = Query("", max_length=4096),
    error: str | None = Query(None, max_length=200),
) -> RedirectResponse:
    if not _settings(request).sso_enabled:
        raise ApiError(404, "sso_not_configured", "single sign-on is not configured (RAGCHAT_OIDC_ISSUER)")
    try:
        result = await _finish_login(request, services, state=state, code=code, error=error)
    except (AccessError, ApiError) as exc:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        # A browser: back to the sign-in form, which shows why (the fragment never reaches a server log).
        fragment = urlencode({"sso_error": exc.code, "message": exc.message})
        return RedirectResponse(f"/#{fragment}", status_code=303)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, request, result.session_token, services.access.session_lifetime_s)
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH, httponly=True, samesite="lax")
    return response


async def _finish_login(
    request: Request, services: Services, *, state: str, code: str, error: str | None
) -> LoginResult:
    started_here = request.cookies.get(STATE_COOKIE, "")
    if not state or not started_here or not hmac.compare_digest(state.encode(), started_here.encode()):
        raise SsoLoginFailed(
            "sso_state_invalid",
            "this sign-in was not started by this browser, or took too long; sign in again",
        )
    if error is not None:
        await blocking(services.sso.pending.take, state)  # the login is over either way
        raise SsoLoginFailed("sso_denied", f"the identity provider did not sign you in ({error})")
    try:
        return await services.sso.finish(state=state, code=code, address=client_address(request))
    except OidcError as exc:
        raise _provider_error(exc) from None


@router.post(
    "/api/auth/oidc/logout",
    response_model=LogoutAnswer,
    summary="Sign out, also at the identity provider",
    description="Ends the ragchat session; `redirect` is the provider's end-session page (which returns to "
    "/) when it offers one, else /.",
    responses={401: {"description": "Not signed in"}},
)
async def oidc_logout(request: Request, services: ServicesDep, _: UserPrincipal) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await blocking(services.access.logout, token)
    configured = _settings(request).oidc_redirect_url
    home = str(httpx.URL(configured).join("/")) if configured else str(request.url_for("index"))
    redirect = await services.sso.end_session_url(home) or "/"
    response = Response(
        LogoutAnswer(redirect=redirect).model_dump_json(), media_type="application/json", status_code=200
    )
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
