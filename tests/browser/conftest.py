"""Browser-test fixtures: Debian's Chromium driven by Playwright (sync API) against the real app served by a
real uvicorn on a free port.

Sync Playwright must not run inside a running event loop: the tests here are plain `def` functions, and
the app runs its own loop in a uvicorn thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, expect, sync_playwright

from ragchat.api.app import create_app
from ragchat.config import Settings
from tests.support.browser import CHROMIUM, launch_chromium

APP_START_TIMEOUT_S = 120.0  # the lifespan loads the embedding model; a busy 2-core machine is slow
# Upper bounds on waits, not expectations: CPU answers and embeddings on a shared 2-core machine vary a lot.
UI_TIMEOUT_MS = 60_000
ANSWER_TIMEOUT_MS = 300_000
DATA_DIR = Path(__file__).parent / "data"


@dataclass
class LiveApp:
    """The real ragchat app served by uvicorn in a thread; `url` ends without a slash."""

    url: str
    settings: Settings

    def api(self) -> httpx.Client:
        """A plain HTTP client for setting up and checking state behind the browser's back."""
        return httpx.Client(base_url=self.url, timeout=60.0)


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[LiveApp]:
    """Run `create_app(settings)` under uvicorn on a free loopback port until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ragchat-app", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the app failed to start; see the log above")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start within {APP_START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        yield LiveApp(url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


AppServer = contextlib.AbstractContextManager[LiveApp]


@pytest.fixture
def live_app(make_settings: Callable[..., Settings]) -> Callable[..., AppServer]:
    """`with live_app(vllm_base_url=..., ...) as app:` serves the real app with test settings.

    Defaults suit the tiny SmolLM2 test model: greedy decoding (repeatable answers), short answers, and
    small chunks so each section of a test document is its own passage.
    """

    def start(**overrides: Any) -> AppServer:
        values: dict[str, Any] = {
            "llm_temperature": 0.0,
            "llm_max_tokens": 80,
            "chunk_tokens": 64,
            "chunk_overlap_tokens": 0,
        }
        values.update(overrides)
        return serve(make_settings(**values))

    return start


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium (tests/support/browser.py)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@dataclass
class PageProblems:
    """What went wrong inside the page: uncaught exceptions, console errors, requests to other origins."""

    exceptions: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., tuple[Page, PageProblems]]]:
    """`page, problems = open_page(app, width=1280, height=800, path="/")`: a fresh browser context on a page
    of the app (the UI by default)."""
    contexts = []

    def open_(
        app: LiveApp, *, width: int = 1280, height: int = 800, path: str = "/"
    ) -> tuple[Page, PageProblems]:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        problems = PageProblems()
        page.on("pageerror", lambda error: problems.exceptions.append(str(error)))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                problems.console_errors.append(message.text)

        page.on("console", on_console)
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith((app.url, "data:"))
                else problems.foreign_requests.append(request.url)
            ),
        )
        page.goto(app.url + path)
        return page, problems

    yield open_
    for context in contexts:
        context.close()
