"""FastAPI dependencies shared by the routers: `ServicesDep` hands a route the app's `Services`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ragchat.container import Services


def get_services(request: Request) -> Services:
    """The `Services` the lifespan built for this app."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
