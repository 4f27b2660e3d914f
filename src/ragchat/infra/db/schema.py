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
    Boolean,
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
    Column("owner_id", Integer),  # users.id of the owner; NULL: managed by admins (no FK: added by ALTER)
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

# --- identity and access (migration 0002) ------------------------------------------------------------
# Times are ISO-8601 UTC text with seconds ("2026-12-05T09:30:00+00:00"), as in `documents`: they sort
# and compare as text on both engines.

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),  # admin | member
    Column("active", Boolean, nullable=False),
    Column("password_hash", Text),  # argon2id; NULL: the user signs in with keys only
    Column("created_at", Text, nullable=False),
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", Text, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("group_members_by_user", "user_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),  # the public part of `rck_<id>_<secret>`
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),  # SHA-256 hex of the secret part
    Column("scope", Text, nullable=False),  # read | write
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text),
    Column("revoked_at", Text),
    Column("last_used_at", Text),
    Index("api_keys_by_user", "user_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", Text, primary_key=True),  # SHA-256 hex of the cookie's value
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Index("sessions_by_user", "user_id"),
)

collection_grants = Table(
    "collection_grants",
    metadata,
    Column(
        "collection",
        Text,
        ForeignKey("collections.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("principal_kind", Text, primary_key=True),  # user | group
    Column("principal_id", Integer, primary_key=True),
    Column("permission", Text, nullable=False),  # read | write
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    Column("address", Text),
    Index("audit_by_action", "action", "at"),
    sqlite_autoincrement=True,
)

# --- single sign-on (migration 0003) -----------------------------------------------------------------

oidc_logins = Table(
    "oidc_logins",
    metadata,
    Column("state_hash", Text, primary_key=True),  # SHA-256 hex of the `state` sent to the provider
    Column("nonce", Text, nullable=False),
    Column("code_verifier", Text, nullable=False),  # PKCE; never leaves the server
    Column("redirect_uri", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    comment="Logins sent to the identity provider and not back yet; each is taken (deleted) once.",
)

# --- conversations (migration 0004) ------------------------------------------------------------------

conversations = Table(
    "conversations",
    metadata,
    Column("id", Text, primary_key=True),  # random, url-safe, 22 characters
    # NULL: the implicit local user of RAGCHAT_AUTH=off; a user's conversations go when the user does
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("collection", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("share_token", Text, unique=True),  # random, 32 characters; NULL: not shared
    Index("conversations_by_user", "user_id", "updated_at"),
    Index("conversations_by_age", "updated_at"),
    comment="Saved chats, one user's each; their turns are in conversation_turns.",
)

conversation_turns = Table(
    "conversation_turns",
    metadata,
    Column("id", Text, primary_key=True),
    Column("conversation_id", Text, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),  # 0, 1, 2... in the order asked
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("sources", Text, nullable=False),  # JSON list: the source objects the chat endpoint returned
    Column("prompt_chunks", Text, nullable=False),  # JSON list: chunk ids this turn added to the prompt
    Column("created_at", Text, nullable=False),
    Column("rating", Text),  # up | down; NULL: no feedback
    Column("comment", Text),
    Column("rated_at", Text),
    UniqueConstraint("conversation_id", "position"),
    Index("conversation_turns_by_rating", "rated_at"),
)

# --- ingestion jobs (migration 0005) -----------------------------------------------------------------

ingest_jobs = Table(
    "ingest_jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("collection", Text, nullable=False),
    Column("owner_id", Integer),  # users.id of who uploaded; NULL: an implicit admin (auth off)
    Column("owner_name", Text, nullable=False),
    Column("address", Text),  # the uploader's address, for the audit events of the stored files
    Column("status", Text, nullable=False),  # queued | running | done
    Column("created_at", Text, nullable=False),
    Column("started_at", Text),
    Column("finished_at", Text),
    Column("claimed_by", Text),  # the app process working on it (ragchat.core.jobs.JobRunner.worker_id)
    Column("heartbeat_at", Text),  # that process's last sign of life; stale: another may take the job
    Index("ingest_jobs_by_status", "status", "created_at"),
    Index("ingest_jobs_by_owner", "owner_id", "created_at"),
    comment="Uploads waiting for, or done with, parsing and embedding; claimed by one app process at a time.",
)

ingest_job_files = Table(
    "ingest_job_files",
    metadata,
    Column("job_id", Text, ForeignKey("ingest_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("filename", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary),  # the uploaded bytes; NULL once the file is settled
    Column("status", Text, nullable=False),  # pending, processing, then the outcome (added ... failed)
    Column("reason", Text),
    Column("document_id", Text),
    Column("chunks", Integer, nullable=False, server_default="0"),
    comment="The files of an ingestion job, kept until each is settled, with its outcome.",
)
