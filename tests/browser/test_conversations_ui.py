"""Saved conversations in the web UI: real Chromium, the real app under uvicorn with auth on, the real vLLM
CPU server (SmolLM2), users and grants made with the real `ragchat` CLI.

A conversation asked in the page is saved and continued by id, and a reload brings it back with clickable
citations; the list opens, renames and deletes conversations; a thumbs down with a comment reaches
`ragchat feedback export`; a share link shows the conversation read-only, only to readers of its collection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import ANSWER_TIMEOUT_MS, DATA_DIR, LiveApp, PageProblems
from tests.browser.test_auth_ui import ADMIN_PASSWORD, ALICE_PASSWORD, auth_on, ragchat_cli, sign_in
from tests.support.vllm import VllmServer

pytestmark = [pytest.mark.browser, pytest.mark.llm]

HANDBOOK = DATA_DIR / "greenhouse-handbook.md"
# SmolLM2-135M rarely cites on its own; asked like this, with greedy decoding, it does.
QUESTION = "How are aphids controlled? Answer with a citation such as [1]."
FOLLOW_UP = "When are they released?"
OTHER_QUESTION = "When are the tomato seedlings watered?"
WIDE = {"width": 1440, "height": 900}


def settings_for(vllm_server: VllmServer) -> dict[str, Any]:
    return auth_on(vllm_base_url=vllm_server.base_url, vllm_model=vllm_server.model)


def admin_api(app: LiveApp) -> httpx.Client:
    """An HTTP client acting as the admin through a write key made with the CLI."""
    made = ragchat_cli(app, "keys", "create", "--user", "admin", "--scope", "write", "--json")
    bearer = {"Authorization": f"Bearer {json.loads(made)['key']}"}
    return httpx.Client(base_url=app.url, timeout=300.0, headers=bearer)


def add_handbook(api: httpx.Client, collection: str = "default") -> None:
    response = api.post(
        "/api/documents?wait=true",
        data={"collection": collection},
        files={"files": (HANDBOOK.name, HANDBOOK.read_bytes())},
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "added"


def save_conversation(api: httpx.Client, question: str, collection: str = "default") -> str:
    """Ask `question` through the API with `store: true`; the new conversation's id."""
    response = api.post(
        "/v1/chat/completions",
        json={
            "model": f"ragchat/{collection}",
            "messages": [{"role": "user", "content": question}],
            "store": True,
        },
    )
    assert response.status_code == 200, response.text
    conversation_id = response.json()["conversation_id"]
    assert isinstance(conversation_id, str)
    return conversation_id


def is_chat_request(url: str) -> bool:
    return url.endswith("/v1/chat/completions")


def squeeze(text: str) -> str:
    return " ".join(text.split())


def conversation_items(page: Page) -> Locator:
    return page.get_by_role("complementary", name="Conversations").locator(".conversation-item")


def open_menu(page: Page, title: str) -> None:
    page.get_by_label(f"Actions for {title}", exact=True).click()


def wait_for_answer(page: Page, count: int) -> Locator:
    """The `count`-th answer, once it is complete."""
    answers = page.locator(".turn.assistant")
    expect(answers).to_have_count(count)
    answer = answers.nth(count - 1)
    expect(answer).to_have_attribute("aria-busy", "false", timeout=ANSWER_TIMEOUT_MS)
    return answer


def signed_in_page(
    open_page: Callable[..., tuple[Page, PageProblems]],
    app: LiveApp,
    user: str,
    password: str,
    **options: Any,
) -> tuple[Page, PageProblems]:
    page, problems = open_page(app, **options)
    sign_in(page, user, password)
    expect(page.get_by_label("Your question")).to_be_visible()
    return page, problems


def assert_clean(problems: PageProblems) -> None:
    # Console errors are not checked: Chromium logs every 401 (the sign-in check) and 404 as one.
    assert problems.exceptions == []
    assert problems.foreign_requests == [], "the UI must work offline: no requests to other origins"


