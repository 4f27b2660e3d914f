"""`ragchat migrate --to postgresql://...`: move a SQLite data directory into PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import sqlalchemy.exc
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ragchat.cli.common import console, fail, settings_or_exit
from ragchat.infra.db import DatabaseError, open_database, sqlite_url
from ragchat.infra.db.copy import copy_database, verify_copy
from ragchat.infra.db.schema import meta
from ragchat.infra.store import StoreError
from ragchat.infra.store.postgres import HnswParameters, PostgresChunkStore, describe_url


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(name="migrate")(migrate)


def migrate(
    to: Annotated[str, typer.Option("--to", help="The PostgreSQL database to fill: postgresql://...")],
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The SQLite data directory to copy (default: RAGCHAT_DATA_DIR)."),
    ] = None,
) -> None:
    """Copy a SQLite data directory into an empty PostgreSQL database: every table, vectors as they are
    (nothing is re-embedded). Run it again to finish a copy that was cut short. Prints the counts it
    verified on both sides; then set RAGCHAT_DATABASE_URL to the new database."""
    settings = settings_or_exit()
    source_path = (data_dir or settings.data_dir) / "ragchat.sqlite3"
    if not source_path.is_file():
        raise fail(f"no ragchat database at {source_path}; pass --data-dir or set RAGCHAT_DATA_DIR")
    if not to.startswith(("postgresql:", "postgres:")):
        raise fail("--to takes a PostgreSQL URL: postgresql://USER:PASSWORD@HOST:5432/DB")
    try:
        source = open_database(sqlite_url(source_path))
        target = open_database(to)
    except (DatabaseError, sqlalchemy.exc.DBAPIError) as exc:
        raise fail(f"cannot open the databases: {exc}") from None
    try:
        with Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = bar.add_task(table, total=total)
                bar.update(tasks[table], completed=done)

            copy_database(source, target, str(source_path.resolve()), progress)
        with source.connect() as conn:
            facts = {str(key): str(value) for key, value in conn.execute(meta.select())}
        if "embedding_dimension" in facts:
            console.print("building the vector index (HNSW) ...")
            store = PostgresChunkStore(
                to, hnsw=HnswParameters(settings.hnsw_m, settings.hnsw_ef_construction)
            )
            try:
                store.ensure_vector_index(int(facts["embedding_dimension"]))
            finally:
                store.close()
        counts = verify_copy(source, target)
    except (DatabaseError, StoreError, sqlalchemy.exc.DBAPIError) as exc:
        raise fail(f"the copy stopped: {exc}; run the same command again to resume") from None
    finally:
        source.dispose()
        target.dispose()
    table = Table("verified", "SQLite", "PostgreSQL", "")
    for count in counts:
        table.add_row(count.what, str(count.source), str(count.target), "ok" if count.matches else "DIFFERS")
    console.print(table)
    if not all(count.matches for count in counts):
        raise fail("the copy differs from its source (see above); run the command again")
    console.print(f"done: set RAGCHAT_DATABASE_URL={describe_url(to)} (with its password) to use it")
