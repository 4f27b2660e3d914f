"""The LLM stops while the UI is open: the page says so plainly, with what to do, and keeps the question.

Uses a dedicated vLLM CPU server (never the shared one), stopped in the middle of the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DATA_DIR, PageProblems
from tests.support.vllm import VllmServerFactory

pytestmark = [pytest.mark.browser, pytest.mark.llm, pytest.mark.slow]

QUESTION = "How are aphids controlled?"


def test_stopped_llm_is_shown_with_what_to_do(
    live_app: Callable[..., Any],
    open_page: Callable[..., tuple[Page, PageProblems]],
    vllm_server_factory: VllmServerFactory,
) -> None:
    server = vllm_server_factory(max_model_len=2048)
    with live_app(vllm_base_url=server.base_url, vllm_model=server.model) as app:
        handbook = DATA_DIR / "greenhouse-handbook.md"
        with app.api() as api:
            response = api.post(
                "/api/documents?wait=true", files={"files": (handbook.name, handbook.read_bytes())}
            )
            assert response.json()["results"][0]["status"] == "added"
        page, problems = open_page(app)
        status = page.locator("#status")
        expect(status).to_have_attribute("data-state", "ok")

        server.stop()

        question = page.get_by_label("Your question")
        question.fill(QUESTION)
        question.press("Enter")
        error = page.locator(".turn.assistant .error-box")
        expect(error).to_be_visible()
        expect(error).to_have_attribute("role", "alert")
        expect(error.locator("strong")).not_to_be_empty()
        expect(error).to_contain_text("Start the LLM server (./scripts/start_vllm.sh) or check VLLM_BASE_URL")
        # The question is not lost: it is back in the box, ready to send again.
        expect(question).to_have_value(QUESTION)
        # The header light and the banner over the conversation agree.
        expect(status).to_have_attribute("data-state", "warn")
        expect(status.locator(".status-label")).to_contain_text("not answering")
        banner = page.locator("#banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text(f"The language model ({server.model}) is not answering")

        assert problems.exceptions == []
        assert problems.foreign_requests == []
