"""The one JSON error shape of ragchat's API, OpenAI-style so OpenAI clients understand it:

{"error": {"message": "...", "type": "invalid_request_error", "code": "file_too_large"}}
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragchat.infra.store import StoreUnavailable


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable `code` and a message a user can act on."""

    def __init__(self, status_code: int, code: str, message: str, *, type_: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.type = type_ or _type_for(status_code)


def _type_for(status_code: int) -> str:
    if status_code == 503:
        return "service_unavailable"
    if status_code >= 500:
        return "server_error"
    if status_code == 404:
        return "not_found_error"
    return "invalid_request_error"


def error_body(status_code: int, code: str, message: str, type_: str | None = None) -> dict[str, object]:
    """The error JSON object (also used for SSE error events)."""
    return {"error": {"message": message, "type": type_ or _type_for(status_code), "code": code}}


def install(app: FastAPI) -> None:
    """Register handlers so that every error leaves the app in the shape above."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, exc.code, exc.message, exc.type), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return JSONResponse(error_body(422, "invalid_request", "; ".join(parts)), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return JSONResponse(error_body(exc.status_code, code, str(exc.detail)), exc.status_code)

    @app.exception_handler(StoreUnavailable)
    async def _database_unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(
            error_body(503, "database_unavailable", str(exc)), 503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(500, "internal_error", f"internal error: {type(exc).__name__}"), 500)
