"""Single sign-on through the real app and a real OpenID provider (Node's oidc-provider): a browser-like
httpx client follows the real flow (ragchat's login redirect, the provider's login and consent forms, the
callback), and the session it gets sees the collections granted to the user's groups at the provider."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ragchat.api.app import create_app
from ragchat.config import Settings
from ragchat.core.access import Principal
from tests.support.oidc_provider import ALICE, BOB, IN_PROCESS_APP_URL, OidcProvider, ProviderAccount, sign_in

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADMIN_PASSWORD = "admin-password-for-sso-tests"
ROOT = Principal.local_admin("test", "local")


@dataclass
class SsoApp:
    """The app in-process, reachable at IN_PROCESS_APP_URL by clients that also reach the provider."""

    app: FastAPI

    def browser(self) -> httpx.AsyncClient:
        """A fresh cookie jar: the app through ASGI, the provider over the network."""
        return httpx.AsyncClient(
            mounts={IN_PROCESS_APP_URL: httpx.ASGITransport(app=self.app)},
            base_url=IN_PROCESS_APP_URL,
            timeout=60,
        )

    @property
    def services(self) -> Any:
        return self.app.state.services


@pytest.fixture
def sso_app(make_settings: Callable[..., Settings], oidc_provider: OidcProvider) -> Callable[..., Any]:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[SsoApp]:
        settings = make_settings(
            **oidc_provider.settings(auth="on", admin_password=ADMIN_PASSWORD, **overrides)
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield SsoApp(app)

    return start


async def sso_login(browser: httpx.AsyncClient, account: ProviderAccount) -> httpx.Response:
    """The whole flow as a browser does it; returns the app's answer to the callback."""
    start = await browser.get("/api/auth/oidc/login")
    assert start.status_code == 302, start.text
    left = await sign_in(browser, start.headers["location"], account)
    assert left.is_redirect, left.text
    callback = left.headers["location"]
    assert callback.startswith(IN_PROCESS_APP_URL + "/api/auth/oidc/callback?")
    return await browser.get(callback)


async def admin_client(app: SsoApp) -> httpx.AsyncClient:
    client = app.browser()
    answer = await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


async def test_each_user_sees_the_collections_granted_to_their_provider_groups(
    sso_app: Callable[..., Any],
) -> None:
    async with sso_app() as app:
        sessions = {}
        for account in (ALICE, BOB):
            browser = app.browser()
            done = await sso_login(browser, account)
            assert done.status_code == 303 and done.headers["location"] == "/"
            assert "ragchat_session" in done.headers["set-cookie"]
            me = (await browser.get("/api/auth/me")).json()
            assert me["user"]["name"] == account.name and me["user"]["auth"] == "session"
            assert me["user"]["groups"] == sorted(account.groups)
            assert me["login"] == {"password": True, "sso": True}
            sessions[account.name] = browser

        admin = await admin_client(app)
        for collection, group in (("eng-docs", "engineering"), ("sales-docs", "sales")):
            assert (await admin.post("/api/collections", json={"name": collection})).status_code == 201
            grant = {"kind": "group", "name": group, "permission": "read"}
            answer = await admin.put(f"/api/collections/{collection}/grants", json=grant)
            assert answer.status_code == 200, answer.text

        seen = {}
        for name, browser in sessions.items():
            listed = (await browser.get("/api/collections")).json()["collections"]
            seen[name] = sorted(collection["name"] for collection in listed)
        assert seen == {"alice": ["eng-docs"], "bob": ["sales-docs"]}
        # An SSO user is an ordinary user: they create API keys like anyone else.
        alice = sessions["alice"]
        alice.headers["X-CSRF-Token"] = (await alice.get("/api/auth/me")).json()["csrf_token"]
        key = await alice.post("/api/keys", json={"scope": "read"})
        assert key.status_code == 201, key.text
        for client in (admin, *sessions.values()):
            await client.aclose()


async def test_groups_follow_the_provider_at_every_login(sso_app: Callable[..., Any]) -> None:
    async with sso_app() as app:
        async with app.browser() as browser:
            assert (await sso_login(browser, ALICE)).status_code == 303
        access = app.services.access
        access.add_group(ROOT, "contractors")
        access.set_membership(ROOT, "contractors", "alice", True)
        assert access.identity.groups_of(access.identity.user_by_name("alice").id)[-1][1] == "engineering"
        async with app.browser() as browser:
            assert (await sso_login(browser, ALICE)).status_code == 303
            me = (await browser.get("/api/auth/me")).json()
        assert me["user"]["groups"] == ["engineering"]


