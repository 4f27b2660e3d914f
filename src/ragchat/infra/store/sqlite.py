"""The default `ChunkStore`: one SQLite file (standard library `sqlite3`), no server.

Layout (tables defined in `ragchat.infra.db.schema`, created and upgraded by its migrations):
`collections` (a generation counter per collection), `documents` and `chunks` (text, heading path,
character offsets, token count and the embedding as a float32 BLOB). The database runs in WAL mode, so
readers never block the writer and see either the old or the new version of a document, never half of it.

The file is the only durable state. Searches run on indexes built from it in memory, per collection: an
exact cosine scan with numpy over a float32 matrix, and a BM25 keyword index (`keyword_index.py`). Every
write bumps its collection's generation in the same transaction; before each search the store compares the
stored generation with the one its indexes reflect and reads again only the documents that changed, so
commits made by other processes (a CLI ingest next to a running server) show up at the next search, and a
crash can never leave an index that disagrees with the data.

Thread safety: each thread gets its own connection; the in-memory indexes are guarded by a lock, and
searches run outside it on a snapshot.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy.exc
from threadpoolctl import ThreadpoolController

from ragchat.domain import ChunkDraft, DocumentRecord, Passage
from ragchat.infra.db import DatabaseError, open_database, sqlite_url
from ragchat.infra.embeddings import Vectors
from ragchat.infra.store import StoreError
from ragchat.infra.store.keyword_index import IndexedChunk, KeywordIndex

_DOCUMENT_COLUMNS = "id, collection, path, title, content_hash, chunk_count, char_count, created_at"


def _upgrade_schema(path: Path) -> None:
    """Create the database file with its folder, or bring its schema up to date (ragchat.infra.db)."""
    try:
        open_database(sqlite_url(path)).dispose()
    except (sqlalchemy.exc.DatabaseError, DatabaseError) as exc:
        reason = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
        raise StoreError(
            f"{path} is not a ragchat database ({reason}); move it away or fix RAGCHAT_DATA_DIR"
        ) from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _CollectionIndex:
    """The search indexes of one collection in memory, as of `generation`: the vectors, one column per chunk
    (a scan then streams through memory in order, about twice as fast as one row per chunk), growable, with
    tombstones for removed chunks; and the keyword index."""

    collection_id: int = -1
    keywords: KeywordIndex = field(default_factory=KeywordIndex)
    dimension: int | None = None
    generation: int = -1
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    size: int = 0
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    dead: int = 0
    chunk_ids: list[str] = field(default_factory=list)
    columns_by_document: dict[str, tuple[int, np.ndarray]] = field(
        default_factory=dict
    )  # id: (revision, cols)

    def remove_document(self, document_id: str) -> None:
        _, columns = self.columns_by_document.pop(document_id)
        self.alive[columns] = False
        self.dead += len(columns)

    def add_document(
        self, document_id: str, revision: int, chunk_ids: list[str], vectors: np.ndarray
    ) -> None:
        count = len(chunk_ids)
        if count == 0:
            self.columns_by_document[document_id] = (revision, np.zeros(0, dtype=np.int64))
            return
        if self.dimension is None:
            self.dimension = vectors.shape[1]
            self.matrix = np.zeros((self.dimension, 0), dtype=np.float32)
        if self.size + count > self.matrix.shape[1]:
            capacity = max(1024, 2 * (self.size + count))
            grown = np.zeros((self.dimension, capacity), dtype=np.float32)
            grown[:, : self.size] = self.matrix[:, : self.size]
            alive = np.zeros(capacity, dtype=bool)
            alive[: self.size] = self.alive[: self.size]
            self.matrix, self.alive = grown, alive
        columns = np.arange(self.size, self.size + count)
        self.matrix[:, columns] = vectors.T
        self.alive[columns] = True
        self.chunk_ids.extend(chunk_ids)
        self.size += count
        self.columns_by_document[document_id] = (revision, columns)

    def compact_if_sparse(self) -> None:
        """Drop tombstoned columns once they are a quarter of the matrix."""
        if self.dead == 0 or self.dead * 4 < self.size:
            return
        keep = np.flatnonzero(self.alive[: self.size])
        remap = np.full(self.size, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        self.matrix = np.ascontiguousarray(self.matrix[:, keep])
        self.alive = np.ones(len(keep), dtype=bool)
        self.chunk_ids = [self.chunk_ids[i] for i in keep]
        self.columns_by_document = {
            doc: (revision, remap[columns]) for doc, (revision, columns) in self.columns_by_document.items()
        }
        self.size, self.dead = len(keep), 0

    def snapshot(self) -> _VectorSnapshot:
        """What a search needs, safe to use after the lock is released: columns beyond `size` and new
        arrays made by later refreshes do not disturb it (a chunk tombstoned meanwhile may still show up,
        and its passage is then simply not found)."""
        size = self.size
        alive = self.alive[:size].copy() if self.dead else None
        return _VectorSnapshot(self.matrix[:, :size], alive, self.chunk_ids)


# A vector scan is split across the cores once a collection has this many chunks per core (below that,
# handing parts to threads costs more than it saves).
_SCAN_PART_COLUMNS = 32_768
_CORES = os.cpu_count() or 1


@functools.cache
def _blas() -> ThreadpoolController:
    """numpy's BLAS thread pools (found on first use, not at import)."""
    return ThreadpoolController()