def test_reload_keeps_the_conversation_and_its_clickable_citations(
    live_app: Callable[..., Any],
    open_page: Callable[..., tuple[Page, PageProblems]],
    vllm_server: VllmServer,
) -> None:
    with live_app(**settings_for(vllm_server)) as app:
        api = admin_api(app)
        add_handbook(api)
        page, problems = signed_in_page(open_page, app, "admin", ADMIN_PASSWORD, **WIDE)
        expect(conversation_items(page)).to_have_count(0)
        expect(page.locator("#conversations-status")).to_contain_text("No saved conversations yet")

        # A new chat is sent with store: true and only its question; the page's address then names it.
        question = page.get_by_label("Your question")
        question.fill(QUESTION)
        with page.expect_request(lambda request: is_chat_request(request.url)) as first:
            question.press("Enter")
        sent = first.value.post_data_json
        assert sent["store"] is True
        assert "conversation_id" not in sent
        assert sent["messages"] == [{"role": "user", "content": QUESTION}]
        wait_for_answer(page, 1)
        expect(page).to_have_url(re.compile(r"/\?c=[A-Za-z0-9_-]+$"))
        conversation_id = page.url.split("?c=")[1]
        items = conversation_items(page)
        expect(items).to_have_count(1)
        expect(items.first).to_have_attribute("data-id", conversation_id)
        expect(items.first.locator(".conversation-open")).to_have_attribute("aria-current", "true")

        # The follow-up continues it by id, with only the new question.
        question.fill(FOLLOW_UP)
        with page.expect_request(lambda request: is_chat_request(request.url)) as second:
            question.press("Enter")
        sent = second.value.post_data_json
        assert sent["conversation_id"] == conversation_id
        assert "store" not in sent
        assert sent["messages"] == [{"role": "user", "content": FOLLOW_UP}]
        wait_for_answer(page, 2)
        expect(page).to_have_url(re.compile(rf"/\?c={conversation_id}$"))

        stored = api.get(f"/api/conversations/{conversation_id}").json()
        assert [turn["question"] for turn in stored["turns"]] == [QUESTION, FOLLOW_UP]

        # A reload brings back both turns, as saved, with their sources.
        page.reload()
        expect(page.locator(".turn.user .bubble")).to_have_text([QUESTION, FOLLOW_UP])
        answers = page.locator(".turn.assistant")
        expect(answers).to_have_count(2)
        for answer, turn in zip(answers.all(), stored["turns"], strict=True):
            assert squeeze(answer.locator(".answer").text_content() or "") != ""
            expect(answer.locator(".source-chip")).to_have_count(len(turn["sources"]))
        expect(items.first.locator(".conversation-open")).to_have_attribute("aria-current", "true")

        # An old answer's [n] still opens its passage, the one saved with the turn.
        first_turn = stored["turns"][0]
        sources = {source["index"]: source for source in first_turn["sources"]}
        marker = answers.first.locator(".answer button.cite").first
        expect(marker).to_be_visible()
        number = int(marker.get_attribute("data-index") or "0")
        marker.click()
        panel = page.get_by_role("complementary", name=f"Source {number}")
        expect(panel).to_be_visible()
        expect(panel.locator(".source-document")).to_have_text(sources[number]["document"])
        expect(panel.locator(".source-snippet")).to_have_text(sources[number]["snippet"])
        assert sources[number]["document"] == HANDBOOK.name
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()

        assert_clean(problems)


