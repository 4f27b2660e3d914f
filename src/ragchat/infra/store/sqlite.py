"""The default `ChunkStore`: one SQLite file (standard library `sqlite3`), no server.

Layout: `collections` (a generation counter per collection), `documents`, `chunks` (text, heading path,
character offsets, token count and the embedding as a float32 BLOB) and `chunks_fts`, an FTS5 index over
chunk text and headings kept in step by triggers. The database runs in WAL mode, so readers never block the
writer and see either the old or the new version of a document, never half of it.

Vector search is exact cosine similarity with numpy over an in-memory float32 matrix per collection. Every
write bumps its collection's generation in the same transaction; before each search the store compares the
stored generation with the one its matrix reflects and reloads only the documents that changed, so commits
made by other processes (a CLI ingest next to a running server) show up at the next search.

Thread safety: each thread gets its own connection; the in-memory matrices are guarded by a lock.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from ragchat.domain import ChunkDraft, DocumentRecord, Passage
from ragchat.infra.embeddings import Vectors
from ragchat.infra.store import StoreError

SCHEMA_VERSION = 1

_TOKENIZER = "porter unicode61 remove_diacritics 2"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    generation INTEGER NOT NULL DEFAULT 0,
    chunk_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL REFERENCES collections(name),
    path TEXT NOT NULL,
    title TEXT,
    content_hash TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    char_count INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (collection, path)
);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL REFERENCES documents(id),
    collection TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    heading TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    scope TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    token_count INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks(document_id, ordinal);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, heading, scope,
    content='chunks', content_rowid='rowid',
    tokenize='{_TOKENIZER}'
);
CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, heading, scope) VALUES (new.rowid, new.text, new.heading, new.scope);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading, scope)
    VALUES ('delete', old.rowid, old.text, old.heading, old.scope);
END;
"""

# Per connection: the query's words go through the index's own tokenizer (to learn their stems), and the
# index's vocabulary gives each stem's document frequency.
_QUERY_TABLES = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_words USING fts5(word, tokenize='{_TOKENIZER}');
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_stems USING fts5vocab(temp, query_words, 'instance');
CREATE VIRTUAL TABLE IF NOT EXISTS temp.index_vocabulary USING fts5vocab(main, chunks_fts, 'row');
"""

# Column weights for bm25(): text counts fully, the heading path half, the collection token not at all.
_BM25_WEIGHTS = (1.0, 0.5, 0.0)
_QUERY_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_QUERY_WORDS = 32
# A keyword query ranks the rarest query words first and stops adding words once their postings (the
# chunks containing them) pass this many: very common words add little to BM25 but most of its cost.
KEYWORD_POSTINGS_BUDGET = 20_000
_FREQUENCY_TTL_S = 60.0
_DOCUMENT_COLUMNS = "id, collection, path, title, content_hash, chunk_count, char_count, created_at"


def query_words(query: str) -> list[str]:
    """The distinct words of a free-text query, lowercased, in order (at most 32).

    Each word later goes into the FTS5 query inside double quotes, which makes every character literal:
    punctuation, operators (`AND`, `NEAR`, `*`, `:`) and unbalanced quotes in user input never raise.
    """
    return list(dict.fromkeys(_QUERY_WORD.findall(query.lower())))[:_MAX_QUERY_WORDS]


def _scope_token(collection_id: int) -> str:
    """The one token, indexed with every chunk, that restricts a keyword search to its collection
    (letters around the digits keep the porter stemmer from changing it)."""
    return f"zzcollection{collection_id}zz"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _CollectionVectors:
    """The vectors of one collection in memory, one column per chunk (a scan then streams through memory
    in order, about twice as fast as one row per chunk), growable, with tombstones for removed chunks."""

    dimension: int
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
        if self.matrix.shape[0] != self.dimension:
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


@functools.cache
def _blas() -> ThreadpoolController:
    """numpy's BLAS thread pools (found on first use, not at import)."""
    return ThreadpoolController()


