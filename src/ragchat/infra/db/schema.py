"""Every table ragchat keeps, defined once for SQLite and PostgreSQL (SQLAlchemy Core, no ORM).

A change here needs a migration in `migrations/versions/` (the next number; it must produce exactly
these tables on both engines). Documents and chunks are written by the chunk store
(`ragchat.infra.store`); search indexes are built from these rows and are never the only copy of anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData()


def embedding_column_type() -> TypeEngine[Any]:
    """How a chunk's vector is stored: float32 bytes (a BLOB) in SQLite, pgvector's `vector` in PostgreSQL
    (searched there with an HNSW index; its dimension is fixed when the embedding model is recorded)."""
    return LargeBinary().with_variant(VECTOR(), "postgresql")


class Embedding(TypeDecorator[np.ndarray]):
    """A chunk's vector as a float32 numpy array on both engines."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(VECTOR() if dialect.name == "postgresql" else LargeBinary())

    def process_bind_param(self, value: np.ndarray | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        vector = np.ascontiguousarray(value, dtype=np.float32)
        return vector if dialect.name == "postgresql" else vector.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, bytes | memoryview):
            return np.frombuffer(value, dtype=np.float32)
        return np.asarray(value, dtype=np.float32)


meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    comment="Facts about the whole store, e.g. which embedding model made its vectors.",
)

collections = Table(
    "collections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("generation", Integer, nullable=False, server_default="0"),
    comment="Named groups of documents; `generation` grows with every write, so search indexes know "
    "when to catch up.",
)

documents = Table(
    "documents",
    metadata,
    Column("id", Text, primary_key=True),
    Column("collection", Text, ForeignKey("collections.name"), nullable=False),
    Column("path", Text, nullable=False),
    Column("title", Text),
    Column("content_hash", Text, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("char_count", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", Text, nullable=False),
    UniqueConstraint("collection", "path"),
)

chunks = Table(
    "chunks",
    metadata,
    Column("rowid", Integer, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    Column("document_id", Text, ForeignKey("documents.id"), nullable=False),
    Column("collection", Text, nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("heading", Text, nullable=False),
    Column("heading_path", Text, nullable=False),
    Column("start", Integer, nullable=False),
    Column("end", Integer, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("embedding", Embedding, nullable=False),
    Index("chunks_by_document", "document_id", "ordinal"),
    sqlite_autoincrement=True,
)
