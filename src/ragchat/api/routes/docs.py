"""Routes: the interactive API docs at `/docs` (Swagger UI), served from the package, so they work offline.

FastAPI's own `/docs` loads Swagger UI from a CDN (a blank page on a host without internet) and its
`/redoc` does too; the app turns both off and serves this page instead, with Swagger UI's files vendored
under `ragchat/web/static/vendor/swagger-ui/` (see the README there).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from ragchat.api.auth import USER

SWAGGER_UI = "/static/vendor/swagger-ui"
# Swagger UI's page starts itself with an inline script; everything else it loads comes from this app.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False, dependencies=[Depends(USER)])


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for this app's OpenAPI document; every file it loads comes from this app."""
    root = request.scope.get("root_path", "").rstrip("/")
    page = get_swagger_ui_html(
        openapi_url=root + "/openapi.json",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/favicon.svg",
        oauth2_redirect_url=None,  # the API declares no OAuth2 flow for Swagger UI to run
        # No badge from the public validator (validator.swagger.io): the page asks no other host.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    return page
