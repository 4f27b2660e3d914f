"""The web UI end to end: real Chromium, the real app under uvicorn, the real vLLM CPU server (SmolLM2).

Upload documents (one refused), ask a question and watch the answer stream in, open a cited passage, go on
with a follow-up in the saved conversation, start afresh, delete the document; and, on an empty collection,
see what to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ANSWER_TIMEOUT_MS, DATA_DIR, LiveApp, PageProblems
from tests.support.vllm import VllmServer

pytestmark = [pytest.mark.browser, pytest.mark.llm]

HANDBOOK = DATA_DIR / "greenhouse-handbook.md"
# SmolLM2-135M rarely cites on its own; asked like this, with greedy decoding, it does.
QUESTION = "How are aphids controlled? Answer with a citation such as [1]."
FOLLOW_UP = "When are they released?"

# Records every change of the newest answer (text, and whether it is still streaming) as it happens.
RECORD_ANSWER_CHANGES = """
() => {
  window.answerChanges = [];
  new MutationObserver(() => {
    const turns = document.querySelectorAll(".turn.assistant");
    const turn = turns[turns.length - 1];
    if (!turn) return;
    const change = {
      turn: turns.length,
      busy: turn.getAttribute("aria-busy") === "true",
      text: turn.querySelector(".answer").textContent,
    };
    const last = window.answerChanges[window.answerChanges.length - 1];
    if (!last || last.turn !== change.turn || last.busy !== change.busy || last.text !== change.text) {
      window.answerChanges.push(change);
    }
  }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
}
"""


def is_chat_request(url: str) -> bool:
    return url.endswith("/v1/chat/completions")


def sse_sources(body: str) -> dict[int, dict[str, Any]]:
    """The `sources` of the final chunk of an SSE chat stream, by citation number."""
    for line in body.splitlines():
        if line.startswith("data: {"):
            event = json.loads(line.removeprefix("data: "))
            if "sources" in event:
                return {source["index"]: source for source in event["sources"]}
    raise AssertionError(f"no sources chunk in the stream:\n{body}")


def squeeze(text: str) -> str:
    return " ".join(text.split())


def assert_clean(problems: PageProblems) -> None:
    assert problems.exceptions == []
    assert problems.console_errors == []
    assert problems.foreign_requests == [], "the UI must work offline: no requests to other origins"


def test_upload_ask_cite_follow_up_and_delete(
    live_app: Callable[..., Any],
    open_page: Callable[..., tuple[Page, PageProblems]],
    vllm_server: VllmServer,
    tmp_path: Path,
) -> None:
    refused = tmp_path / "photo.png"
    refused.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")

    with live_app(vllm_base_url=vllm_server.base_url, vllm_model=vllm_server.model) as app:
        app_: LiveApp = app
        page, problems = open_page(app_)

        # The backend model and its health are in the header.
        status = page.locator("#status")
        expect(status.locator(".status-label")).to_have_text(vllm_server.model)
        expect(status).to_have_attribute("data-state", "ok")
        # Nothing ingested yet: the page says so and offers the way out.
        expect(page.get_by_text("Nothing has been added to")).to_be_visible()
        expect(page.get_by_role("button", name="Add documents", exact=True)).to_be_visible()

        # Upload one readable file and one that must be refused, with a result per file.
        page.locator("#file-input").set_input_files([HANDBOOK, refused])
        results = page.locator(".upload-results")
        expect(results.locator(".result.added")).to_contain_text(HANDBOOK.name)
        expect(results.locator(".result.skipped")).to_contain_text(refused.name)
        with app_.api() as api:
            (stored,) = api.get("/api/documents", params={"collection": "default"}).json()["documents"]
        chunk_word = "chunk" if stored["chunk_count"] == 1 else "chunks"
        expect(results.locator(".result.added")).to_contain_text(f"{stored['chunk_count']} {chunk_word}")
        expect(results.locator(".result.skipped .result-detail")).not_to_be_empty()
        documents = page.locator("#documents .doc")
        expect(documents).to_have_count(1)
        expect(documents.first).to_contain_text("Greenhouse handbook")

        # Ask; the answer streams in: text shows while the answer is still being generated.
        page.evaluate(RECORD_ANSWER_CHANGES)
        question = page.get_by_label("Your question")
        question.fill(QUESTION)
        with page.expect_response(lambda response: is_chat_request(response.url)) as chat_response:
            question.press("Enter")
        answer_turn = page.locator(".turn.assistant").last
        expect(answer_turn).to_have_attribute("aria-busy", "false", timeout=ANSWER_TIMEOUT_MS)
        final_text = answer_turn.locator(".answer").text_content() or ""
        changes = page.evaluate("window.answerChanges")
        final_length = len(final_text.strip())
        partial = [c["text"] for c in changes if c["busy"] and 0 < len(c["text"].strip()) < final_length]
        assert partial, f"no partial answer was shown before the answer completed: {changes}"
        assert final_text.strip(), "the answer is empty"

        # Click a citation marker: the cited passage opens beside the answer.
        sources = sse_sources(chat_response.value.text())
        marker = answer_turn.locator(".answer button.cite").first
        expect(marker).to_be_visible()
        number = int(marker.get_attribute("data-index") or "0")
        source = sources[number]
        marker.click()
        panel = page.get_by_role("complementary", name=f"Source {number}")
        expect(panel).to_be_visible()
        expect(panel.locator(".source-document")).to_have_text(source["document"])
        expect(panel.locator(".source-heading")).to_have_text(source["heading"])
        expect(panel.locator(".source-snippet")).to_have_text(source["snippet"])
        # ... and it is a real passage of the uploaded document, under one of its headings.
        assert source["document"] == HANDBOOK.name
        assert squeeze(source["snippet"]).removesuffix("…") in squeeze(HANDBOOK.read_text())
        assert source["heading"].split(" > ")[-1] in HANDBOOK.read_text()
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()

        # Shift+Enter is a new line, Enter sends; the follow-up continues the saved conversation by id, so it
        # carries only the new question (the server keeps the history).
        assert chat_response.value.request.post_data_json["store"] is True
        expect(page).to_have_url(re.compile(r"/\?c=[A-Za-z0-9_-]+$"))
        conversation_id = page.url.split("?c=")[1]
        question.fill(FOLLOW_UP)
        question.press("Shift+Enter")
        question.press_sequentially("Answer briefly.")
        expect(question).to_have_value(f"{FOLLOW_UP}\nAnswer briefly.")
        expect(page.locator(".turn.user")).to_have_count(1)
        with page.expect_request(lambda request: is_chat_request(request.url)) as follow_up:
            question.press("Enter")
        sent = follow_up.value.post_data_json
        assert sent is not None
        assert sent["messages"] == [{"role": "user", "content": f"{FOLLOW_UP}\nAnswer briefly."}]
        assert sent["conversation_id"] == conversation_id
        assert sent["collection"] == "default"
        expect(page.locator(".turn.assistant").last).to_have_attribute(
            "aria-busy", "false", timeout=ANSWER_TIMEOUT_MS
        )
        expect(page.locator(".turn.assistant")).to_have_count(2)

        # A new conversation starts empty and is saved as a new one.
        page.get_by_role("button", name="New conversation").click()
        expect(page.locator(".turn")).to_have_count(0)
        question.fill("When are the tomato seedlings watered?")
        with page.expect_request(lambda request: is_chat_request(request.url)) as fresh:
            question.press("Enter")
        fresh_body = fresh.value.post_data_json
        assert fresh_body is not None
        assert [m["role"] for m in fresh_body["messages"]] == ["user"]
        assert fresh_body["store"] is True and "conversation_id" not in fresh_body
        expect(page.locator(".turn.assistant").last).to_have_attribute(
            "aria-busy", "false", timeout=ANSWER_TIMEOUT_MS
        )

        # Delete the document (two clicks): it leaves the list and the store.
        documents.first.get_by_role("button", name="Delete Greenhouse handbook").click()
        documents.first.get_by_role("button", name="Confirm: delete Greenhouse handbook").click()
        expect(documents).to_have_count(0)
        expect(page.locator("#documents-status")).to_contain_text("No documents here yet")
        with app_.api() as api:
            assert api.get("/api/documents").json()["documents"] == []

        assert_clean(problems)


def test_empty_collection_explains_what_to_do(
    live_app: Callable[..., Any],
    open_page: Callable[..., tuple[Page, PageProblems]],
    vllm_server: VllmServer,
) -> None:
    with live_app(vllm_base_url=vllm_server.base_url, vllm_model=vllm_server.model) as app:
        page, problems = open_page(app)
        expect(page.get_by_text("Nothing has been added to")).to_be_visible()

        question = page.get_by_label("Your question")
        question.fill("What do my documents say about holidays?")
        question.press("Enter")
        answer_turn = page.locator(".turn.assistant").last
        expect(answer_turn).to_have_attribute("aria-busy", "false", timeout=ANSWER_TIMEOUT_MS)
        notice = answer_turn.locator(".turn-note.notice")
        expect(notice).to_contain_text("Nothing has been added to “default” yet")
        expect(notice).to_contain_text("Add documents in the Documents panel")

        assert_clean(problems)
