"""The `ChunkStore` for teams: every row in a PostgreSQL database that several app replicas share.

Rows are read and written by `rows.py` (the same code as the SQLite store's). Vectors are pgvector `vector`
columns searched IN the database: cosine distance (`<=>`) through an HNSW index, created with the
embedding model's dimension when the model is first recorded (`check_embedding_model`); `m` and
`ef_construction` shape the index when it is built, `ef_search` each query. Filtering by collection uses
pgvector's iterative index scan, so a small collection among large ones still gets its `k` results.
Keyword search runs on a per-process tantivy index built from the database and caught up by generation
(`memory_indexes.py`; why not PostgreSQL full-text search: docs/design-choices.md).

Nothing here holds state that another replica could miss: a replica's in-memory keyword index follows
the database before each search, and the vector index lives in the database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ragchat.infra.db import DatabaseError, open_database
from ragchat.infra.embeddings import Vectors
from ragchat.infra.store import StoreError
from ragchat.infra.store.memory_indexes import IndexedChunkRows
from ragchat.infra.store.rows import reachable

VECTOR_INDEX = "chunks_embedding_hnsw"
# Names the lock that lets one replica at a time create the vector index.
_VECTOR_INDEX_LOCK = 0x72616764
_SEARCH = text(
    "SELECT id, embedding <=> CAST(:query AS vector) AS distance FROM chunks"
    " WHERE collection = :collection ORDER BY distance LIMIT :k"
)


@dataclass(frozen=True, slots=True)
class HnswParameters:
    """pgvector HNSW settings: `m` and `ef_construction` when the index is built, `ef_search` per query."""

    m: int = 16
    ef_construction: int = 64
    ef_search: int = 100


def describe_url(url: str) -> str:
    """`url` for messages and logs: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "RAGCHAT_DATABASE_URL"


class PostgresChunkStore(IndexedChunkRows):
    """`ChunkStore` on a PostgreSQL database with the pgvector extension (tables made on first use)."""

    def __init__(self, url: str, *, hnsw: HnswParameters | None = None) -> None:
        self.hnsw = hnsw or HnswParameters()
        location = describe_url(url)
        try:
            with reachable(location):
                engine = open_database(url)
        except DatabaseError as exc:
            raise StoreError(str(exc)) from None
        super().__init__(engine, location, vectors_in_memory=False)

    def check_embedding_model(self, model_name: str, dimension: int) -> None:
        """Record the embedding model (refusing another), then make sure the vector index exists."""
        super().check_embedding_model(model_name, dimension)
        self.ensure_vector_index(dimension)

    def ensure_vector_index(self, dimension: int) -> None:
        """Fix the vector column's dimension and build the HNSW index, unless that was done already (by
        any replica). Building over existing rows takes a while (docs/benchmarks.md)."""
        with self.writing() as tx:
            tx.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_VECTOR_INDEX_LOCK})")
            exists = tx.exec_driver_sql(
                f"SELECT 1 FROM pg_indexes WHERE tablename = 'chunks' AND indexname = '{VECTOR_INDEX}'"
            ).first()
            if exists:
                return
            tx.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
            tx.exec_driver_sql(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dimension)})")
            tx.exec_driver_sql(
                f"CREATE INDEX {VECTOR_INDEX} ON chunks USING hnsw (embedding vector_cosine_ops)"
                f" WITH (m = {int(self.hnsw.m)}, ef_construction = {int(self.hnsw.ef_construction)})"
            )

    def vector_search(self, collection: str, vector: Vectors, k: int) -> list[tuple[str, float]]:
        """Top `k` chunk ids by cosine similarity to `vector`, best first (HNSW: approximate)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if k <= 0:
            return []
        literal = "[" + ",".join(repr(float(value)) for value in query) + "]"
        try:
            with reachable(self.location), self.engine.begin() as conn:
                conn.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {int(max(self.hnsw.ef_search, k))}")
                conn.exec_driver_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")
                rows = conn.execute(_SEARCH, {"query": literal, "collection": collection, "k": k}).all()
        except sqlalchemy.exc.DataError as exc:  # e.g. "different vector dimensions 384 and 8"
            raise StoreError(f"cannot search collection {collection!r}: {exc.orig}") from None
        # relaxed_order: an iterative scan may return neighbours slightly out of order
        hits = sorted(((str(id_), 1.0 - float(distance)) for id_, distance in rows), key=lambda hit: -hit[1])
        return hits