@dataclass(frozen=True, slots=True)
class _VectorSnapshot:
    matrix: np.ndarray
    alive: np.ndarray | None
    chunk_ids: list[str]

    def top_k(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Exact cosine top-k (vectors and query are L2-normalised, so cosine is the dot product)."""
        # One BLAS thread: the scan is bound by memory bandwidth, and the other core is busy with the
        # query's keyword search (a second thread measured slower here, see docs/design-choices.md).
        with _blas().limit(limits=1, user_api="blas"):
            scores = query @ self.matrix
        live = len(scores)
        if self.alive is not None:
            scores[~self.alive] = -np.inf
            live = int(self.alive.sum())
        k = min(k, live)
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.chunk_ids[i], float(scores[i])) for i in top]


class SqliteChunkStore:
    """`ChunkStore` on one SQLite database file (created with its folder on first use)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 30.0,
        keyword_postings_budget: int = KEYWORD_POSTINGS_BUDGET,
    ) -> None:
        self.path = path
        self._keyword_postings_budget = keyword_postings_budget
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        self._vectors: dict[str, _CollectionVectors] = {}
        self._vectors_lock = threading.Lock()
        self._frequencies: dict[str, tuple[int, float]] = {}  # stem -> (chunks containing it, when read)
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

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

    def _migrate(self) -> None:
        conn = self._connection()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer ragchat (schema {version}; this one reads "
                f"{SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:
            # Idempotent DDL in one transaction, so two processes opening a new database at once both succeed.
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")

    def close(self) -> None:
        """Close every connection this store opened (from any thread)."""
        self._closed = True
        with self._connections_lock:
            for _, conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        with self._vectors_lock:
            self._vectors.clear()

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
            scope = _scope_token(
                tx.execute("SELECT id FROM collections WHERE name = ?", (collection,)).fetchone()[0]
            )
            existing = tx.execute(
                "SELECT id, revision, created_at, chunk_count FROM documents"
                " WHERE collection = ? AND path = ?",
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
                "INSERT INTO chunks(id, document_id, collection, ordinal, heading, heading_path, scope,"
                ' start, "end", token_count, text, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                [
                    (
                        f"{document_id}-{revision}-{ordinal}",
                        document_id,
                        collection,
                        ordinal,
                        " > ".join(chunk.heading_path),
                        json.dumps(list(chunk.heading_path), ensure_ascii=False),
                        scope,
                        chunk.start,
                        chunk.end,
                        chunk.token_count,
                        chunk.text,
                        blobs[ordinal].tobytes(),
                    )
                    for ordinal, chunk in enumerate(chunks)
                ],
            )
            tx.execute(
                "UPDATE collections SET generation = generation + 1, chunk_count = chunk_count + ?"
                " WHERE name = ?",
                (len(chunks) - (existing[3] if existing else 0), collection),
            )
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
            row = tx.execute(
                "SELECT collection, chunk_count FROM documents WHERE id = ?", (document_id,)
            ).fetchone()
            if row is None:
                return False
            tx.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
            tx.execute("DELETE FROM documents WHERE id = ?", (document_id,))
            tx.execute(
                "UPDATE collections SET generation = generation + 1, chunk_count = chunk_count - ?"
                " WHERE name = ?",
                (row[1], row[0]),
            )
        return True

    # --- search ----------------------------------------------------------------------------------------

    def keyword_search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        """BM25 over the collection's chunks for the query's rarest words (see KEYWORD_POSTINGS_BUDGET)."""
        words = query_words(query)
        if not words or k <= 0:
            return []
        conn = self._connection()
        counts = {
            name: (id_, chunks)
            for id_, name, chunks in conn.execute("SELECT id, name, chunk_count FROM collections")
        }
        if collection not in counts:
            return []
        searched = self._words_worth_searching(conn, words)
        if not searched:
            return []
        expression = " OR ".join(f'"{word}"' for word in searched)
        if any(chunks for name, (_, chunks) in counts.items() if name != collection):
            # Intersecting with the collection's token costs a walk of its postings: only when needed.
            expression = f'scope : "{_scope_token(counts[collection][0])}" AND ({expression})'
        hits = conn.execute(
            "SELECT rowid, -bm25(chunks_fts, ?, ?, ?) FROM chunks_fts WHERE chunks_fts MATCH ?"
            " ORDER BY bm25(chunks_fts, ?, ?, ?) LIMIT ?",
            (*_BM25_WEIGHTS, expression, *_BM25_WEIGHTS, k),
        ).fetchall()
        if not hits:
            return []
        placeholders = ",".join("?" * len(hits))
        chunk_ids = dict(
            conn.execute(
                f"SELECT rowid, id FROM chunks WHERE rowid IN ({placeholders}) AND collection = ?",
                [rowid for rowid, _ in hits] + [collection],
            ).fetchall()
        )
        return [(str(chunk_ids[rowid]), float(score)) for rowid, score in hits if rowid in chunk_ids]

    def _words_worth_searching(self, conn: sqlite3.Connection, words: list[str]) -> list[str]:
        """The query words to search for: one per distinct stem, rarest first, until the chunks containing
        them reach the postings budget (at least one word, when any occurs in the index)."""
        if not getattr(self._local, "query_tables", False):
            conn.executescript(_QUERY_TABLES)
            self._local.query_tables = True
        conn.execute("DELETE FROM temp.query_words")
        conn.executemany("INSERT INTO temp.query_words(rowid, word) VALUES (?, ?)", enumerate(words, start=1))
        stems: dict[int, list[str]] = {}
        for position, stem in conn.execute("SELECT doc, term FROM temp.query_stems ORDER BY doc, offset"):
            stems.setdefault(position, []).append(stem)
        candidates: dict[tuple[str, ...], tuple[int, str]] = {}
        for position, word_stems in stems.items():
            frequency = min(self._document_frequency(conn, stem) for stem in word_stems)
            if frequency:
                candidates.setdefault(tuple(word_stems), (frequency, words[position - 1]))
        chosen: list[str] = []
        postings = 0
        for frequency, word in sorted(candidates.values()):
            if chosen and postings + frequency > self._keyword_postings_budget:
                break
            chosen.append(word)
            postings += frequency
        return chosen

    def _document_frequency(self, conn: sqlite3.Connection, stem: str) -> int:
        """How many chunks (of any collection) contain `stem`; cached for a minute, as only the choice of
        words depends on it, not the scores."""
        now = time.monotonic()
        cached = self._frequencies.get(stem)
        if cached is not None and now - cached[1] < _FREQUENCY_TTL_S:
            return cached[0]
        row = conn.execute("SELECT doc FROM temp.index_vocabulary WHERE term = ?", (stem,)).fetchone()
        frequency = int(row[0]) if row else 0
        if len(self._frequencies) > 100_000:
            self._frequencies.clear()
        self._frequencies[stem] = (frequency, now)
        return frequency

    def vector_search(self, collection: str, vector: Vectors, k: int) -> list[tuple[str, float]]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._vectors_lock:
            index = self._refreshed_vectors(collection, query.shape[0])
            if index is None:
                return []
            snapshot = index.snapshot()
        return snapshot.top_k(query, k)  # outside the lock: searches run in parallel (numpy drops the GIL)

    def _refreshed_vectors(self, collection: str, dimension: int) -> _CollectionVectors | None:
        """The collection's matrix, brought up to date with the database (caller holds the lock)."""
        with self._read() as conn:
            row = conn.execute("SELECT generation FROM collections WHERE name = ?", (collection,)).fetchone()
            if row is None:
                return None
            index = self._vectors.get(collection)
            if index is None or index.dimension != dimension:
                index = self._vectors[collection] = _CollectionVectors(dimension=dimension)
            if index.generation == row[0]:
                return index
            stored = dict(
                conn.execute(
                    "SELECT id, revision FROM documents WHERE collection = ?", (collection,)
                ).fetchall()
            )
            for document_id, (revision, _) in list(index.columns_by_document.items()):
                if stored.get(document_id) != revision:
                    index.remove_document(document_id)
            index.compact_if_sparse()
            missing = {doc: rev for doc, rev in stored.items() if doc not in index.columns_by_document}
            for document_id, chunk_ids, vectors in self._load_vectors(conn, collection, missing, dimension):
                index.add_document(document_id, missing.pop(document_id), chunk_ids, vectors)
            for document_id, revision in missing.items():  # documents without chunks
                index.add_document(document_id, revision, [], np.zeros((0, dimension), dtype=np.float32))
            index.generation = row[0]
            return index

    @staticmethod
    def _load_vectors(
        conn: sqlite3.Connection, collection: str, documents: dict[str, int], dimension: int
    ) -> Iterator[tuple[str, list[str], np.ndarray]]:
        """(document id, chunk ids, vectors) of each of `documents`: one scan if many, else a query each."""
        rows: Iterable[tuple[Any, ...]]
        if len(documents) > 64:
            rows = conn.execute(
                "SELECT document_id, id, embedding FROM chunks WHERE collection = ?"
                " ORDER BY document_id, ordinal",
                (collection,),
            )
        else:
            rows = (
                row
                for document_id in list(documents)
                for row in conn.execute(
                    "SELECT document_id, id, embedding FROM chunks WHERE document_id = ? ORDER BY ordinal",
                    (document_id,),
                )
            )
        for document_id, group in itertools.groupby(rows, key=lambda row: row[0]):
            if document_id not in documents:
                continue
            members = list(group)
            vectors = np.frombuffer(b"".join(row[2] for row in members), dtype=np.float32)
            if vectors.size != len(members) * dimension:
                raise StoreError(
                    f"document {document_id} holds vectors of another dimension than {dimension}"
                )
            yield document_id, [row[1] for row in members], vectors.reshape(-1, dimension)

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
