"""The one place that picks concrete implementations from settings and owns their lifetimes."""

from __future__ import annotations

from dataclasses import dataclass

from ragchat.config import Settings


@dataclass
class Services:
    """Long-lived collaborators shared by the HTTP layer and the CLI."""

    settings: Settings

    async def aclose(self) -> None:
        """Release everything this container opened."""


async def build_services(settings: Settings) -> Services:
    """Open the store, the embedding model and the LLM client chosen by `settings`."""
    return Services(settings=settings)
