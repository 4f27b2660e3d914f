"""Drive the real ragchat ASGI app in-process: its lifespan runs (store, embedding model) as in production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from ragchat.api.app import create_app
from ragchat.config import Settings


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to `create_app(settings)` through ASGITransport, inside its lifespan."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=120) as client:
            yield client
