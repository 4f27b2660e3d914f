"""How the HTTP layer reaches the app's `Services`: `ServicesDep` for routes, `services_of` for middleware."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.applications import Starlette

from ragchat.container import Services


def get_services(request: Request) -> Services:
    """The `Services` the lifespan built for this app."""
    services: Services = request.app.state.services
    return services


def services_of(app: Starlette) -> Services | None:
    """The `Services` of `app` (for middleware, `scope["app"]`); None until the lifespan has built them."""
    services: Services | None = getattr(app.state, "services", None)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
