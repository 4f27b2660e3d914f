"""The FastAPI app factory. `create_app(settings)` wires routers; the lifespan owns long-lived resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from ragchat import __version__
from ragchat.api import errors
from ragchat.api.routes import chat, documents, health, metrics, search, status, ui
from ragchat.config import Settings
from ragchat.container import build_services


def create_app(settings: Settings) -> FastAPI:
    """Build the ragchat ASGI app. Nothing is loaded until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings)
        app.state.services = services
        try:
            # The default collection's search indexes are built now (about 1 s per 30,000 chunks on two
            # cores), not by the first search after a start.
            await anyio.to_thread.run_sync(services.store.prepare_search, settings.default_collection)
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="ragchat",
        version=__version__,
        summary="Ask your documents; get cited answers from your own LLM.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(metrics.HttpMetricsMiddleware)
    for module in (health, documents, search, chat, status, metrics, ui):
        app.include_router(module.router)
    return app
