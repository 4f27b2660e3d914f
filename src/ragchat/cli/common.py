"""Helpers shared by CLI commands: reading settings with a readable error, a shared console, tables that
stay whole when piped."""

from __future__ import annotations

from collections.abc import Mapping

import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

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


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal; when it is not (piped, redirected), print plain rows."""
    return console.file.isatty()


def print_table(table: Table, *, prefix: Mapping[str, str] | None = None) -> None:
    """`table` drawn for a person at a terminal. Piped, as `gh` and `kubectl` print: a header line, then one
    line per row, tab-separated full values (never wrapped or cut), so `| grep NAME` and `| cut -f2` work.
    `prefix`: columns (header: value) put before each line's own, e.g. a per-workload table's workload."""
    prefix = prefix or {}
    if stdout_is_terminal():
        console.print(table)
        return
    if table.show_header:
        typer.echo("\t".join([*prefix, *(_plain(column.header) for column in table.columns)]))
    for row in zip(*(column.cells for column in table.columns), strict=True):
        typer.echo("\t".join([*prefix.values(), *(_plain(cell) for cell in row)]))


def _plain(cell: RenderableType) -> str:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return " ".join(text.replace("\t", " ").splitlines())
