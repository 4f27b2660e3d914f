"""Routes: the web UI. `GET /` serves the page; `/static/*` serves its scripts, styles and vendored libraries.

The page is plain ES modules (no build step) in `ragchat/web/static/`, shipped as package data, so the UI
works offline. It talks to the app only through the public HTTP API described in docs/architecture.md.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

from ragchat.api.auth import PUBLIC, declare_public
from ragchat.config import Settings

STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"

# The page runs only its own scripts and talks only to its own origin: a Markdown answer that smuggles
# HTML past the sanitiser still cannot load or send anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)
router.routes.append(
    declare_public(Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"))
)


@cache
def _page_template() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, dependencies=[Depends(PUBLIC)])
def index(request: Request) -> HTMLResponse:
    """The single page of the UI, told which collection is the default."""
    return _page(request)


@router.get("/shared/{token}", response_class=HTMLResponse, dependencies=[Depends(PUBLIC)])
def shared_page(request: Request, token: str) -> HTMLResponse:
    """The same page for a share link: the UI reads the token from its address and shows the conversation
    read-only from `GET /api/shared/{token}`, which is where access is checked. Public like `/`, so that a
    teammate who is not signed in gets the login form first, not an error."""
    del token  # read by the page itself
    return _page(request)


def _page(request: Request) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    page = _page_template().replace("{{default_collection}}", html.escape(settings.default_collection))
    return HTMLResponse(
        page,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
