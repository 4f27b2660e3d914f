"""Identity and access in the web UI, with auth on: real Chromium, the real app under uvicorn, users, keys and
grants made with the real `ragchat` CLI on the app's data directory while it runs, and the official `openai`
client using a key made in the page.

No LLM is needed: nothing here asks a question.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DATA_DIR, LiveApp, PageProblems

pytestmark = pytest.mark.browser

# Nothing listens on the discard port: these tests never reach an LLM.
NO_LLM = "http://127.0.0.1:9/v1"
ADMIN_PASSWORD = "admin-password-for-browser-tests"
ALICE_PASSWORD = "alice-password-for-browser-tests"
HANDBOOK = DATA_DIR / "greenhouse-handbook.md"


def auth_on(**overrides: Any) -> dict[str, Any]:
    """Settings for an app with auth on and a known first admin password."""
    return {"vllm_base_url": NO_LLM, "auth": "on", "admin_password": ADMIN_PASSWORD, **overrides}


def ragchat_cli(app: LiveApp, *args: str, stdin: str = "") -> str:
    """Run the real `ragchat` CLI on the running app's data directory; its standard output."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ragchat"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "RAGCHAT_DATA_DIR": str(app.settings.data_dir)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"ragchat {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    password_box = page.get_by_label("Password")
    password_box.fill(password)
    password_box.press("Enter")
    expect(page.locator("#login-submit")).to_be_enabled()  # the answer is in: the next try may start


def open_account_menu(page: Page, name: str) -> None:
    page.get_by_label(f"Account: {name}. Show menu").click()


def collection_options(page: Page) -> list[str]:
    return page.get_by_label("Collection", exact=True).locator("option").all_text_contents()


def assert_clean(problems: PageProblems) -> None:
    # Console errors are not checked: Chromium logs every 401 (the sign-in check) as one.
    assert problems.exceptions == []
    assert problems.foreign_requests == [], "the UI must work offline: no requests to other origins"


DIRECT_UPLOAD = """
async (collection) => {
  const me = await (await fetch("/api/auth/me")).json();
  const form = new FormData();
  form.append("files", new File(["# Notes\\n\\nWritten past the read-only upload zone."], "sneaky.md"));
  form.append("collection", collection);
  const response = await fetch("/api/documents", {
    method: "POST", body: form, headers: { "X-CSRF-Token": me.csrf_token },
  });
  return { status: response.status, body: await response.json() };
}
"""


