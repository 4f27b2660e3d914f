"""The rows of the chunk store: collections, documents, chunks and vectors, through SQLAlchemy Core.

Shared by both stores (SQLite and PostgreSQL): the tables come from `ragchat.infra.db.schema`, every write
that changes a document is one transaction that also bumps its collection's `generation`, so in-memory
search indexes (`memory_indexes.py`) know when to catch up. Writers to one collection are serialised (SQLite
takes its write lock at BEGIN; PostgreSQL locks the collection's row first), so two processes storing the
same path at the same moment end with one document whose chunks are those of the last writer.

A database that cannot be reached (a PostgreSQL server restarting, say) raises `StoreUnavailable`; the
engine's pool checks connections before use, so the next call after the database is back succeeds.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy.exc
from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ragchat.domain import ChunkDraft, DocumentRecord, Passage
from ragchat.infra.db import write_transaction
from ragchat.infra.db.schema import chunks as chunk_table
from ragchat.infra.db.schema import collections, documents, meta
from ragchat.infra.embeddings import Vectors
from ragchat.infra.store import StoreError, StoreUnavailable

_DOCUMENT_COLUMNS = (
    documents.c.id,
    documents.c.collection,
    documents.c.path,
    documents.c.title,
    documents.c.content_hash,
    documents.c.chunk_count,
    documents.c.char_count,
    documents.c.created_at,
)

_EMBEDDING_FACTS = select(meta.c.key, meta.c.value).where(meta.c.key.like("embedding_%"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(row: Sequence[Any]) -> DocumentRecord:
    id_, collection, path, title, content_hash, chunk_count, char_count, created_at = row
    return DocumentRecord(
        id=str(id_),
        collection=str(collection),
        path=str(path),
        title=None if title is None else str(title),
        content_hash=str(content_hash),
        chunk_count=int(str(chunk_count)),
        char_count=int(str(char_count)),
        created_at=str(created_at),
    )


@contextmanager
def reachable(location: str) -> Iterator[None]:
    """Turn "cannot talk to the database" errors into `StoreUnavailable` (other errors pass through)."""
    try:
        yield
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise StoreUnavailable(f"the database ({location}) is unavailable: {reason}") from None


class ChunkRows:
    """Document and chunk rows in one database; the row half of a `ChunkStore`."""

    def __init__(self, engine: Engine, location: str) -> None:
        self.engine = engine
        self.location = location  # shown in errors: a file path, or a URL without its password

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """One read transaction: every query in it sees the same snapshot of the database."""
        engine = self.engine
        if engine.dialect.name == "postgresql":
            engine = engine.execution_options(isolation_level="REPEATABLE READ")
        with reachable(self.location), engine.begin() as conn:
            yield conn

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction: all of it commits, or none of it does."""
        with reachable(self.location), write_transaction(self.engine) as conn:
            yield conn

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    # --- embedding model binding -----------------------------------------------------------------------

    def check_embedding_model(self, model_name: str, dimension: int) -> None:
        """Record the embedding model on first use; refuse a different one later (vectors would not match)."""
        wanted = {"embedding_model": model_name, "embedding_dimension": str(dimension)}
        with self.writing() as tx:
            rows = dict(tx.execute(_EMBEDDING_FACTS).all())
            if not rows:
                dialect = postgresql if tx.dialect.name == "postgresql" else sqlite
                # DO NOTHING: another replica may record the same model meanwhile
                tx.execute(
                    dialect.insert(meta).on_conflict_do_nothing(),
                    [{"key": key, "value": value} for key, value in wanted.items()],
                )
                rows = dict(tx.execute(_EMBEDDING_FACTS).all())
        stored_model, stored_dimension = rows.get("embedding_model"), int(rows.get("embedding_dimension", 0))
        if stored_model != model_name or stored_dimension != dimension:
            raise StoreError(
                f"{self.location} holds vectors from embedding model {stored_model!r} "
                f"(dimension {stored_dimension}), "
                f"but the configured model is {model_name!r} (dimension {dimension}). Set "
                "LOCAL_EMBEDDING_MODEL/EMBEDDING_MODEL back, or use a new RAGCHAT_DATA_DIR "
                "(or RAGCHAT_DATABASE_URL) and ingest again."
            )

    # --- documents -------------------------------------------------------------------------------------

    def find_document(self, collection: str, path: str) -> DocumentRecord | None:
        """The document stored for `path` in `collection`, if any."""
        query = select(*_DOCUMENT_COLUMNS).where(
            documents.c.collection == collection, documents.c.path == path
        )
        with self.reading() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def get_document(self, document_id: str) -> DocumentRecord | None:
        """The document with this id, if any."""
        with self.reading() as conn:
            row = conn.execute(select(*_DOCUMENT_COLUMNS).where(documents.c.id == document_id)).first()
        return None if row is None else _record(row)

    def list_documents(self, collection: str | None = None) -> list[DocumentRecord]:
        """Documents of one collection (by path), or of all (by collection, then path)."""
        query = select(*_DOCUMENT_COLUMNS)
        if collection is None:
            query = query.order_by(documents.c.collection, documents.c.path)
        else:
            query = query.where(documents.c.collection == collection).order_by(documents.c.path)
        with self.reading() as conn:
            return [_record(row) for row in conn.execute(query)]

    def count_documents(self) -> int:
        """How many documents are stored, over all collections."""
        with self.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(documents)).scalar_one())

    def list_collections(self) -> list[str]:
        """Names of the collections that hold documents."""
        query = select(documents.c.collection).distinct().order_by(documents.c.collection)
        with self.reading() as conn:
            return [str(name) for name in conn.execute(query).scalars()]

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
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
            raise StoreError(
                f"expected one vector per chunk ({len(chunks)}), got an array of shape {vectors.shape}"
            )
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.writing() as tx:
            self._lock_collection(tx, collection)
            existing = tx.execute(
                select(documents.c.id, documents.c.revision, documents.c.created_at).where(
                    documents.c.collection == collection, documents.c.path == path
                )
            ).first()
            values = {"title": title, "content_hash": content_hash, "chunk_count": len(chunks)}
            values["char_count"] = char_count
            if existing is None:
                document_id, revision, created_at = uuid.uuid4().hex, 1, _now()
                tx.execute(
                    documents.insert().values(
                        id=document_id,
                        collection=collection,
                        path=path,
                        revision=revision,
                        created_at=created_at,
                        **values,
                    )
                )
            else:
                document_id, revision, created_at = existing[0], existing[1] + 1, existing[2]
                tx.execute(chunk_table.delete().where(chunk_table.c.document_id == document_id))
                tx.execute(
                    update(documents).where(documents.c.id == document_id).values(revision=revision, **values)
                )
            if chunks:
                tx.execute(
                    chunk_table.insert(),
                    [
                        {
                            "id": f"{document_id}-{revision}-{ordinal}",
                            "document_id": document_id,
                            "collection": collection,
                            "ordinal": ordinal,
                            "heading": " > ".join(chunk.heading_path),
                            "heading_path": json.dumps(list(chunk.heading_path), ensure_ascii=False),
                            "start": chunk.start,
                            "end": chunk.end,
                            "token_count": chunk.token_count,
                            "text": chunk.text,
                            "embedding": matrix[ordinal],
                        }
                        for ordinal, chunk in enumerate(chunks)
                    ],
                )
            self._bump_generation(tx, collection)
        return DocumentRecord(
            id=document_id,
            collection=collection,
            path=path,
            title=title,
            content_hash=content_hash,
            chunk_count=len(chunks),
            char_count=char_count,
            created_at=created_at,
        )

    def delete_document(self, document_id: str) -> bool:
        """Remove a document and its chunks. False if it did not exist."""
        with self.writing() as tx:
            collection = tx.execute(
                select(documents.c.collection).where(documents.c.id == document_id)
            ).scalar_one_or_none()
            if collection is None:
                return False
            self._lock_collection(tx, collection)
            tx.execute(chunk_table.delete().where(chunk_table.c.document_id == document_id))
            deleted = tx.execute(documents.delete().where(documents.c.id == document_id)).rowcount
            if deleted:
                self._bump_generation(tx, collection)
        return bool(deleted)

    def delete_collection(self, collection: str) -> bool:
        """Remove the collection with every document and chunk of it (grants go by the foreign key's
        cascade), in one transaction. False if it did not exist."""
        with self.writing() as tx:
            exists = tx.execute(select(collections.c.id).where(collections.c.name == collection)).first()
            if exists is None:
                return False
            tx.execute(chunk_table.delete().where(chunk_table.c.collection == collection))
            tx.execute(documents.delete().where(documents.c.collection == collection))
            tx.execute(collections.delete().where(collections.c.name == collection))
        return True

    @staticmethod
    def _lock_collection(tx: Connection, collection: str) -> None:
        """Create the collection if new, and (PostgreSQL) hold its row until the transaction ends: the
        writers of one collection take turns, as they do under SQLite's single write lock."""
        insert = (
            postgresql.insert(collections) if tx.dialect.name == "postgresql" else sqlite.insert(collections)
        )
        tx.execute(insert.values(name=collection).on_conflict_do_nothing(index_elements=["name"]))
        if tx.dialect.name == "postgresql":
            tx.execute(select(collections.c.id).where(collections.c.name == collection).with_for_update())

    @staticmethod
    def _bump_generation(tx: Connection, collection: str) -> None:
        tx.execute(
            update(collections)
            .where(collections.c.name == collection)
            .values(generation=collections.c.generation + 1)
        )

    # --- passages and what in-memory indexes are built from ---------------------------------------------

    def get_passages(self, chunk_ids: Sequence[str]) -> list[Passage]:
        """The chunks with these ids (score 0), in the order asked; unknown ids are left out."""
        if not chunk_ids:
            return []
        c = chunk_table
        query = select(
            c.c.id,
            c.c.document_id,
            documents.c.path,
            documents.c.collection,
            c.c.heading_path,
            c.c.text,
            c.c.start,
            c.c.end,
        ).join(documents, documents.c.id == c.c.document_id)
        with self.reading() as conn:
            rows = conn.execute(query.where(c.c.id.in_(list(chunk_ids)))).all()
        found = {
            row[0]: Passage(
                chunk_id=row[0],
                document_id=row[1],
                document_path=row[2],
                collection=row[3],
                heading_path=tuple(json.loads(row[4])),
                text=row[5],
                start=row[6],
                end=row[7],
                score=0.0,
            )
            for row in rows
        }
        return [found[chunk_id] for chunk_id in chunk_ids if chunk_id in found]

    def chunk_ids_of_rows(self, rowids: Sequence[int]) -> dict[int, str]:
        """{row id: chunk id} of the chunks that still exist among `rowids`."""
        c = chunk_table
        with self.reading() as conn:
            return {
                int(rowid): str(id_)
                for rowid, id_ in conn.execute(select(c.c.rowid, c.c.id).where(c.c.rowid.in_(list(rowids))))
            }

    @staticmethod
    def generation(conn: Connection, collection: str) -> tuple[int, int] | None:
        """The collection's (id, write counter), or None if it does not exist. A collection deleted and
        made again has a new id: indexes built for the old one must not be caught up, but rebuilt."""
        row = conn.execute(
            select(collections.c.id, collections.c.generation).where(collections.c.name == collection)
        ).first()
        return None if row is None else (int(row[0]), int(row[1]))

    @staticmethod
    def revisions(conn: Connection, collection: str) -> dict[str, int]:
        """{document id: revision} of the collection's documents."""
        query = select(documents.c.id, documents.c.revision).where(documents.c.collection == collection)
        return {str(id_): int(revision) for id_, revision in conn.execute(query)}

    @staticmethod
    def stored_chunks(
        conn: Connection, collection: str, wanted: Sequence[str], *, with_vectors: bool
    ) -> Iterator[tuple[str, list[Sequence[Any]]]]:
        """(document id, [(rowid, chunk id, heading, text[, embedding]), ...]) of each wanted document,
        chunks in order: one scan of the collection if many, else a query each."""
        c = chunk_table
        columns = [c.c.document_id, c.c.rowid, c.c.id, c.c.heading, c.c.text]
        if with_vectors:
            columns.append(c.c.embedding)
        rows: Iterable[Sequence[Any]]
        if len(wanted) > 64:
            query = (
                select(*columns).where(c.c.collection == collection).order_by(c.c.document_id, c.c.ordinal)
            )
            rows = conn.execute(query.execution_options(yield_per=10_000))
        else:
            rows = itertools.chain.from_iterable(
                conn.execute(select(*columns).where(c.c.document_id == doc).order_by(c.c.ordinal))
                for doc in wanted
            )
        targets = set(wanted)
        for document_id, group in itertools.groupby(rows, key=lambda row: row[0]):
            if document_id in targets:
                yield str(document_id), list(group)
