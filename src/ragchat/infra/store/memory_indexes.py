"""Search indexes held in this process's memory, per collection, kept in step with the database rows.

The database is the only durable state; these indexes are built from it: always the BM25 keyword index
(`keyword_index.py`), and for the SQLite store the exact vector index too (`vector_index.py`; the
PostgreSQL store searches vectors in the database). Every write bumps its collection's generation in the
same transaction; before each search the indexes compare the stored generation with the one they reflect
and read again only the documents whose revision changed, so commits made by other processes (a CLI ingest
next to a server, another app replica) show up at the next search, and a crash can never leave an index
that disagrees with the data.

Thread safety: the indexes are updated under a lock; searches run outside it on a snapshot.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, Engine

from ragchat.infra.embeddings import Vectors
from ragchat.infra.store import StoreError
from ragchat.infra.store.keyword_index import IndexedChunk, KeywordIndex
from ragchat.infra.store.rows import ChunkRows
from ragchat.infra.store.vector_index import ExactVectorIndex, scan_pool


@dataclass
class _CollectionIndexes:
    """The indexes of one collection as of `generation`, and the document revisions they hold."""

    collection_id: int = -1
    keywords: KeywordIndex = field(default_factory=KeywordIndex)
    vectors: ExactVectorIndex | None = None
    generation: int = -1
    revisions: dict[str, int] = field(default_factory=dict)


class MemoryIndexes:
    """Keyword (and optionally exact vector) search over the rows of `rows`, from memory."""

    def __init__(self, rows: ChunkRows, *, vectors: bool) -> None:
        self._rows = rows
        self._with_vectors = vectors
        self._indexes: dict[str, _CollectionIndexes] = {}
        self._lock = threading.Lock()
        self._scan_pool = scan_pool() if vectors else None

    def prepare(self, collection: str) -> None:
        """Build (or catch up) the collection's indexes now."""
        with self._lock:
            self._refreshed(collection)

    def keyword_search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        """Top `k` chunk ids by BM25, best first."""
        with self._lock:
            index = self._refreshed(collection)
        if index is None or k <= 0:
            return []
        hits = index.keywords.search(query, k)  # outside the lock, like the vector scan
        if not hits:
            return []
        chunk_ids = self._rows.chunk_ids_of_rows([rowid for rowid, _ in hits])
        # A chunk replaced since the index was read is simply left out, as in a vector search.
        return [(chunk_ids[rowid], score) for rowid, score in hits if rowid in chunk_ids]

    def vector_search(self, collection: str, vector: Vectors, k: int) -> list[tuple[str, float]]:
        """Top `k` chunk ids by exact cosine similarity, best first (only with `vectors=True`)."""
        assert self._scan_pool is not None, "built without vectors"
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            index = self._refreshed(collection)
            if index is None or index.vectors is None or index.vectors.dimension is None:
                return []
            if index.vectors.dimension != query.shape[0]:
                raise StoreError(
                    f"the query vector has {query.shape[0]} dimensions, the vectors of collection "
                    f"{collection!r} have {index.vectors.dimension}"
                )
            snapshot = index.vectors.snapshot()
        return snapshot.top_k(query, k, self._scan_pool)  # outside the lock (numpy drops the GIL)

    def forget(self, collection: str) -> None:
        """Drop the collection's indexes (it was deleted)."""
        with self._lock:
            self._indexes.pop(collection, None)

    def close(self) -> None:
        """Drop every index (and the scan threads)."""
        with self._lock:
            self._indexes.clear()
        if self._scan_pool is not None:
            self._scan_pool.shutdown()

    def _refreshed(self, collection: str) -> _CollectionIndexes | None:
        """The collection's indexes, brought up to date with the database (caller holds the lock).

        Should reading fail half-way, the collection's indexes are dropped, and the next search builds
        them anew.
        """
        with self._rows.reading() as conn:
            state = ChunkRows.generation(conn, collection)
            if state is None:
                self._indexes.pop(collection, None)  # deleted, perhaps by another process
                return None
            collection_id, generation = state
            index = self._indexes.get(collection)
            if index is None or index.collection_id != collection_id:  # new, or deleted and made again
                vectors = ExactVectorIndex() if self._with_vectors else None
                index = self._indexes[collection] = _CollectionIndexes(collection_id, vectors=vectors)
            if index.generation == generation:
                return index
            try:
                self._catch_up(conn, collection, index)
            except BaseException:
                del self._indexes[collection]
                raise
            index.generation = generation
            return index

    def _catch_up(self, conn: Connection, collection: str, index: _CollectionIndexes) -> None:
        stored = ChunkRows.revisions(conn, collection)
        vectors = index.vectors
        with index.keywords.update() as keywords:
            for document_id, revision in list(index.revisions.items()):
                if stored.get(document_id) != revision:
                    del index.revisions[document_id]
                    keywords.remove_document(document_id)
                    if vectors is not None:
                        vectors.remove_document(document_id)
            if vectors is not None:
                vectors.compact_if_sparse()
            missing = [doc for doc in stored if doc not in index.revisions]
            found = ChunkRows.stored_chunks(conn, collection, missing, with_vectors=vectors is not None)
            for document_id, rows in found:
                if vectors is not None:
                    matrix = np.stack([np.asarray(row[5]) for row in rows])
                    if vectors.dimension is not None and matrix.shape[1] != vectors.dimension:
                        raise StoreError(
                            f"document {document_id} holds vectors of another dimension than "
                            f"{vectors.dimension}"
                        )
                    vectors.add_document(document_id, [str(row[2]) for row in rows], matrix)
                keywords.add(
                    IndexedChunk(int(str(row[1])), document_id, str(row[4]), str(row[3])) for row in rows
                )
                index.revisions[document_id] = stored[document_id]
            for document_id in missing:  # documents without chunks
                index.revisions.setdefault(document_id, stored[document_id])


class IndexedChunkRows(ChunkRows):
    """Rows in a database with the keyword search of `MemoryIndexes` (and, with `vectors_in_memory`, its
    exact vector search); the common part of both chunk stores."""

    def __init__(self, engine: Engine, location: str, *, vectors_in_memory: bool) -> None:
        super().__init__(engine, location)
        self._memory = MemoryIndexes(self, vectors=vectors_in_memory)

    def prepare_search(self, collection: str) -> None:
        """Build the collection's in-memory indexes now, so that its next search is fast."""
        self._memory.prepare(collection)

    def keyword_search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        """Top `k` chunk ids by BM25 for `query`, best first, with their BM25 scores."""
        return self._memory.keyword_search(collection, query, k)

    def delete_collection(self, collection: str) -> bool:
        """Remove the collection with everything in it, and its in-memory indexes."""
        deleted = super().delete_collection(collection)
        self._memory.forget(collection)
        return deleted

    def close(self) -> None:
        """Drop the in-memory indexes and close the database connections."""
        self._memory.close()
        super().close()
