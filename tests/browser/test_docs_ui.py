"""`/docs` in a real browser: Swagger UI draws the API from the app's own files, asking no other host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageProblems

pytestmark = pytest.mark.browser


def test_docs_render_offline(
    live_app: Callable[..., Any], open_page: Callable[..., tuple[Page, PageProblems]]
) -> None:
    with live_app(vllm_base_url="http://127.0.0.1:9/v1") as app:  # no LLM needed
        page, problems = open_page(app, path="/docs")
        search = page.locator(".opblock-post", has_text="/api/search")
        expect(search).to_be_visible()
        search.locator(".opblock-summary").click()  # the operation opens, its schema drawn from the spec
        expect(page.get_by_text("Try it out")).to_be_visible()
        assert problems.foreign_requests == []
        assert problems.exceptions == []
        assert problems.console_errors == []
