"""The default `ChunkStore`: one SQLite file, no server.

Rows (tables of `ragchat.infra.db.schema`: collections, documents, chunks with their float32 vectors as
BLOBs) are read and written by `rows.py`; the database runs in WAL mode, so readers never block the writer
and see either the old or the new version of a document, never half of it. Searches run on indexes built
from the file in memory (`memory_indexes.py`): a vector index (an exact cosine scan with numpy, or with
`vector_index="hnsw"` an approximate HNSW graph) and a BM25 keyword index, caught up with the file before
each search (commits from other processes included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import sqlalchemy.exc
from sqlalchemy import Engine

from ragchat.infra.db import DatabaseError, open_database, sqlite_url
from ragchat.infra.embeddings import Vectors
from ragchat.infra.store import StoreError
from ragchat.infra.store.ann_index import HnswVectorIndex
from ragchat.infra.store.memory_indexes import IndexedChunkRows
from ragchat.infra.store.vector_index import ExactVectorIndex, HnswParameters, VectorIndex


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
    """`ChunkStore` on one SQLite database file (created with its folder on first use); each collection's
    vectors searched in memory by an exact scan, or by an HNSW graph shaped by `hnsw`."""

    def __init__(
        self,
        path: Path,
        *,
        vector_index: Literal["exact", "hnsw"] = "exact",
        hnsw: HnswParameters | None = None,
    ) -> None:
        self.path = path
        parameters = hnsw or HnswParameters()

        def new_vector_index() -> VectorIndex:
            return HnswVectorIndex(parameters) if vector_index == "hnsw" else ExactVectorIndex()

        super().__init__(_open(path), str(path), vector_index=new_vector_index)

    def vector_search(self, collection: str, vector: Vectors, k: int) -> list[tuple[str, float]]:
        """Top `k` chunk ids by cosine similarity to `vector`, best first (exact, or approximate with
        the HNSW graph)."""
        return self._memory.vector_search(collection, vector, k)