@dataclass(frozen=True, slots=True)
class _VectorSnapshot:
    matrix: np.ndarray
    alive: np.ndarray | None
    chunk_ids: list[str]

    def top_k(self, query: np.ndarray, k: int, pool: ThreadPoolExecutor) -> list[tuple[str, float]]:
        """Exact cosine top-k (vectors and query are L2-normalised, so cosine is the dot product).

        A large matrix is cut into column ranges of at least `_SCAN_PART_COLUMNS`, one per core, scanned in
        parallel on `pool`; each part yields its own top k, and the best k of those win.
        """
        size = self.matrix.shape[1]
        if k <= 0:
            return []
        parts = max(1, min(_CORES, size // _SCAN_PART_COLUMNS))
        bounds = [(size * i // parts, size * (i + 1) // parts) for i in range(parts)]
        # One BLAS thread per part: letting OpenBLAS thread the scan itself measured slower here
        # (docs/design-choices.md, "Vector search").
        with _blas().limit(limits=1, user_api="blas"):
            if parts == 1:
                found = [self._top_of(query, 0, size, k)]
            else:
                found = list(pool.map(lambda part: self._top_of(query, part[0], part[1], k), bounds))
        columns = np.concatenate([part_columns for part_columns, _ in found])
        scores = np.concatenate([part_scores for _, part_scores in found])
        best = np.argsort(-scores, kind="stable")[:k]
        return [(self.chunk_ids[columns[i]], float(scores[i])) for i in best]

    def _top_of(self, query: np.ndarray, start: int, stop: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(columns, scores) of the best `k` live columns in [start, stop), in no particular order."""
        scores = query @ self.matrix[:, start:stop]
        if self.alive is not None:
            live = self.alive[start:stop]
            scores = scores[live]
            columns = np.flatnonzero(live) + start
        else:
            columns = np.arange(start, stop)
        if k < len(scores):
            top = np.argpartition(-scores, k - 1)[:k]
            return columns[top], scores[top]
        return columns, scores


class SqliteChunkStore:
    """`ChunkStore` on one SQLite database file (created with its folder on first use)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        self._indexes: dict[str, _CollectionIndex] = {}
        self._indexes_lock = threading.Lock()
        self._scan_pool = ThreadPoolExecutor(max_workers=_CORES, thread_name_prefix="ragchat-vector-scan")
        self._closed = False
        _upgrade_schema(path)

    # --- connections ---------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError("the store is closed")
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"{self.path} is not a ragchat database ({exc}); move it away or fix RAGCHAT_DATA_DIR"
            ) from None
        self._local.conn = conn
        with self._connections_lock:
            # Close the connections of threads that have ended (an ingest's worker thread, say).
            for thread, stale in [entry for entry in self._connections if not entry[0].is_alive()]:
                stale.close()
                self._connections.remove((thread, stale))
            self._connections.append((threading.current_thread(), conn))
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it does."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so that several queries see the same snapshot."""
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (from any thread)."""
        self._closed = True
        with self._connections_lock:
            for _, conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        with self._indexes_lock:
            self._indexes.clear()
        self._scan_pool.shutdown()

    # --- embedding model binding -----------------------------------------------------------------------

    def check_embedding_model(self, model_name: str, dimension: int) -> None:
        """Record the embedding model on first use; refuse a different one later (vectors would not match)."""
        with self._write() as tx:
            rows = dict(tx.execute("SELECT key, value FROM meta WHERE key LIKE 'embedding_%'").fetchall())
            if not rows:
                tx.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("embedding_model", model_name), ("embedding_dimension", str(dimension))],
                )
                return
        stored_model, stored_dimension = rows.get("embedding_model"), int(rows.get("embedding_dimension", 0))
        if stored_model != model_name or stored_dimension != dimension:
            raise StoreError(
                f"{self.path} holds vectors from embedding model {stored_model!r} "
                f"(dimension {stored_dimension}), "
                f"but the configured model is {model_name!r} (dimension {dimension}). Set "
                "LOCAL_EMBEDDING_MODEL/EMBEDDING_MODEL back, or use a new RAGCHAT_DATA_DIR and ingest again."
            )

    # --- documents -------------------------------------------------------------------------------------

    @staticmethod
    def _record(row: tuple[Any, ...]) -> DocumentRecord:
        id_, collection, path, title, content_hash, chunk_count, char_count, created_at = row
        return DocumentRecord(
            id=str(id_),
            collection=str(collection),
            path=str(path),
            title=None if title is None else str(title),
            content_hash=str(content_hash),
            chunk_count=int(chunk_count),
            char_count=int(char_count),
            created_at=str(created_at),
        )

    def find_document(self, collection: str, path: str) -> DocumentRecord | None:
        row = (
            self._connection()
            .execute(
                f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE collection = ? AND path = ?",
                (collection, path),
            )
            .fetchone()
        )
        return None if row is None else self._record(row)

    def get_document(self, document_id: str) -> DocumentRecord | None:
        row = (
            self._connection()
            .execute(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id = ?", (document_id,))
            .fetchone()
        )
        return None if row is None else self._record(row)

    def list_documents(self, collection: str | None = None) -> list[DocumentRecord]:
        conn = self._connection()
        if collection is None:
            rows = conn.execute(f"SELECT {_DOCUMENT_COLUMNS} FROM documents ORDER BY collection, path")
        else:
            rows = conn.execute(
                f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE collection = ? ORDER BY path", (collection,)
            )
        return [self._record(row) for row in rows.fetchall()]

    def count_documents(self) -> int:
        """How many documents are stored, over all collections."""
        return int(self._connection().execute("SELECT count(*) FROM documents").fetchone()[0])

    def list_collections(self) -> list[str]:
        rows = self._connection().execute("SELECT DISTINCT collection FROM documents ORDER BY collection")
        return [str(row[0]) for row in rows.fetchall()]

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
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
            raise StoreError(
                f"expected one vector per chunk ({len(chunks)}), got an array of shape {vectors.shape}"
            )
        blobs = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._write() as tx:
            tx.execute("INSERT INTO collections(name) VALUES (?) ON CONFLICT(name) DO NOTHING", (collection,))
            existing = tx.execute(
                "SELECT id, revision, created_at FROM documents WHERE collection = ? AND path = ?",
                (collection, path),
            ).fetchone()
            if existing is None:
                document_id, revision, created_at = uuid.uuid4().hex, 1, _now()
                tx.execute(
                    "INSERT INTO documents(id, collection, path, title, content_hash, chunk_count,"
                    " char_count, revision, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        document_id,
                        collection,
                        path,
                        title,
                        content_hash,
                        len(chunks),
                        char_count,
                        revision,
                        created_at,
                    ),
                )
            else:
                document_id, revision, created_at = existing[0], existing[1] + 1, existing[2]
                tx.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
                tx.execute(
                    "UPDATE documents SET title = ?, content_hash = ?, chunk_count = ?, char_count = ?,"
                    " revision = ? WHERE id = ?",
                    (title, content_hash, len(chunks), char_count, revision, document_id),
                )
            tx.executemany(
                "INSERT INTO chunks(id, document_id, collection, ordinal, heading, heading_path,"
                ' start, "end", token_count, text, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                [
                    (
                        f"{document_id}-{revision}-{ordinal}",
                        document_id,
                        collection,
                        ordinal,
                        " > ".join(chunk.heading_path),
                        json.dumps(list(chunk.heading_path), ensure_ascii=False),
                        chunk.start,
                        chunk.end,
                        chunk.token_count,
                        chunk.text,
                        blobs[ordinal].tobytes(),
                    )
                    for ordinal, chunk in enumerate(chunks)
                ],
            )
            tx.execute("UPDATE collections SET generation = generation + 1 WHERE name = ?", (collection,))
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
        with self._write() as tx:
            row = tx.execute("SELECT collection FROM documents WHERE id = ?", (document_id,)).fetchone()
            if row is None:
                return False
            tx.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
            tx.execute("DELETE FROM documents WHERE id = ?", (document_id,))
            tx.execute("UPDATE collections SET generation = generation + 1 WHERE name = ?", (row[0],))
        return True

    def delete_collection(self, collection: str) -> bool:
        with self._write() as tx:
            if tx.execute("SELECT 1 FROM collections WHERE name = ?", (collection,)).fetchone() is None:
                return False
            tx.execute("DELETE FROM chunks WHERE collection = ?", (collection,))
            tx.execute("DELETE FROM documents WHERE collection = ?", (collection,))
            tx.execute("DELETE FROM collections WHERE name = ?", (collection,))  # grants go by cascade
        with self._indexes_lock:
            self._indexes.pop(collection, None)
        return True

    # --- search ----------------------------------------------------------------------------------------

    def prepare_search(self, collection: str) -> None:
        with self._indexes_lock:
            self._refreshed_index(collection)

    def keyword_search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        with self._indexes_lock:
            index = self._refreshed_index(collection)
        if index is None or k <= 0:
            return []
        hits = index.keywords.search(query, k)  # outside the lock, like the vector scan
        if not hits:
            return []
        placeholders = ",".join("?" * len(hits))
        chunk_ids = dict(
            self._connection()
            .execute(f"SELECT rowid, id FROM chunks WHERE rowid IN ({placeholders})", [r for r, _ in hits])
            .fetchall()
        )
        # A chunk replaced since the index was read is simply left out, as in a vector search.
        return [(str(chunk_ids[rowid]), score) for rowid, score in hits if rowid in chunk_ids]

    def vector_search(self, collection: str, vector: Vectors, k: int) -> list[tuple[str, float]]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._indexes_lock:
            index = self._refreshed_index(collection)
            if index is None or index.dimension is None:
                return []
            if index.dimension != query.shape[0]:
                raise StoreError(
                    f"the query vector has {query.shape[0]} dimensions, the vectors of collection "
                    f"{collection!r} have {index.dimension}"
                )
            snapshot = index.snapshot()
        return snapshot.top_k(query, k, self._scan_pool)  # outside the lock (numpy drops the GIL)

    def _refreshed_index(self, collection: str) -> _CollectionIndex | None:
        """The collection's search indexes, brought up to date with the database (caller holds the lock).

        Only the documents whose revision changed are read again. Should reading fail half-way, the
        collection's indexes are dropped, and the next search builds them anew.
        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT id, generation FROM collections WHERE name = ?", (collection,)
            ).fetchone()
            if row is None:
                self._indexes.pop(collection, None)  # deleted, perhaps by another process
                return None
            index = self._indexes.get(collection)
            if index is None or index.collection_id != row[0]:  # new, or deleted and made again
                index = self._indexes[collection] = _CollectionIndex(collection_id=row[0])
            if index.generation == row[1]:
                return index
            try:
                self._catch_up(conn, collection, index)
            except BaseException:
                del self._indexes[collection]
                raise
            index.generation = row[1]
            return index

    def _catch_up(self, conn: sqlite3.Connection, collection: str, index: _CollectionIndex) -> None:
        stored = dict(
            conn.execute("SELECT id, revision FROM documents WHERE collection = ?", (collection,)).fetchall()
        )
        with index.keywords.update() as keywords:
            for document_id, (revision, _) in list(index.columns_by_document.items()):
                if stored.get(document_id) != revision:
                    index.remove_document(document_id)
                    keywords.remove_document(document_id)
            index.compact_if_sparse()
            missing = {doc: rev for doc, rev in stored.items() if doc not in index.columns_by_document}
            for document_id, rows in self._stored_chunks(conn, collection, missing):
                dimension = index.dimension or len(rows[0][4]) // 4
                vectors = np.frombuffer(b"".join(row[4] for row in rows), dtype=np.float32)
                if vectors.size != len(rows) * dimension:
                    raise StoreError(
                        f"document {document_id} holds vectors of another dimension than {dimension}"
                    )
                chunk_ids = [row[1] for row in rows]
                index.add_document(
                    document_id, missing.pop(document_id), chunk_ids, vectors.reshape(-1, dimension)
                )
                keywords.add(
                    IndexedChunk(rowid, document_id, text, heading) for rowid, _, heading, text, _ in rows
                )
            for document_id, revision in missing.items():  # documents without chunks
                index.add_document(document_id, revision, [], np.zeros((0, 0), dtype=np.float32))

    @staticmethod
    def _stored_chunks(
        conn: sqlite3.Connection, collection: str, documents: dict[str, int]
    ) -> Iterator[tuple[str, list[tuple[int, str, str, str, bytes]]]]:
        """(document id, [(rowid, chunk id, heading, text, embedding), ...]) of each of `documents`, chunks in
        order: one scan of the collection if many, else a query each."""
        columns = "document_id, rowid, id, heading, text, embedding"
        rows: Iterable[tuple[Any, ...]]
        if len(documents) > 64:
            rows = conn.execute(
                f"SELECT {columns} FROM chunks WHERE collection = ? ORDER BY document_id, ordinal",
                (collection,),
            )
        else:
            rows = (
                row
                for document_id in list(documents)
                for row in conn.execute(
                    f"SELECT {columns} FROM chunks WHERE document_id = ? ORDER BY ordinal", (document_id,)
                )
            )
        for document_id, group in itertools.groupby(rows, key=lambda row: row[0]):
            if document_id in documents:
                yield document_id, [row[1:] for row in group]

    def get_passages(self, chunk_ids: Sequence[str]) -> list[Passage]:
        if not chunk_ids:
            return []
        placeholders = ",".join("?" * len(chunk_ids))
        rows = self._connection().execute(
            'SELECT c.id, c.document_id, d.path, d.collection, c.heading_path, c.text, c.start, c."end"'
            f" FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({placeholders})",
            list(chunk_ids),
        )
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
            for row in rows.fetchall()
        }
        return [found[chunk_id] for chunk_id in chunk_ids if chunk_id in found]