async def test_a_replayed_or_foreign_callback_is_refused(sso_app: Callable[..., Any]) -> None:
    async with sso_app() as app, app.browser() as browser:
        start = await browser.get("/api/auth/oidc/login")
        left = await sign_in(browser, start.headers["location"], ALICE)
        callback = left.headers["location"]
        async with app.browser() as stranger:  # has the link, not the browser that started the login
            foreign = await stranger.get(callback)
        assert foreign.status_code == 401 and foreign.json()["error"]["code"] == "sso_state_invalid"
        assert (await browser.get(callback)).status_code == 303
        replay = await browser.get(callback)
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "sso_state_invalid"
        state = httpx.URL(callback).params["state"]
        forged = await browser.get("/api/auth/oidc/callback", params={"state": state, "code": "forged"})
        assert forged.status_code == 401


async def test_a_refusal_at_the_provider_ends_the_login(sso_app: Callable[..., Any]) -> None:
    async with sso_app() as app, app.browser() as browser:
        await browser.get("/api/auth/oidc/login")
        state = browser.cookies.get("ragchat_oidc_state")
        answer = await browser.get(
            "/api/auth/oidc/callback", params={"state": state, "error": "access_denied"}
        )
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "sso_denied"
        assert (await browser.get("/api/auth/me")).status_code == 401


async def test_without_auto_creation_only_users_an_admin_made_may_log_in(
    sso_app: Callable[..., Any],
) -> None:
    async with sso_app(oidc_auto_create_users=False) as app:
        async with app.browser() as browser:
            refused = await sso_login(browser, BOB)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_unknown_user"
        app.services.access.add_user(ROOT, "bob")
        async with app.browser() as browser:
            assert (await sso_login(browser, BOB)).status_code == 303


async def test_a_local_account_is_not_taken_over(sso_app: Callable[..., Any]) -> None:
    async with sso_app() as app:
        app.services.access.add_user(ROOT, "alice", password="alice-local-password")
        async with app.browser() as browser:
            refused = await sso_login(browser, ALICE)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_local_account"
            assert (await browser.get("/api/auth/me")).status_code == 401


async def test_password_login_can_be_switched_off(sso_app: Callable[..., Any]) -> None:
    async with sso_app(password_login="off") as app, app.browser() as browser:
        assert (await browser.get("/api/auth/methods")).json() == {"password": False, "sso": True}
        answer = await browser.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "password_login_off"


async def test_logout_ends_the_session_and_the_provider_session(
    sso_app: Callable[..., Any], oidc_provider: OidcProvider
) -> None:
    async with sso_app() as app, app.browser() as browser:
        assert (await sso_login(browser, ALICE)).status_code == 303
        csrf = (await browser.get("/api/auth/me")).json()["csrf_token"]
        assert (await browser.post("/api/auth/oidc/logout")).status_code == 403  # no CSRF token
        answer = await browser.post("/api/auth/oidc/logout", headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200, answer.text
        redirect = httpx.URL(answer.json()["redirect"])
        assert str(redirect).startswith(oidc_provider.issuer + "/session/end")
        assert redirect.params["post_logout_redirect_uri"] == IN_PROCESS_APP_URL + "/"
        assert (await browser.get("/api/auth/me")).status_code == 401
        confirm = await browser.get(redirect)
        assert confirm.status_code == 200 and "Sign out" in confirm.text


async def test_a_browser_is_sent_back_to_the_sign_in_form_with_the_reason(
    sso_app: Callable[..., Any],
) -> None:
    async with sso_app(oidc_auto_create_users=False) as app, app.browser() as browser:
        browser.headers["Accept"] = "text/html,application/xhtml+xml"
        answer = await sso_login(browser, BOB)
        assert answer.status_code == 303
        location = httpx.URL(answer.headers["location"])
        assert location.path == "/" and not location.query
        reason = dict(httpx.QueryParams(location.fragment))
        assert reason["sso_error"] == "sso_unknown_user" and "'bob'" in reason["message"]


async def test_no_secret_of_a_login_reaches_a_log_line(
    sso_app: Callable[..., Any], oidc_provider: OidcProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with sso_app() as app, app.browser() as browser:
        done = await sso_login(browser, ALICE)
        assert done.status_code == 303
        session = browser.cookies.get("ragchat_session")
    callback = done.request.url.params
    secrets = [callback["code"], callback["state"], session, oidc_provider.client_secret, ALICE.password]
    # httpx and httpcore log the test browser's own traffic (URLs with the state and code in them); the
    # app's token request goes through Authlib's httpx2, whose log lines are checked too.
    lines = [
        record.getMessage()
        for record in caplog.records
        if not (record.name == "httpx" or record.name.startswith("httpcore."))
    ]
    assert lines, "nothing was logged: the check would prove nothing"
    leaked = [line for line in lines for secret in secrets if secret and secret in line]
    assert leaked == [], "\n".join(leaked)
