"""Headless Chromium as the browser tests and `bench/screenshots.py` launch it: Debian's build, since
Playwright cannot download its own browsers here."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def launch_chromium(driver: Playwright, executable: Path = CHROMIUM) -> Browser:
    """Start headless Chromium from `executable`; the caller closes it."""
    return driver.chromium.launch(executable_path=str(executable), args=list(CHROMIUM_ARGS))
