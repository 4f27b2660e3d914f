"""The one JSON error shape of ragchat's API, OpenAI-style so OpenAI clients understand it:

{"error": {"message": "...", "type": "invalid_request_error", "code": "file_too_large"}}

`ERRORS` is the one table from the errors of the use cases and adapters (`ragchat.core.errors`,
`ragchat.infra.llm`, `ragchat.infra.embeddings`) to an HTTP status and a `code`; `api_error` applies it,
for JSON responses and SSE error events alike. Anything else that escapes a route is a 500 whose message
names nothing inside the server; the details go to the server log.
"""

from __future__ import annotations

import logging

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragchat.core.access import (
    AccessError,
    Conflict,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from ragchat.core.errors import (
    CollectionNotFound,
    HistoryTooLong,
    InvalidConversation,
    QuestionTooLong,
    RequestRefused,
    UnknownModel,
)
from ragchat.core.ingest import DocumentQuotaExceeded, QuotaExceeded, TextQuotaExceeded
from ragchat.core.jobs import QueueFull
from ragchat.infra.embeddings import EmbeddingError
from ragchat.infra.llm import (
    LLMError,
    LLMModelNotFound,
    LLMRequestRejected,
    LLMStreamBroken,
    LLMTimeout,
    LLMUnavailable,
)
from ragchat.infra.store import StoreUnavailable

logger = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = "internal error; the server log has the details"
DATABASE_UNAVAILABLE_MESSAGE = "the database is unavailable right now; try again in a moment"

ERRORS: dict[type[Exception], tuple[int, str]] = {
    RequestRefused: (400, "invalid_request"),
    InvalidConversation: (400, "invalid_request"),
    QuestionTooLong: (400, "question_too_long"),
    HistoryTooLong: (400, "history_too_long"),
    CollectionNotFound: (404, "collection_not_found"),
    UnknownModel: (404, "model_not_found"),
    EmbeddingError: (503, "embedding_unavailable"),
    QuotaExceeded: (409, "quota_exceeded"),
    DocumentQuotaExceeded: (409, "document_quota_exceeded"),
    TextQuotaExceeded: (413, "text_quota_exceeded"),
    QueueFull: (503, "queue_full"),
    LLMError: (500, LLMError.code),
    LLMUnavailable: (503, LLMUnavailable.code),
    LLMTimeout: (504, LLMTimeout.code),
    LLMModelNotFound: (503, LLMModelNotFound.code),
    LLMRequestRejected: (400, LLMRequestRejected.code),
    LLMStreamBroken: (502, LLMStreamBroken.code),
}
"""HTTP status and `code` of each error class; a class not listed takes its nearest listed base's."""


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable `code` and a message a user can act on."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.type = type_ or _type_for(status_code)
        self.headers = headers or {}


MappedError = RequestRefused | LLMError | EmbeddingError | QuotaExceeded | QueueFull


def api_error(exc: MappedError) -> ApiError:
    """The HTTP error `ERRORS` gives `exc`, with its message (which each of these writes for the user)."""
    status, code = next(ERRORS[kind] for kind in type(exc).__mro__ if kind in ERRORS)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, QueueFull) else None
    return ApiError(status, code, str(exc), headers=headers)


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
        return JSONResponse(
            error_body(exc.status_code, exc.code, exc.message, exc.type), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestRefused)
    @app.exception_handler(LLMError)
    @app.exception_handler(EmbeddingError)
    @app.exception_handler(QuotaExceeded)
    @app.exception_handler(QueueFull)
    async def _mapped_error(_: Request, exc: MappedError) -> JSONResponse:
        error = api_error(exc)
        return JSONResponse(
            error_body(error.status_code, error.code, error.message), error.status_code, headers=error.headers
        )

    app.add_exception_handler(AccessError, access_error_response)  # type: ignore[arg-type]

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

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The details (host, socket path) go to the log only; the client learns what to do.
        reason = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None else exc
        logger.warning("%s %s: %s", request.method, request.url.path, str(reason).strip().splitlines()[0])
        return JSONResponse(
            error_body(503, "database_unavailable", DATABASE_UNAVAILABLE_MESSAGE),
            503,
            headers={"Retry-After": "1"},
        )

    # The chunk store turns these into StoreUnavailable itself; the identity rows come here directly.
    for unreachable in (StoreUnavailable, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
        app.add_exception_handler(unreachable, _database_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body(500, "internal_error", INTERNAL_ERROR_MESSAGE), 500)


# --- identity and access (ragchat.core.access) ---------------------------------------------------------
# Domain error -> (HTTP status, error type); the most specific class wins (CsrfFailed is a Forbidden).
_ACCESS_ERRORS: dict[type[AccessError], tuple[int, str]] = {
    Unauthenticated: (401, "authentication_error"),
    InvalidCredentials: (401, "authentication_error"),
    TooManyAttempts: (429, "rate_limit_error"),
    Forbidden: (403, "permission_error"),
    NotFound: (404, "not_found_error"),
    Conflict: (409, "invalid_request_error"),
    InvalidInput: (400, "invalid_request_error"),
}


async def access_error_response(_: Request, exc: AccessError) -> JSONResponse:
    """The HTTP answer to an access rule's refusal (with WWW-Authenticate on 401, Retry-After on 429)."""
    status, type_ = next(
        (_ACCESS_ERRORS[cls] for cls in type(exc).__mro__ if cls in _ACCESS_ERRORS), (403, "permission_error")
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(error_body(status, exc.code, exc.message, type_), status, headers=headers)
