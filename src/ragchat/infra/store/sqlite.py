"""The default `ChunkStore`: one SQLite file, no server.

Rows (tables of `ragchat.infra.db.schema`: collections, documents, chunks with their float32 vectors as
BLOBs) are read and written by `rows.py`; the database runs in WAL mode, so readers never block the writer
and see either the old or the new version of a document, never half of it. Searches run on indexes built
from the file in memory (`memory_indexes.py`): an exact cosine scan with numpy and a BM25 keyword index,
caught up with the file before each search (commits from other processes included).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy.exc
from sqlalchemy import Engine

from ragchat.infra.db import DatabaseError, open_database, sqlite_url
from ragchat.infra.embeddings import Vectors
from ragchat.infra.store import StoreError
from ragchat.infra.store.memory_indexes import IndexedChunkRows


def _open(path: Path) -> Engine:
    """The file's engine, the file created with its folder or its schema brought up to date."""
    try:
        return open_database(sqlite_url(path))
    except (sqlalchemy.exc.DatabaseError, DatabaseError) as exc:
        reason = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
        raise StoreError(
            f"{path} is not a ragchat database ({reason}); move it away or fix RAGCHAT_DATA_DIR"
        ) from None


class SqliteChunkStore(IndexedChunkRows):
    """`ChunkStore` on one SQLite database file (created with its folder on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(_open(path), str(path), vectors_in_memory=True)

    def vector_search(self, collection: str, vector: Vectors, k: int) -> list[tuple[str, float]]:
        """Top `k` chunk ids by exact cosine similarity to `vector`, best first."""
        return self._memory.vector_search(collection, vector, k)
