"""Durable storage of documents, chunks and vectors, and search over them, behind one narrow interface.

Two implementations: `sqlite.SqliteChunkStore` (the embedded default) and `postgres.PostgresChunkStore`
(a PostgreSQL server with pgvector shared by app replicas). Each is split by concern into modules both use:

    rows.py            documents, chunks, collections through SQLAlchemy Core (one schema, both engines)
    vector_index.py    exact cosine scan in memory (SQLite; PostgreSQL searches with pgvector HNSW)
    keyword_index.py   BM25 keyword index in memory (tantivy), both stores
    memory_indexes.py  keeps the in-memory indexes in step with the rows (generation / revision)

Every write that changes a document is one transaction (`replace_document`, `delete_document`), and the
two searches return chunk ids with scores so that fusion (in `ragchat.core.retrieve`) stays
store-independent.

    StoreError          cannot do what was asked (unreadable database, vectors of the wrong model, ...)
    └── StoreUnavailable  the database cannot be reached now (HTTP 503 `database_unavailable`)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ragchat.domain import ChunkDraft, DocumentRecord, Passage
from ragchat.infra.embeddings import Vectors


class StoreError(Exception):
    """The store cannot do what was asked (unreadable database, vectors of the wrong model, ...)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now (a server restarting, a network cut); try again later."""


class ChunkStore(Protocol):
    """Documents grouped in collections, their chunks and vectors, searchable by keyword and by vector."""

    def find_document(self, collection: str, path: str) -> DocumentRecord | None:
        """The document stored for `path` in `collection`, if any."""
        ...

    def get_document(self, document_id: str) -> DocumentRecord | None: ...

    def replace_document(
        self,
        *,
        collection: str,
        path: str,
        content_hash: str,
        title: str | None,
        char_count: int,
        chunks: Sequence[ChunkDraft],
        vectors: Vectors,
    ) -> DocumentRecord:
        """Store a document, its chunks and vectors; an earlier version at `path` is replaced atomically."""
        ...

    def delete_document(self, document_id: str) -> bool:
        """Remove a document and every chunk, vector and index entry of it. False if it did not exist."""
        ...

    def delete_collection(self, collection: str) -> bool:
        """Remove the collection with every document, chunk, vector, index entry and grant of it, in one
        transaction. False if it did not exist."""
        ...

    def list_documents(self, collection: str | None = None) -> list[DocumentRecord]: ...

    def count_documents(self) -> int:
        """How many documents are stored, over all collections."""
        ...

    def check_embedding_model(self, model_name: str, dimension: int) -> None:
        """Record the embedding model on first use; `StoreError` if the store holds another's vectors."""
        ...

    def list_collections(self) -> list[str]: ...

    def prepare_search(self, collection: str) -> None:
        """Make the collection's next search fast: build whatever in-memory index it needs now (a store
        that searches in place does nothing). A collection that does not exist is left alone."""
        ...

    def keyword_search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        """Top `k` chunk ids by BM25 for `query`, best first, with their BM25 scores (higher is better)."""
        ...

    def vector_search(self, collection: str, vector: Vectors, k: int) -> list[tuple[str, float]]:
        """Top `k` chunk ids by cosine similarity to `vector`, best first."""
        ...

    def get_passages(self, chunk_ids: Sequence[str]) -> list[Passage]:
        """The chunks with these ids (score 0), in the order asked; unknown ids are left out."""
        ...

    def close(self) -> None: ...
