"""Both chunk stores behind one fixture, so that one contract test suite runs against each.

`store_backend` is parametrized over "sqlite" (a file under tmp_path) and "postgresql" (a fresh database on
the session's PostgreSQL server): `.open()` gives a new store on the same database (a reopened process, a
second replica), `.settings()` the app settings that point at it, `.url` its database URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ragchat.config import Settings
from ragchat.container import open_store
from ragchat.infra.db import sqlite_url
from ragchat.infra.store.postgres import PostgresChunkStore
from ragchat.infra.store.sqlite import SqliteChunkStore

AnyStore = SqliteChunkStore | PostgresChunkStore
ENGINES = ["sqlite", "postgresql"]


@dataclass
class StoreBackend:
    """One database of one engine, and the stores opened on it (closed at the end of the test)."""

    engine: str
    url: str
    data_dir: Path
    opened: list[AnyStore] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        """App settings whose store is this database."""
        values: dict[str, Any] = {"data_dir": self.data_dir}
        if self.engine == "postgresql":
            values["database_url"] = self.url
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def environment(self) -> dict[str, str]:
        """The environment variables that point a `ragchat` process at this database."""
        env = {"RAGCHAT_DATA_DIR": str(self.data_dir)}
        if self.engine == "postgresql":
            env["RAGCHAT_DATABASE_URL"] = self.url
        return env

    def open(self) -> AnyStore:
        """A new store on this database, as `ragchat` opens it."""
        store = open_store(self.settings())
        assert isinstance(store, PostgresChunkStore if self.engine == "postgresql" else SqliteChunkStore)
        self.opened.append(store)
        return store


@pytest.fixture(params=ENGINES)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """An empty database of each engine in turn."""
    data_dir = tmp_path / "data"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = sqlite_url(data_dir / "ragchat.sqlite3")
    backend = StoreBackend(request.param, url, data_dir)
    yield backend
    for store in backend.opened:
        store.close()


@pytest.fixture
def store(store_backend: StoreBackend) -> AnyStore:
    """A chunk store of each engine in turn, on an empty database."""
    return store_backend.open()
