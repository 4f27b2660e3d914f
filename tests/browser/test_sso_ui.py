"""Single sign-on in the web UI: real Chromium logs in through the real OpenID provider's own pages (Node's
oidc-provider), and each of two users sees the collections granted to their groups at the provider.

No LLM is needed: nothing here asks a question.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ragchat.config import Settings
from tests.browser.conftest import LiveApp, PageProblems
from tests.support.live_app import live_app
from tests.support.oidc_provider import ALICE, BOB, CALLBACK_PATH, ProviderAccount, start_oidc_provider
from tests.support.vllm import free_port

pytestmark = pytest.mark.browser

NO_LLM = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
ADMIN_PASSWORD = "admin-password-for-sso-browser-tests"


@pytest.fixture
def sso_live_app(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[LiveApp]:
    """The app under uvicorn, with single sign-on through a provider that redirects to its port."""
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    with start_oidc_provider(
        tmp_path / "oidc",
        redirect_uris=[app_url + CALLBACK_PATH],
        post_logout_redirect_uris=[app_url + "/"],
    ) as provider:
        settings = make_settings(
            **provider.settings(auth="on", admin_password=ADMIN_PASSWORD, vllm_base_url=NO_LLM)
        )
        with live_app(settings, port=port) as url:
            yield LiveApp(url=url, settings=settings)


def ragchat_cli(app: LiveApp, *args: str) -> None:
    """Run the real `ragchat` CLI on the running app's data directory."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ragchat"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "RAGCHAT_DATA_DIR": str(app.settings.data_dir)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"ragchat {' '.join(args)} failed:\n{done.stderr}"


def sign_in_with_sso(page: Page, account: ProviderAccount) -> None:
    page.get_by_role("button", name="Sign in with SSO").click()
    # The provider's own pages: its login form, then its consent form.
    page.get_by_label("Username").fill(account.name)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Continue").click()


def collection_options(page: Page) -> list[str]:
    return page.get_by_label("Collection", exact=True).locator("option").all_text_contents()


def test_each_user_signs_in_through_the_provider_and_sees_their_groups_collections(
    sso_live_app: LiveApp, open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    app = sso_live_app
    for group in ("engineering", "sales"):
        ragchat_cli(app, "groups", "add", group)
    for collection, group in (("eng-docs", "engineering"), ("sales-docs", "sales")):
        ragchat_cli(app, "collections", "create", collection)
        ragchat_cli(app, "collections", "grant", collection, "--group", group, "--read")

    seen: dict[str, Any] = {}
    for account in (ALICE, BOB):
        page, problems = open_page(app)
        expect(page.get_by_role("button", name="Sign in with SSO")).to_be_visible()
        sign_in_with_sso(page, account)
        expect(page).to_have_url(app.url + "/")
        expect(page.get_by_label(f"Account: {account.name}. Show menu")).to_be_visible()
        expect(page.get_by_label("Collection", exact=True).locator("option")).not_to_have_count(0)
        seen[account.name] = collection_options(page)
        assert problems.exceptions == []

        # Signing out ends the ragchat session and goes through the provider's sign-out page.
        page.get_by_label(f"Account: {account.name}. Show menu").click()
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Yes, sign me out").click()
        page.goto(app.url + "/")
        expect(page.get_by_role("button", name="Sign in with SSO")).to_be_visible()
    assert seen == {"alice": ["eng-docs"], "bob": ["sales-docs"]}


def test_a_refused_user_sees_why_on_the_sign_in_form(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    open_page: Callable[..., tuple[Page, PageProblems]],
) -> None:
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    with start_oidc_provider(tmp_path / "oidc", redirect_uris=[app_url + CALLBACK_PATH]) as provider:
        settings = make_settings(
            **provider.settings(auth="on", oidc_auto_create_users=False, vllm_base_url=NO_LLM)
        )
        with live_app(settings, port=port) as url:
            page, problems = open_page(LiveApp(url=url, settings=settings))
            sign_in_with_sso(page, BOB)
            expect(page.locator("#login-notice")).to_contain_text("there is no ragchat user 'bob'")
            expect(page).to_have_url(app_url + "/")  # the reason left the address bar
            assert problems.exceptions == []


def test_password_form_hides_when_password_login_is_off(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    open_page: Callable[..., tuple[Page, PageProblems]],
) -> None:
    with start_oidc_provider(tmp_path / "oidc", redirect_uris=["http://127.0.0.1:9/cb"]) as provider:
        settings = make_settings(**provider.settings(auth="on", password_login="off", vllm_base_url=NO_LLM))
        with live_app(settings) as url:
            page, _ = open_page(LiveApp(url=url, settings=settings))
            expect(page.get_by_role("button", name="Sign in with SSO")).to_be_visible()
            expect(page.get_by_label("Password")).to_be_hidden()
