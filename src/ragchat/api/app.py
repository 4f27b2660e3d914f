"""The FastAPI app factory. `create_app(settings)` wires routers; the lifespan owns long-lived resources."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from ragchat import __version__
from ragchat.api import errors
from ragchat.api.auth import CSRF_HEADER, USER, SecurityHeadersMiddleware
from ragchat.api.limits import RequestLimitsMiddleware, default_allowed_hosts
from ragchat.api.routes import (
    access,
    chat,
    conversations,
    docs,
    documents,
    health,
    jobs,
    metrics,
    search,
    sso,
    status,
    ui,
)
from ragchat.config import Settings, SettingsError, load_settings
from ragchat.container import build_services


def create_app(settings: Settings) -> FastAPI:
    """Build the ragchat ASGI app. Nothing is loaded until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings)
        app.state.services = services
        try:
            # The default collection's search indexes are built now, not by the first search after a start
            # (docs/benchmarks.md, "Search latency", measures how long that takes).
            await anyio.to_thread.run_sync(services.store.prepare_search, settings.default_collection)
            services.jobs.start()  # uploads are parsed and embedded there; Services.aclose stops it
            yield
        finally:
            # FastAPI's module-level caches keep route callables, and so this app, alive after it stops; what
            # the app held (the embedding model above all) goes now, so a process that builds apps one after
            # another (the test suite) does not keep every one's model in memory.
            del app.state.services
            await services.aclose()

    app = FastAPI(
        title="ragchat",
        version=__version__,
        summary="Ask your documents; get cited answers from your own LLM.",
        lifespan=lifespan,
        docs_url=None,  # served offline by routes/docs.py, to signed-in callers only
        redoc_url=None,  # ReDoc comes from a CDN; /docs covers it
        openapi_url=None,  # served below, to signed-in callers only
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
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.sso_enabled:
        sso.hide_callback_queries_from_access_log()
    for module in (
        health,
        access,
        sso,
        documents,
        jobs,
        search,
        chat,
        conversations,
        status,
        metrics,
        docs,
        ui,
    ):
        app.include_router(module.router)
    _add_api_docs(app)
    return app


def _add_api_docs(app: FastAPI) -> None:
    """`/openapi.json` for signed-in callers: the schema lists every route and parameter, which anonymous
    visitors have no use for (`/docs`, in routes/docs.py, reads it)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(USER)])
    async def openapi_schema() -> JSONResponse:
        return JSONResponse(app.openapi())


def app_from_environment() -> FastAPI:
    """The app as the environment configures it: what `uvicorn app.main:app` serves, and the factory that
    each worker of `ragchat serve --workers N` calls. Exits with status 2 on invalid settings."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"ragchat: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return create_app(settings)
