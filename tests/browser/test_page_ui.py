"""The UI's own behaviour, no LLM needed: safe Markdown with clickable citations, collections, the phone
layout, and the page's offline, locked-down delivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DATA_DIR, PageProblems

pytestmark = pytest.mark.browser

# Nothing listens on the discard port: these tests never reach an LLM.
NO_LLM = "http://127.0.0.1:9/v1"

HOSTILE_ANSWER = """**Rotate** keys weekly [1]. Both passages agree [1, 2]; [7] matches nothing.

<img src="x" onerror="window.pwned = 'img'"><script>window.pwned = 'script'</script>
[a link](javascript:window.pwned='link') and [the docs](https://example.org/docs)

`[2]` in code stays text.
"""

RENDER = """
(markdown) => import("/static/js/markdown.js").then(({ renderAnswer }) => {
  const target = document.createElement("div");
  document.body.append(target);
  const sources = new Map([
    [1, { index: 1, document: "keys.md", heading: "Keys > Rotation", snippet: "Rotate weekly." }],
    [2, { index: 2, document: "keys.md", heading: "Keys > Revocation", snippet: "Revoke at once." }],
  ]);
  window.cited = [];
  renderAnswer(target, markdown, sources, (source) => window.cited.push(source.index));
  target.id = "rendered";
  return target.innerHTML;
})
"""


def test_answers_are_sanitised_markdown_with_citation_buttons(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(vllm_base_url=NO_LLM) as app:
        page, problems = open_page(app)
        html = page.evaluate(RENDER, HOSTILE_ANSWER)
        rendered = page.locator("#rendered")

        expect(rendered.locator("strong")).to_have_text("Rotate")
        for forbidden in ("<script", "<img", "onerror", "javascript:"):
            assert forbidden not in html
        assert page.evaluate("window.pwned") is None
        external = rendered.get_by_role("link", name="the docs")
        expect(external).to_have_attribute("rel", "noopener noreferrer")
        expect(external).to_have_attribute("target", "_blank")

        # [1] and [1, 2] become buttons; [7] (no such source) and [2] inside code stay text.
        buttons = rendered.locator("button.cite")
        expect(buttons).to_have_text(["1", "1", "2"])
        expect(rendered).to_contain_text("[7] matches nothing")
        expect(rendered.locator("code")).to_have_text("[2]")
        expect(buttons.nth(0)).to_have_accessible_name("Source 1: keys.md — Keys > Rotation")
        buttons.nth(2).click()
        assert page.evaluate("window.cited") == [2]
        assert problems.exceptions == []


def test_page_is_served_offline_with_a_strict_content_security_policy(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(vllm_base_url=NO_LLM, default_collection="handbook") as app:
        with app.api() as api:
            response = api.get("/")
            assert response.headers["content-type"].startswith("text/html")
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "connect-src 'self'" in policy
            assert '<meta name="ragchat-default-collection" content="handbook">' in response.text
            scripts = ("/static/js/main.js", "/static/vendor/marked.esm.js", "/static/vendor/purify.es.js")
            for asset in scripts:
                script = api.get(asset)
                assert script.status_code == 200
                assert script.headers["content-type"].startswith("text/javascript")

        page, problems = open_page(app)
        expect(page.locator("#composer-hint")).to_contain_text("Asking handbook")
        # No LLM: the header light and the banner say so, with what to do.
        expect(page.locator("#status")).to_have_attribute("data-state", "warn")
        expect(page.locator("#banner")).to_contain_text("./scripts/start_vllm.sh")
        assert problems.exceptions == []
        assert problems.foreign_requests == []


def test_collections_can_be_created_chosen_and_listed(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(vllm_base_url=NO_LLM) as app:
        page, problems = open_page(app)
        page.get_by_role("button", name="New…").click()
        name = page.get_by_label("New collection name")
        name.fill("garden")
        name.press("Enter")
        expect(page.get_by_label("Collection", exact=True)).to_have_value("garden")
        expect(page.locator("#composer-hint")).to_contain_text("Asking garden")

        handbook = DATA_DIR / "greenhouse-handbook.md"
        page.locator("#file-input").set_input_files(handbook)
        expect(page.locator(".upload-results .result.added")).to_contain_text(handbook.name)
        expect(page.locator("#documents .doc")).to_have_count(1)
        with app.api() as api:
            collections = api.get("/api/collections").json()["collections"]
            assert [c["name"] for c in collections] == ["default", "garden"]
            (stored,) = api.get("/api/documents").json()["documents"]
            assert stored["collection"] == "garden"

        # Back to the (empty) default collection, and the choice survives a reload.
        page.get_by_label("Collection", exact=True).select_option("default")
        expect(page.locator("#documents .doc")).to_have_count(0)
        page.reload()
        expect(page.get_by_label("Collection", exact=True)).to_have_value("default")
        page.get_by_label("Collection", exact=True).select_option("garden")
        expect(page.locator("#documents .doc")).to_have_count(1)
        assert problems.exceptions == []


def test_an_upload_shows_its_jobs_progress_and_each_files_result(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(vllm_base_url=NO_LLM) as app:
        page, problems = open_page(app)
        good = (DATA_DIR / "greenhouse-handbook.md").read_bytes()
        files = [
            {"name": "handbook.md", "mimeType": "text/markdown", "buffer": good},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 not really a PDF"},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"Water the tomatoes at dawn."},
        ]
        expect(page.locator("#file-input")).to_be_enabled()  # the page knows the collection is writable
        with page.expect_response(lambda response: response.url.startswith(app.url + "/api/jobs/")):
            page.locator("#file-input").set_input_files(files)  # the page follows the upload's job
        results = page.locator(".upload-results .result")
        expect(results).to_have_count(3)
        expect(page.locator(".upload-state")).to_have_text("2 of 3 indexed")
        expect(results.nth(0)).to_have_class("result added")
        expect(results.nth(1)).to_have_class("result skipped")
        expect(results.nth(1)).to_contain_text("broken.pdf")
        expect(results.nth(1).locator(".result-detail")).to_contain_text("PDF")
        expect(results.nth(2)).to_have_class("result added")
        expect(page.locator("#documents .doc")).to_have_count(2)
        assert problems.exceptions == []


def test_phone_width_puts_documents_in_a_drawer(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(vllm_base_url=NO_LLM) as app:
        page, problems = open_page(app, width=390, height=844)
        sidebar = page.get_by_role("complementary", name="Documents", exact=True)
        toggle = page.get_by_role("button", name="Documents", exact=True)
        expect(sidebar).to_be_hidden()
        expect(page.get_by_label("Your question")).to_be_visible()

        toggle.click()
        expect(sidebar).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(sidebar.get_by_text("Add documents", exact=True)).to_be_visible()
        page.keyboard.press("Escape")
        expect(sidebar).to_be_hidden()
        expect(toggle).to_have_attribute("aria-expanded", "false")

        # Nothing overflows sideways at phone width.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert problems.exceptions == []