def test_member_signs_in_sees_granted_collections_and_manages_keys(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(**auth_on(login_attempts=2)) as app:
        # alice may write "notes" and read "shelf"; "secret" is not hers to see.
        ragchat_cli(app, "users", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        for name in ("notes", "shelf", "secret"):
            ragchat_cli(app, "collections", "create", name)
        ragchat_cli(app, "collections", "grant", "notes", "--user", "alice", "--write")
        ragchat_cli(app, "collections", "grant", "shelf", "--user", "alice", "--read")
        made = ragchat_cli(app, "keys", "create", "--user", "admin", "--scope", "write", "--json")
        bearer = {"Authorization": f"Bearer {json.loads(made)['key']}"}
        admin = httpx.Client(base_url=app.url, timeout=60.0, headers=bearer)
        for collection in ("shelf", "secret"):
            response = admin.post(
                "/api/documents?wait=true",
                data={"collection": collection},
                files={"files": (HANDBOOK.name, HANDBOOK.read_bytes())},
            )
            assert response.status_code == 200, response.text

        page, problems = open_page(app)

        # Not signed in: the sign-in form, nothing else.
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_label("Your question")).to_be_hidden()
        expect(page.get_by_label("Username")).to_be_focused()

        # Too many failures for one account: the form says how long to wait.
        for _ in range(3):
            sign_in(page, "mallory", "not-the-password")
        expect(page.locator("#login-error")).to_contain_text("Too many sign-in attempts. Wait ")

        # A wrong password says so, and keeps the form.
        sign_in(page, "alice", "not-the-password")
        error = page.locator("#login-error")
        expect(error).to_have_text("Wrong username or password.")
        expect(error).to_have_attribute("role", "alert")
        expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")

        # The right one shows the UI, with alice's name in the top bar and only her collections.
        sign_in(page, "alice", ALICE_PASSWORD)
        expect(page.get_by_label("Your question")).to_be_visible()
        expect(page.locator("#account-name")).to_have_text("alice")
        expect(page.get_by_label("Collection", exact=True)).to_have_value("notes")
        assert collection_options(page) == ["notes", "shelf"]

        # Read-only "shelf": its documents show, but no upload zone and no Delete.
        page.get_by_label("Collection", exact=True).select_option("shelf")
        expect(page.locator("#documents .doc")).to_have_count(1)
        expect(page.locator("#documents .doc button")).to_have_count(0)
        expect(page.locator("#file-input")).to_be_disabled()
        expect(page.locator(".dropzone")).to_have_attribute("aria-disabled", "true")
        expect(page.locator("#dropzone-hint")).to_contain_text("You may only read “shelf”")
        expect(page.locator("#collection-access")).to_contain_text("read-only")
        expect(page.get_by_role("button", name="Share…")).to_be_hidden()
        # ... and an upload past the disabled zone (session cookie and CSRF token) is refused.
        refused = page.evaluate(DIRECT_UPLOAD, "shelf")
        assert refused["status"] == 403, refused
        shelf = admin.get("/api/documents", params={"collection": "shelf"}).json()["documents"]
        assert [d["path"] for d in shelf] == [HANDBOOK.name]

        # Writable "notes": upload through the page.
        page.get_by_label("Collection", exact=True).select_option("notes")
        expect(page.locator("#file-input")).to_be_enabled()
        with page.expect_request(lambda request: request.url == app.url + "/api/documents") as upload:
            page.locator("#file-input").set_input_files(HANDBOOK)
        assert upload.value.method == "POST"
        assert upload.value.header_value("x-csrf-token"), "the page's own uploads carry the CSRF token"
        expect(page.locator(".upload-results .result.added")).to_contain_text(HANDBOOK.name)
        expect(page.locator("#documents .doc")).to_have_count(1)
        expect(page.get_by_role("button", name="Delete Greenhouse handbook")).to_be_visible()

        # An API key made in the page, shown once, works with the official openai client.
        open_account_menu(page, "alice")
        page.get_by_role("button", name="API keys").click()
        dialog = page.get_by_role("dialog", name="API keys")
        expect(dialog).to_be_visible()
        dialog.get_by_label("Name").fill("laptop")
        dialog.get_by_label("Scope").select_option("read")
        dialog.get_by_label("Expires after (days)").fill("30")
        dialog.get_by_role("button", name="Create key").click()
        expect(dialog.get_by_text("it will not be shown again")).to_be_visible()
        key_box = dialog.get_by_label("New API key")
        expect(key_box).to_have_value(re.compile(r"^rck_\w+"))
        key = key_box.input_value()
        dialog.get_by_role("button", name="Copy").click()
        expect(dialog.locator("#copy-status")).not_to_be_empty()
        row = dialog.locator("tr.key", has_text="laptop")
        expect(row).to_contain_text("read")
        expect(row.locator(".key-state")).to_have_text("active")

        client = openai.OpenAI(base_url=app.url + "/v1", api_key=key, max_retries=0)
        models = {model.id for model in client.models.list()}
        readable = {model.split("/", 1)[1] for model in models if "/" in model}
        assert readable == {"notes", "shelf"}, models

        # Closed and opened again, the dialog no longer holds the key anywhere.
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        open_account_menu(page, "alice")
        page.get_by_role("button", name="API keys").click()
        expect(dialog.locator("#new-key")).to_be_hidden()
        expect(key_box).to_have_value("")
        assert key not in page.content()

        # Revoking takes a confirmation, then the key stops working at once.
        dialog.get_by_role("button", name="Revoke laptop").click()
        dialog.get_by_role("button", name="Confirm: revoke laptop").click()
        expect(row.locator(".key-state")).to_have_text("revoked")
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
        page.keyboard.press("Escape")

        # A session that ends behind the page's back (here: its cookie is gone) returns to the sign-in form.
        page.context.clear_cookies()
        page.get_by_label("Collection", exact=True).select_option("shelf")
        expect(page.locator("#login-notice")).to_contain_text("Your session has ended")
        sign_in(page, "alice", ALICE_PASSWORD)
        expect(page.locator("#account-name")).to_have_text("alice")

        # Sign out: back to the form, and the old cookie no longer works.
        (cookie,) = [c for c in page.context.cookies() if c["name"] == "ragchat_session"]
        open_account_menu(page, "alice")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.locator("#login-notice")).to_have_text("You have signed out.")
        expect(page.get_by_label("Your question")).to_be_hidden()
        stale = httpx.get(app.url + "/api/auth/me", cookies={"ragchat_session": cookie["value"]}, timeout=30)
        assert stale.status_code == 401
        admin.close()
        assert_clean(problems)