def test_the_list_opens_renames_and_deletes_conversations(
    live_app: Callable[..., Any],
    open_page: Callable[..., tuple[Page, PageProblems]],
    vllm_server: VllmServer,
) -> None:
    with live_app(**settings_for(vllm_server)) as app:
        api = admin_api(app)
        add_handbook(api)
        older = save_conversation(api, QUESTION)
        newer = save_conversation(api, OTHER_QUESTION)

        page, problems = signed_in_page(open_page, app, "admin", ADMIN_PASSWORD, **WIDE)
        items = conversation_items(page)
        # Newest first, titled by their first question.
        expect(items.locator(".conversation-title")).to_have_text([OTHER_QUESTION, QUESTION])
        expect(items).to_have_count(2)
        assert [items.nth(i).get_attribute("data-id") for i in range(2)] == [newer, older]

        # Open one: its turns show and the address names it.
        items.nth(1).locator(".conversation-open").click()
        expect(page.locator(".turn.user .bubble")).to_have_text([QUESTION])
        expect(page).to_have_url(re.compile(rf"/\?c={older}$"))
        expect(items.nth(1).locator(".conversation-open")).to_have_attribute("aria-current", "true")

        # Rename it from its menu; the new title is saved.
        open_menu(page, QUESTION)
        page.get_by_role("button", name=f"Rename {QUESTION}").click()
        title_box = page.get_by_label(f"New title for {QUESTION}")
        expect(title_box).to_be_focused()
        title_box.fill("Aphid control")
        title_box.press("Enter")
        expect(items.locator(".conversation-title")).to_have_text([OTHER_QUESTION, "Aphid control"])
        assert api.get(f"/api/conversations/{older}").json()["title"] == "Aphid control"
        # Escape leaves a rename without saving.
        open_menu(page, OTHER_QUESTION)
        page.get_by_role("button", name=f"Rename {OTHER_QUESTION}").click()
        title_box = page.get_by_label(f"New title for {OTHER_QUESTION}")
        title_box.fill("Not this")
        title_box.press("Escape")
        expect(items.locator(".conversation-title")).to_have_text([OTHER_QUESTION, "Aphid control"])

        # A reload keeps the open conversation and the new title.
        page.reload()
        expect(page.locator(".turn.user .bubble")).to_have_text([QUESTION])
        expect(items.locator(".conversation-title")).to_have_text([OTHER_QUESTION, "Aphid control"])

        # New conversation: an empty chat and a plain address.
        page.get_by_role("button", name="New conversation").click()
        expect(page.locator(".turn")).to_have_count(0)
        expect(page).to_have_url(app.url + "/")
        expect(items.locator("[aria-current]")).to_have_count(0)

        # Delete the other one (two clicks): it leaves the list and the store.
        open_menu(page, OTHER_QUESTION)
        page.get_by_role("button", name=f"Delete {OTHER_QUESTION}").click()
        page.get_by_role("button", name=f"Confirm: delete {OTHER_QUESTION}").click()
        expect(items).to_have_count(1)
        assert api.get(f"/api/conversations/{newer}").status_code == 404

        # Deleting the open conversation leaves an empty chat behind.
        items.first.locator(".conversation-open").click()
        expect(page.locator(".turn.user .bubble")).to_have_text([QUESTION])
        open_menu(page, "Aphid control")
        page.get_by_role("button", name="Delete Aphid control").click()
        page.get_by_role("button", name="Confirm: delete Aphid control").click()
        expect(items).to_have_count(0)
        expect(page.locator(".turn")).to_have_count(0)
        expect(page).to_have_url(app.url + "/")
        assert api.get(f"/api/conversations/{older}").status_code == 404

        # A link to a deleted conversation says so instead of showing an empty page.
        page.goto(f"{app.url}/?c={older}")
        expect(page.locator(".turn .error-box")).to_contain_text("This conversation is not there any more.")
        expect(page).to_have_url(app.url + "/")

        assert_clean(problems)


def test_narrow_screens_keep_the_list_in_a_drawer(
    live_app: Callable[..., Any],
    open_page: Callable[..., tuple[Page, PageProblems]],
    vllm_server: VllmServer,
) -> None:
    with live_app(**settings_for(vllm_server)) as app:
        api = admin_api(app)
        add_handbook(api)
        conversation_id = save_conversation(api, QUESTION)

        page, problems = signed_in_page(open_page, app, "admin", ADMIN_PASSWORD, width=390, height=844)
        history = page.get_by_role("complementary", name="Conversations")
        toggle = page.get_by_role("button", name="Conversations", exact=True)
        expect(history).to_be_hidden()
        toggle.click()
        expect(history).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        history.locator(".conversation-open").first.click()
        expect(history).to_be_hidden()
        expect(page.locator(".turn.user .bubble")).to_have_text([QUESTION])
        expect(page).to_have_url(re.compile(rf"/\?c={conversation_id}$"))
        # Nothing overflows sideways, the top bar included.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        account = page.locator("#account summary").bounding_box()
        assert account is not None and account["x"] + account["width"] <= 390
        toggle.click()
        expect(history).to_be_visible()
        page.keyboard.press("Escape")
        expect(history).to_be_hidden()
        assert_clean(problems)


