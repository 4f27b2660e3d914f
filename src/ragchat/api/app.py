"""The FastAPI app factory. `create_app(settings)` wires routers; the lifespan owns long-lived resources."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from ragchat import __version__
from ragchat.api import errors
from ragchat.api.limits import RequestLimitsMiddleware, default_allowed_hosts
from ragchat.api.routes import chat, documents, health, metrics, search, status, ui
from ragchat.config import Settings, SettingsError, load_settings
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
    app.add_middleware(
        RequestLimitsMiddleware,
        allowed_hosts=settings.allowed_host_names or default_allowed_hosts(settings.host),
        max_json_bytes=settings.max_request_kb * 1024,
        max_upload_bytes=settings.max_upload_bytes,
    )
    for module in (health, documents, search, chat, status, metrics, ui):
        app.include_router(module.router)
    return app


def app_from_environment() -> FastAPI:
    """The app as the environment configures it: what `uvicorn app.main:app` serves, and the factory that
    each worker of `ragchat serve --workers N` calls. Exits with status 2 on invalid settings."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"ragchat: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return create_app(settings)
