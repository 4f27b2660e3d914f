"""Screenshots of the web UI for the README: a cited answer and the document list, desktop and phone widths.

    .venv/bin/python bench/screenshots.py                                   # dev vLLM at 127.0.0.1:8000
    .venv/bin/python bench/screenshots.py --vllm-url http://gpu-box:8000/v1 --out docs/img

Everything is real: `uvicorn app.main:app` on a free port with a fresh data folder and auth on (the page
signs in as the first admin, whose password the script sets), the documents of
tests/data/chat_corpus/ and tests/browser/data/ uploaded through the page, a question answered by the vLLM
server at --vllm-url, a citation clicked. Greedy decoding and short answers keep SmolLM2-135M (the CPU test
model) on topic; it cites only when asked to, so the question below asks for a citation. The script stops
with an error if the answer carries no citation marker.

Writes (under --out): chat-desktop.png, documents-desktop.png (1280x800), chat-phone.png,
documents-phone.png (390x844, device scale 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the browser setup is the browser tests' own (tests/support/browser.py)
from tests.support.browser import CHROMIUM, launch_chromium  # noqa: E402

CORPUS = [
    *sorted((REPO / "tests" / "data" / "chat_corpus").glob("*.md")),
    REPO / "tests" / "browser" / "data" / "greenhouse-handbook.md",
]
ADMIN_PASSWORD = "screenshots-admin-password"
QUESTION = "How are aphids controlled in the greenhouse? Answer with a citation such as [1]."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_app(vllm_url: str, data_dir: Path) -> Iterator[str]:
    """`uvicorn app.main:app` (the guide's command) on a free port; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "RAGCHAT_DATA_DIR": str(data_dir),
        "RAGCHAT_AUTH": "on",
        "RAGCHAT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "VLLM_BASE_URL": vllm_url,
        "LLM_TEMPERATURE": "0",
        "LLM_MAX_TOKENS": "50",
        "RAGCHAT_CHUNK_TOKENS": "64",
        "RAGCHAT_CHUNK_OVERLAP_TOKENS": "0",
        "RAGCHAT_HOST": "127.0.0.1",
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the app exited:\n{server.stderr.read().decode() if server.stderr else ''}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the app did not answer /health within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def sign_in(page: Page) -> None:
    """Sign in through the page's form as the first admin."""
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.locator("#account-name")).to_have_text("admin")


def ask_and_open_citation(page: Page) -> None:
    """Ask QUESTION, wait for the whole answer, then open its first cited passage."""
    question = page.get_by_label("Your question")
    question.fill(QUESTION)
    question.press("Enter")
    answer = page.locator(".turn.assistant").last
    expect(answer).to_have_attribute("aria-busy", "false", timeout=180_000)
    marker = answer.locator(".answer button.cite").first
    if marker.count() == 0:
        raise SystemExit(f"the answer cites nothing, so there is no citation to show:\n{answer.inner_text()}")
    marker.click()
    expect(page.locator("#source-panel")).to_be_visible()
    page.wait_for_timeout(400)  # let the phone sheet finish sliding in


def desktop(browser: Browser, url: str, out: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(url)
    sign_in(page)
    page.locator("#file-input").set_input_files(CORPUS)
    expect(page.locator("#documents .doc")).to_have_count(len(CORPUS), timeout=180_000)
    expect(page.locator("#status")).to_have_attribute("data-state", "ok")
    page.screenshot(path=out / "documents-desktop.png")
    ask_and_open_citation(page)
    page.screenshot(path=out / "chat-desktop.png")
    context.close()


def phone(browser: Browser, url: str, out: Path, scratch: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = context.new_page()
    page.goto(url)
    sign_in(page)
    page.get_by_role("button", name="Documents", exact=True).click()
    refused = scratch / "budget.xlsx"
    refused.write_bytes(b"PK\x03\x04 a spreadsheet")
    page.locator("#file-input").set_input_files([CORPUS[-1], refused])
    expect(page.locator(".upload-results .result")).to_have_count(2, timeout=180_000)
    expect(page.locator("#documents .doc")).to_have_count(len(CORPUS))
    page.wait_for_timeout(300)
    page.screenshot(path=out / "documents-phone.png")
    page.keyboard.press("Escape")
    ask_and_open_citation(page)
    page.screenshot(path=out / "chat-phone.png")
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vllm-url", default="http://127.0.0.1:8000/v1", help="vLLM's OpenAI base URL")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="where the PNGs go")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="the Chromium binary to drive")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="ragchat-shots-") as scratch,
        running_app(args.vllm_url, Path(scratch) / "data") as url,
        sync_playwright() as driver,
    ):
        expect.set_options(timeout=60_000)  # embedding and answering on a busy CPU take a while
        browser = launch_chromium(driver, args.chromium)
        try:
            desktop(browser, url, args.out)
            phone(browser, url, args.out, Path(scratch))
        finally:
            browser.close()
    for name in ("chat-desktop", "documents-desktop", "chat-phone", "documents-phone"):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
