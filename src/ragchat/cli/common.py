"""Helpers shared by CLI commands: reading settings with a readable error, a shared console."""

from __future__ import annotations

import typer
from rich.console import Console

from ragchat.config import Settings, SettingsError, load_settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def settings_or_exit() -> Settings:
    """Settings from the environment; on a bad value, print which variable is wrong and exit 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear error line and return an Exit to raise."""
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)
