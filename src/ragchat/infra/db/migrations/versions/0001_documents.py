"""Documents, chunks and their vectors: the schema of ragchat 0.1 (SQLite schema 2, before Alembic); on
PostgreSQL the `vector` extension and vectors as pgvector `vector` (the SQLite schema is unchanged).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragchat.infra.db.schema import embedding_column_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("collection", sa.Text, sa.ForeignKey("collections.name"), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("char_count", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.UniqueConstraint("collection", "path"),
    )
    op.create_table(
        "chunks",
        sa.Column("rowid", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("document_id", sa.Text, sa.ForeignKey("documents.id"), nullable=False),
        sa.Column("collection", sa.Text, nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("heading", sa.Text, nullable=False),
        sa.Column("heading_path", sa.Text, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        # float32 bytes in SQLite; pgvector's `vector` in PostgreSQL (its dimension and HNSW index come
        # when the embedding model is recorded: PostgresChunkStore.check_embedding_model).
        sa.Column("embedding", embedding_column_type(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("chunks_by_document", "chunks", ["document_id", "ordinal"])
