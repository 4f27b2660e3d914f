"""`GET /metrics` (Prometheus text format) and the middleware that counts and times every HTTP request."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request, Response
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragchat.api.auth import METRICS
from ragchat.api.deps import services_of
from ragchat.observability import CONTENT_TYPE, AppMetrics

router = APIRouter(tags=["operations"])


def _metrics_of(app: Starlette) -> AppMetrics | None:
    services = services_of(app)
    return services.metrics if services is not None else None


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(METRICS)])
async def prometheus_metrics(request: Request) -> Response:
    """This instance's metrics for Prometheus to scrape."""
    metrics = _metrics_of(request.app)
    body = metrics.render() if metrics is not None else b""
    return Response(content=body, headers={"Content-Type": CONTENT_TYPE})


class HttpMetricsMiddleware:
    """Counts and times each HTTP request under its route template (bounded), never its raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = _metrics_of(scope["app"]) if scope["type"] == "http" else None
        if metrics is None:
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees when the app raises before starting a response

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        metrics.http_started()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            # The router stores the matched route in the scope; its `path` is the template, e.g. "/v1/{x}".
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.http_request(
                route=route, method=scope["method"], status=status, seconds=time.perf_counter() - started
            )
