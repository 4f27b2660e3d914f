"""The database layer: URLs, migrations on a real SQLite file, several processes migrating at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect

from ragchat.infra.db import DatabaseError, engine_url, open_database, sqlite_url
from ragchat.infra.db.migrate import SQLITE_USER_VERSION, head_revision
from ragchat.infra.db.schema import metadata


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db.example:5432/rag", "postgresql+psycopg://u:p@db.example:5432/rag"),
        ("postgres://u@db/rag", "postgresql+psycopg://u@db/rag"),
        ("postgresql:///rag?host=/run/postgresql", "postgresql+psycopg:///rag?host=%2Frun%2Fpostgresql"),
        ("sqlite:////data/ragchat.sqlite3", "sqlite:////data/ragchat.sqlite3"),
    ],
)
def test_libpq_urls_use_psycopg(given: str, expected: str) -> None:
    assert engine_url(given) == expected


@pytest.mark.parametrize("given", ["mysql://u@h/db", "not a url"])
def test_other_urls_are_refused_with_the_forms_that_work(given: str) -> None:
    with pytest.raises(DatabaseError, match="postgresql://"):
        engine_url(given)


def test_a_new_file_gets_every_table_at_the_newest_revision(tmp_path: Path) -> None:
    path = tmp_path / "new" / "ragchat.sqlite3"
    engine = open_database(sqlite_url(path))
    try:
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
        assert conn.execute("PRAGMA user_version").fetchone() == (SQLITE_USER_VERSION,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_database_from_a_newer_ragchat_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ragchat.sqlite3"
    open_database(sqlite_url(path)).dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(DatabaseError, match="newer ragchat"):
        open_database(sqlite_url(path))


def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "ragchat.sqlite3"
    script = textwrap.dedent(
        f"""
        from ragchat.infra.db import open_database, sqlite_url
        open_database(sqlite_url({str(path)!r})).dispose()
        """
    )
    processes = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0, 0]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