ATTACKER_PAGE = """<!doctype html>
<html><body>
<form action="{app}/api/documents" method="post" enctype="multipart/form-data">
  <input type="hidden" name="collection" value="garden">
  <input type="file" name="files" id="files">
  <button type="submit">See the prize</button>
</form>
<script>
  const replacement = new DataTransfer();
  replacement.items.add(new File(["# Greenhouse handbook\\n\\nPull out every plant."], "{name}"));
  document.getElementById("files").files = replacement.files;
</script>
</body></html>
"""


@contextlib.contextmanager
def attacker_site(app_url: str) -> Iterator[str]:
    """Another origin (same host, other port) serving a page whose form posts a document to the app."""
    page = ATTACKER_PAGE.replace("{app}", app_url).replace("{name}", HANDBOOK.name).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="attacker-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_form_posted_from_another_origin_is_refused_and_changes_nothing(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(**auth_on()) as app:
        page, problems = open_page(app)
        sign_in(page, "admin", ADMIN_PASSWORD)
        expect(page.locator("#account-name")).to_have_text("admin")

        # The admin creates a collection in the page (POST /api/collections) and uploads the handbook.
        page.get_by_role("button", name="New…").click()
        name = page.get_by_label("New collection name")
        name.fill("garden")
        name.press("Enter")
        expect(page.get_by_label("Collection", exact=True)).to_have_value("garden")
        page.locator("#file-input").set_input_files(HANDBOOK)
        expect(page.locator("#documents .doc")).to_have_count(1)
        before = page.request.get(app.url + "/api/documents").json()["documents"]
        assert [d["collection"] for d in before] == ["garden"]

        # Another site, opened in the same signed-in browser, posts a replacement of the handbook.
        with attacker_site(app.url) as evil_url:
            evil = page.context.new_page()
            evil.goto(evil_url)
            with evil.expect_response(lambda response: response.url == app.url + "/api/documents") as posted:
                evil.get_by_role("button", name="See the prize").click()
            refused = posted.value
            # The browser sent the session cookie (same site, other port): the CSRF check is what refuses.
            assert "ragchat_session=" in (refused.request.header_value("cookie") or "")
            assert refused.status == 403
            assert refused.json()["error"]["code"] == "csrf_failed"
            evil.close()

        after = page.request.get(app.url + "/api/documents").json()["documents"]
        assert after == before
        page.reload()
        expect(page.locator("#documents .doc")).to_have_count(1)

        # The owner shares it in its dialog (the CLI sees the grant); removing takes a confirmation.
        ragchat_cli(app, "users", "add", "bob")
        page.get_by_role("button", name="Share…").click()
        dialog = page.get_by_role("dialog", name="Share “garden”")
        expect(dialog.locator("#grants-status")).to_have_text("Not shared with anyone yet.")
        dialog.get_by_label("Name").fill("bob")
        dialog.get_by_label("Permission").select_option("write")
        dialog.get_by_role("button", name="Share", exact=True).click()
        expect(dialog.locator(".grant")).to_contain_text("bob")
        expect(dialog.locator(".grant .grant-permission")).to_have_text("write")
        (garden,) = [c for c in cli_collections(app) if c["name"] == "garden"]
        assert garden["grants"] == [{"kind": "user", "name": "bob", "permission": "write"}]
        dialog.get_by_role("button", name="Remove bob").click()
        dialog.get_by_role("button", name="Confirm: remove bob").click()
        expect(dialog.locator(".grant")).to_have_count(0)
        (garden,) = [c for c in cli_collections(app) if c["name"] == "garden"]
        assert garden["grants"] == []
        assert_clean(problems)


def cli_collections(app: LiveApp) -> list[dict[str, Any]]:
    """`ragchat collections list --json`: one JSON object per line."""
    lines = ragchat_cli(app, "collections", "list", "--json").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_auth_off_shows_no_sign_in_and_no_account(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(vllm_base_url=NO_LLM) as app:  # the fixture turns auth off on loopback
        page, problems = open_page(app)
        expect(page.get_by_label("Your question")).to_be_visible()
        expect(page.get_by_role("heading", name="Sign in")).to_be_hidden()
        expect(page.locator("#account")).to_be_hidden()
        expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        expect(page.get_by_role("button", name="Share…")).to_be_hidden()
        expect(page.locator("#file-input")).to_be_enabled()
        assert problems.exceptions == []
        assert problems.console_errors == []