def test_thumbs_down_with_a_comment_reaches_the_feedback_export(
    live_app: Callable[..., Any],
    open_page: Callable[..., tuple[Page, PageProblems]],
    vllm_server: VllmServer,
) -> None:
    comment = "It should name the ladybirds in the handbook."
    with live_app(**settings_for(vllm_server)) as app:
        api = admin_api(app)
        add_handbook(api)
        conversation_id = save_conversation(api, QUESTION)

        page, problems = open_page(app, path=f"/?c={conversation_id}", **WIDE)
        sign_in(page, "admin", ADMIN_PASSWORD)
        answer = page.locator(".turn.assistant").first
        feedback = answer.get_by_role("group", name="Feedback on this answer")
        good = feedback.get_by_role("button", name="Good answer")
        bad = feedback.get_by_role("button", name="Bad answer")
        expect(bad).to_have_attribute("aria-pressed", "false")

        bad.click()
        expect(bad).to_have_attribute("aria-pressed", "true")
        expect(good).to_have_attribute("aria-pressed", "false")
        box = feedback.get_by_label("Comment on this answer (optional)")
        expect(box).to_be_focused()
        box.fill(comment)
        feedback.get_by_role("button", name="Save comment").click()
        status = feedback.get_by_role("status")
        expect(status).to_contain_text("You marked this answer as bad.")
        expect(status).to_contain_text(comment)

        (turn,) = api.get(f"/api/conversations/{conversation_id}").json()["turns"]
        assert turn["feedback"] == {"rating": "down", "comment": comment}

        # The saved state shows again after a reload.
        page.reload()
        expect(bad).to_have_attribute("aria-pressed", "true")
        expect(status).to_contain_text(comment)

        export = ragchat_cli(app, "feedback", "export", "--json")
        exported = [json.loads(line) for line in export.splitlines()]
        (line,) = [entry for entry in exported if entry["comment"] == comment]
        assert line["rating"] == "down"
        assert line["question"] == QUESTION
        assert line["answer"] == turn["answer"]
        assert line["collection"] == "default"
        assert_clean(problems)


def test_a_share_link_is_read_only_and_only_for_readers_of_the_collection(
    live_app: Callable[..., Any],
    open_page: Callable[..., tuple[Page, PageProblems]],
    vllm_server: VllmServer,
) -> None:
    with live_app(**settings_for(vllm_server)) as app:
        ragchat_cli(app, "users", "add", "alice", "--password-stdin", stdin=ALICE_PASSWORD + "\n")
        ragchat_cli(app, "collections", "create", "greenhouse")
        api = admin_api(app)
        add_handbook(api, "greenhouse")
        conversation_id = save_conversation(api, QUESTION, "greenhouse")

        # The admin shares it from the conversation's menu and gets an absolute link.
        page, problems = signed_in_page(open_page, app, "admin", ADMIN_PASSWORD, **WIDE)
        open_menu(page, QUESTION)
        page.get_by_role("button", name=f"Share {QUESTION}").click()
        dialog = page.get_by_role("dialog", name=f"Share “{QUESTION}”")
        link = dialog.get_by_label("Link to this conversation")
        expect(link).to_have_value(re.compile(rf"^{re.escape(app.url)}/shared/[A-Za-z0-9_-]+$"))
        url = link.input_value()
        dialog.get_by_role("button", name="Copy link").click()
        expect(dialog.get_by_role("status")).not_to_be_empty()
        assert api.get(f"/api/conversations/{conversation_id}").json()["shared"] is True

        # alice may not read "greenhouse": the link does not open for her.
        reader, reader_problems = open_page(app, path=url.removeprefix(app.url), **WIDE)
        sign_in(reader, "alice", ALICE_PASSWORD)
        expect(reader.locator("#shared-title")).to_have_text("This link does not work.")
        expect(reader.locator(".turn")).to_have_count(0)

        # Once she may read it, the link shows the conversation read-only, citations and all.
        ragchat_cli(app, "collections", "grant", "greenhouse", "--user", "alice", "--read")
        reader.reload()
        expect(reader.locator("#shared-title")).to_have_text(QUESTION)
        expect(reader.locator(".turn.user .bubble")).to_have_text([QUESTION])
        answer = wait_for_answer(reader, 1)
        expect(answer.locator(".answer")).not_to_be_empty()
        expect(reader.get_by_label("Your question")).to_be_hidden()
        expect(reader.get_by_role("complementary", name="Conversations")).to_be_hidden()
        expect(answer.get_by_role("button", name="Bad answer")).to_have_count(0)
        stored = api.get(f"/api/conversations/{conversation_id}").json()["turns"][0]
        chips = answer.locator(".source-chip")
        expect(chips).to_have_count(len(stored["sources"]))
        if stored["sources"]:
            chips.first.click()
            panel = reader.get_by_role("complementary", name=f"Source {stored['sources'][0]['index']}")
            expect(panel.locator(".source-snippet")).to_have_text(stored["sources"][0]["snippet"])

        # Sharing stopped: the link stops working.
        dialog.get_by_role("button", name="Stop sharing").click()
        expect(dialog.get_by_role("status")).to_contain_text("The link no longer works")
        reader.reload()
        expect(reader.locator("#shared-title")).to_have_text("This link does not work.")

        assert_clean(problems)
        assert_clean(reader_problems)
