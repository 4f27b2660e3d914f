"""The database every durable row lives in: one SQLAlchemy Core engine per process, chosen by URL.

`RAGCHAT_DATABASE_URL` unset means the embedded default, one SQLite file under `RAGCHAT_DATA_DIR`; a
`postgresql://` URL (any form libpq accepts, a Unix-socket folder as `?host=/path` included) puts the same
tables in PostgreSQL. The tables are defined once (`schema.py`) and created or upgraded by one chain of
Alembic migrations (`migrations/`, run by `upgrade_database`) for both engines.

    engine = open_database(url)          # engine + migrations to the newest schema
    with engine.begin() as conn: ...     # a read (or a write that cannot conflict)
    with write_transaction(engine) as conn: ...   # read-then-write: SQLite takes its write lock up front
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# How long a SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
_BEGIN_MODE = "ragchat_sqlite_begin"

IDENTITY_WRITES = "ragchat.identity"
"""The `write_transaction` lock of identity rows (users, keys, sessions, grants, collections, logins): their
writes are few and each checks before it writes, so on PostgreSQL they take turns, as on SQLite."""


class DatabaseError(Exception):
    """The database cannot be opened or upgraded; the message says what to change."""


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def engine_url(url: str) -> str:
    """`url` with the driver ragchat uses: libpq-style `postgresql://` (and `postgres://`) URLs go through
    psycopg 3; SQLite URLs stay as they are. Anything else is refused with a message naming the forms."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(
            "RAGCHAT_DATABASE_URL is not a database URL; use postgresql://USER:PASSWORD@HOST:5432/DB "
            "(or postgresql:///DB?host=/run/postgresql for a Unix socket)"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise DatabaseError(
        f"RAGCHAT_DATABASE_URL names a {backend!r} database; ragchat stores its data in PostgreSQL "
        "(postgresql://...) or, when the variable is unset, in SQLite under RAGCHAT_DATA_DIR"
    )


def create_database_engine(url: str) -> Engine:
    """An engine for `url` (no connection is made yet). SQLite files get WAL mode, full fsync, foreign
    keys, a busy timeout, and transactions that ragchat begins itself (see `write_transaction`)."""
    full_url = engine_url(url)
    if make_url(full_url).get_backend_name() != "sqlite":
        return create_engine(full_url, pool_pre_ping=True)
    database = make_url(full_url).database
    if database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(full_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None  # the driver's own implicit BEGIN is off; see _begin
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(_BEGIN_MODE, '')}".strip())

    return engine


@contextmanager
def write_transaction(engine: Engine, *, serialize: str | None = None) -> Iterator[Connection]:
    """A transaction that will write after reading: on SQLite it takes the write lock at BEGIN (waiting
    for another writer instead of failing half-way); on PostgreSQL it is an ordinary transaction, in which
    the writers that name the same `serialize` lock take turns (a transaction-level advisory lock), as
    every writer does under SQLite's one write lock. Use it where a check and the write it decides must
    not interleave with another process's (e.g. "create the first admin if there are no users")."""
    with engine.execution_options(**{_BEGIN_MODE: "IMMEDIATE"}).begin() as conn:
        if serialize is not None and conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(serialize.encode())})
        yield conn


def open_database(url: str) -> Engine:
    """An engine for `url` whose schema is the newest this ragchat knows (migrations run as needed)."""
    from ragchat.infra.db.migrate import upgrade_database

    engine = create_database_engine(url)
    try:
        upgrade_database(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
