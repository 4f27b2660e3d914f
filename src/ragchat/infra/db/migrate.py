"""Bring a database to the newest schema: Alembic's migrations, run inside one locked transaction.

Several processes may start at once (`ragchat serve --workers N`, two replicas, a CLI next to a server):
the transaction takes SQLite's write lock (or a PostgreSQL advisory lock) before reading the schema
version, so exactly one of them migrates and the others then find nothing left to do.

A SQLite file written before ragchat used Alembic (its schema version lives in `PRAGMA user_version`,
1 or 2) is adopted: brought to schema 2 by the old steps, then marked as Alembic revision 0001.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from ragchat.infra.db import DatabaseError, write_transaction

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# `PRAGMA user_version` of SQLite files from now on: ragchat versions before Alembic refuse to open them
# ("written by a newer ragchat") instead of writing tables of their own into them.
SQLITE_USER_VERSION = 3
_PRE_ALEMBIC_REVISION = "0001"
# What took a pre-Alembic SQLite file of schema 1 to schema 2 (the FTS5 keyword index left the file).
_SQLITE_SCHEMA_1_TO_2 = (
    "DROP TRIGGER IF EXISTS chunks_fts_insert",
    "DROP TRIGGER IF EXISTS chunks_fts_delete",
    "DROP TABLE IF EXISTS chunks_fts",
    "ALTER TABLE chunks DROP COLUMN scope",
    "ALTER TABLE collections DROP COLUMN chunk_count",
)
# Any constant works; it names the lock that serialises migrations on a PostgreSQL server.
_PG_MIGRATION_LOCK = 0x72616763


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this ragchat knows."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def upgrade_database(engine: Engine) -> None:
    """Run every migration the database lacks (a no-op when it is current)."""
    head = head_revision()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        current = MigrationContext.configure(conn).get_current_revision()
        if current is None and conn.dialect.name == "sqlite":
            _adopt_pre_alembic_sqlite(conn)
            current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current != head and current not in _known_revisions():
            raise DatabaseError(
                f"the database was written by a newer ragchat (schema revision {current}; this one knows "
                f"up to {head}); upgrade ragchat"
            )
        command.upgrade(_config(conn), "head")
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA user_version={SQLITE_USER_VERSION}")


def _known_revisions() -> set[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def _adopt_pre_alembic_sqlite(conn: Connection) -> None:
    """Mark a SQLite file made before Alembic (user_version 1 or 2) as revision 0001, upgrading 1 to 2."""
    version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
    if version == 0 or "documents" not in inspect(conn).get_table_names():
        return
    if version > 2:
        raise DatabaseError(
            f"the database has schema version {version} but no Alembic revision; it was not written by "
            "ragchat, or was damaged: move it away or set RAGCHAT_DATA_DIR to another folder"
        )
    if version == 1:
        for statement in _SQLITE_SCHEMA_1_TO_2:
            conn.exec_driver_sql(statement)
    command.stamp(_config(conn), _PRE_ALEMBIC_REVISION)
