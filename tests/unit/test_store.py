"""The chunk store contract, run against both stores (a real SQLite file and a real PostgreSQL database):
documents, atomic replace, delete, keyword and vector search; then what only one of them has."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy.exc
from sqlalchemy import func, select

from ragchat.domain import ChunkDraft
from ragchat.infra.db.migrate import SQLITE_USER_VERSION, head_revision
from ragchat.infra.db.schema import chunks
from ragchat.infra.store import StoreError, StoreUnavailable, vector_index
from ragchat.infra.store.postgres import VECTOR_INDEX, PostgresChunkStore
from ragchat.infra.store.sqlite import SqliteChunkStore
from tests.support.postgres import PostgresServer
from tests.support.stores import AnyStore, StoreBackend

DIM = 8


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def axis(i: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[i] = 1.0
    return vector


def drafts(
    text: str, parts: list[tuple[int, int]], heading: tuple[str, ...] = ("Intro",)
) -> list[ChunkDraft]:
    return [
        ChunkDraft(text[start:end], heading, start, end, len(text[start:end].split())) for start, end in parts
    ]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteChunkStore]:
    chunk_store = SqliteChunkStore(tmp_path / "data" / "ragchat.sqlite3")
    yield chunk_store
    chunk_store.close()


def put(
    store: AnyStore,
    path: str,
    text: str,
    vectors: list[np.ndarray],
    *,
    collection: str = "c",
    h: str = "h1",
    heading: tuple[str, ...] = ("Intro",),
):
    cut = len(text) // len(vectors)
    parts = [(i * cut, len(text) if i == len(vectors) - 1 else (i + 1) * cut) for i in range(len(vectors))]
    return store.replace_document(
        collection=collection,
        path=path,
        content_hash=h,
        title=path.upper(),
        char_count=len(text),
        chunks=drafts(text, parts, heading),
        vectors=np.stack(vectors),
    )


def test_document_round_trip_keeps_offsets_heading_and_metadata(store: AnyStore) -> None:
    text = "Volcanoes erupt lava. Sourdough needs a starter."
    chunks = [
        ChunkDraft(text[0:21], ("Earth", "Volcanoes"), 0, 21, 4),
        ChunkDraft(text[22:], ("Kitchen",), 22, len(text), 5),
    ]
    record = store.replace_document(
        collection="c",
        path="/docs/a.md",
        content_hash="abc",
        title="A",
        char_count=len(text),
        chunks=chunks,
        vectors=np.stack([axis(0), axis(1)]),
    )
    assert store.get_document(record.id) == record
    assert store.find_document("c", "/docs/a.md") == record
    assert store.find_document("other", "/docs/a.md") is None
    assert store.list_documents() == [record] == store.list_documents("c")
    assert store.list_collections() == ["c"]
    assert store.count_documents() == 1
    assert (record.chunk_count, record.char_count, record.content_hash, record.title) == (
        2,
        len(text),
        "abc",
        "A",
    )

    passages = store.get_passages([f"{record.id}-1-1", "unknown", f"{record.id}-1-0"])
    assert [p.text for p in passages] == ["Sourdough needs a starter.", "Volcanoes erupt lava."]
    assert passages[1].heading_path == ("Earth", "Volcanoes")
    assert passages[1].heading == "Earth > Volcanoes"
    assert (passages[0].start, passages[0].end) == (22, len(text))
    assert text[passages[0].start : passages[0].end] == passages[0].text
    assert passages[0].document_path == "/docs/a.md"
    assert passages[0].collection == "c"


def test_store_survives_reopening(store_backend: StoreBackend) -> None:
    first = store_backend.open()
    record = put(first, "a.txt", "persistent words here", [axis(0)])
    first.close()
    second = store_backend.open()
    assert second.get_document(record.id) == record
    assert second.keyword_search("c", "persistent", 5)[0][0] == f"{record.id}-1-0"
    assert second.vector_search("c", axis(0), 1)[0][0] == f"{record.id}-1-0"


def test_replace_keeps_id_and_swaps_every_chunk(store: AnyStore) -> None:
    old = put(store, "a.txt", "alpha bravo charlie delta", [axis(0), axis(1)])
    assert store.vector_search("c", axis(1), 1)[0][0] == f"{old.id}-1-1"  # loads the old vectors

    new = put(store, "a.txt", "echo foxtrot", [axis(2)], h="h2")
    assert new.id == old.id
    assert new.content_hash == "h2"
    assert new.chunk_count == 1
    assert store.count_documents() == 1
    assert store.keyword_search("c", "alpha bravo charlie delta", 10) == []
    assert [cid for cid, _ in store.keyword_search("c", "foxtrot", 10)] == [f"{new.id}-2-0"]
    assert [cid for cid, _ in store.vector_search("c", axis(1), 10)] == [f"{new.id}-2-0"]
    assert store.get_passages([f"{old.id}-1-0", f"{old.id}-1-1"]) == []


def test_failed_replace_leaves_the_previous_version_whole(store: AnyStore) -> None:
    old = put(store, "a.txt", "original sturdy text", [axis(0)])
    broken = [ChunkDraft("fine", (), 0, 4, 1), ChunkDraft(None, (), 4, 8, 1)]  # type: ignore[arg-type]
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        store.replace_document(
            collection="c",
            path="a.txt",
            content_hash="h2",
            title=None,
            char_count=8,
            chunks=broken,
            vectors=np.stack([axis(1), axis(2)]),
        )
    assert store.get_document(old.id) == old
    assert [p.text for p in store.get_passages([f"{old.id}-1-0"])] == ["original sturdy text"]
    assert store.keyword_search("c", "fine", 5) == []
    assert store.keyword_search("c", "sturdy", 5)[0][0] == f"{old.id}-1-0"


def test_vectors_must_match_chunks(store: AnyStore) -> None:
    with pytest.raises(StoreError, match="one vector per chunk"):
        store.replace_document(
            collection="c",
            path="a.txt",
            content_hash="h",
            title=None,
            char_count=5,
            chunks=drafts("hello", [(0, 5)]),
            vectors=np.stack([axis(0), axis(1)]),
        )
    assert store.count_documents() == 0


def test_delete_removes_every_trace(store: AnyStore, store_backend: StoreBackend) -> None:
    keep = put(store, "keep.txt", "lighthouse keeper", [axis(0)])
    gone = put(store, "gone.txt", "lighthouse lamp oil", [axis(0), axis(1)])
    assert len(store.vector_search("c", axis(0), 10)) == 3

    assert store.delete_document(gone.id) is True
    assert store.delete_document(gone.id) is False
    assert store.get_document(gone.id) is None
    assert store.list_documents() == [keep]
    assert [cid for cid, _ in store.keyword_search("c", "lighthouse lamp", 10)] == [f"{keep.id}-1-0"]
    assert [cid for cid, _ in store.vector_search("c", axis(1), 10)] == [f"{keep.id}-1-0"]
    with store.engine.connect() as conn:
        count = select(func.count()).select_from(chunks).where(chunks.c.document_id == gone.id)
        assert conn.execute(count).scalar_one() == 0
    reopened = store_backend.open()  # indexes built afresh from the database
    assert reopened.keyword_search("c", "oil", 10) == []
    assert [cid for cid, _ in reopened.keyword_search("c", "lighthouse", 10)] == [f"{keep.id}-1-0"]


def test_collections_are_separate(store: AnyStore) -> None:
    a = put(store, "same.txt", "shared harbour words", [axis(0)], collection="a")
    b = put(store, "same.txt", "shared harbour words", [axis(0)], collection="b")
    assert a.id != b.id
    assert store.list_collections() == ["a", "b"]
    assert [r.id for r in store.list_documents("b")] == [b.id]
    assert [cid for cid, _ in store.keyword_search("a", "harbour", 10)] == [f"{a.id}-1-0"]
    assert [cid for cid, _ in store.vector_search("b", axis(0), 10)] == [f"{b.id}-1-0"]
    intruder = put(store, "intruder.txt", "harbour harbour harbour", [axis(0)], collection="x")
    assert [cid for cid, _ in store.keyword_search("a", "harbour", 10)] == [f"{a.id}-1-0"]
    assert [cid for cid, _ in store.keyword_search("x", "harbour", 10)] == [f"{intruder.id}-1-0"]
    assert store.vector_search("missing", axis(0), 10) == []
    assert store.keyword_search("missing", "harbour", 10) == []


def test_keyword_search_ranks_by_bm25_and_stems(store: AnyStore) -> None:
    strong = put(
        store, "strong.txt", "Running runners run: the marathon runner ran a running race.", [axis(0)]
    )
    weak = put(
        store, "weak.txt", "A long essay about gardens, tomatoes, weather and, once, running.", [axis(1)]
    )
    hits = store.keyword_search("c", "runs", 10)
    assert [cid for cid, _ in hits] == [f"{strong.id}-1-0", f"{weak.id}-1-0"]
    assert hits[0][1] > hits[1][1] > 0


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "'",
        "AND",
        "OR NOT",
        "NEAR(a b",
        "foo*",
        "col:value",
        "-minus ^caret",
        "(((",
        "a AND OR b",
        "))",
        "",
        "   ",
        "?!.,;",
        "日本語のテキスト",
        "emoji 🚀 query",
        "x\x00y",
        "chunks_fts MATCH 'x'; DROP TABLE chunks; --",
        "{text heading}: lighthouse",
    ],
)
def test_keyword_search_never_raises_on_punctuation(store: AnyStore, query: str) -> None:
    put(store, "a.txt", "lighthouse keeper AND near the value column", [axis(0)])
    hits = store.keyword_search("c", query, 5)
    assert isinstance(hits, list)
    assert store.count_documents() == 1


def test_keyword_search_folds_case_and_accents_and_splits_identifiers(store: AnyStore) -> None:
    doc = put(store, "a.txt", "Call shutil.copytree(src, dst, dirs_exist_ok=True) at the Café.", [axis(0)])
    for query in ["SHUTIL", "copytree", "dirs exist", "cafe", "café", "exists"]:
        assert [cid for cid, _ in store.keyword_search("c", query, 5)] == [f"{doc.id}-1-0"], query


def test_keyword_search_weighs_heading_words_less_than_text_words(store: AnyStore) -> None:
    in_heading = put(store, "h.txt", "unrelated words follow", [axis(0)], heading=("Sockets",))
    in_text = put(store, "t.txt", "sockets words follow x", [axis(1)], heading=("Other",))
    hits = store.keyword_search("c", "sockets", 5)
    assert [cid for cid, _ in hits] == [f"{in_text.id}-1-0", f"{in_heading.id}-1-0"]


def test_a_very_long_query_is_searched(store: AnyStore) -> None:
    doc = put(store, "a.txt", "needle in a haystack", [axis(0)])
    query = " ".join(f"filler{i}" for i in range(5000)) + " needle " + "x" * 500
    # Only the first 64 distinct words count: the needle, past them, is not searched.
    assert store.keyword_search("c", query, 5) == []
    assert [cid for cid, _ in store.keyword_search("c", "x" * 500 + " needle", 5)] == [f"{doc.id}-1-0"]


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE collections (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    generation INTEGER NOT NULL DEFAULT 0, chunk_count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE documents (id TEXT PRIMARY KEY, collection TEXT NOT NULL REFERENCES collections(name),
    path TEXT NOT NULL, title TEXT, content_hash TEXT NOT NULL, chunk_count INTEGER NOT NULL,
    char_count INTEGER NOT NULL, revision INTEGER NOT NULL, created_at TEXT NOT NULL,
    UNIQUE (collection, path));
CREATE TABLE chunks (rowid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL REFERENCES documents(id), collection TEXT NOT NULL, ordinal INTEGER NOT NULL,
    heading TEXT NOT NULL, heading_path TEXT NOT NULL, scope TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, token_count INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX chunks_by_document ON chunks(document_id, ordinal);
CREATE VIRTUAL TABLE chunks_fts USING fts5(text, heading, scope, content='chunks', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, heading, scope) VALUES (new.rowid, new.text, new.heading, new.scope);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading, scope)
    VALUES ('delete', old.rowid, old.text, old.heading, old.scope);
END;
INSERT INTO collections(id, name, generation, chunk_count) VALUES (1, 'c', 1, 1);
INSERT INTO documents VALUES ('d1', 'c', 'old.txt', NULL, 'h', 1, 18, 1, '2026-11-25T00:00:00+00:00');
PRAGMA user_version=1;
"""


def test_a_database_of_schema_1_is_migrated_with_its_documents(tmp_path: Path) -> None:
    path = tmp_path / "ragchat.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_1)
    conn.execute(
        'INSERT INTO chunks(id, document_id, collection, ordinal, heading, heading_path, scope, start, "end",'
        " token_count, text, embedding) VALUES ('d1-1-0', 'd1', 'c', 0, 'Old', '[\"Old\"]',"
        " 'zzcollection1zz', 0, 18, 3, 'written by schema 1', ?)",
        (axis(2).tobytes(),),
    )
    conn.commit()
    conn.close()

    store = SqliteChunkStore(path)
    try:
        assert [record.path for record in store.list_documents()] == ["old.txt"]
        assert store.keyword_search("c", "schema", 5)[0][0] == "d1-1-0"
        assert store.vector_search("c", axis(2), 5)[0][0] == "d1-1-0"
        added = put(store, "new.txt", "written by schema 2", [axis(3)])
        assert {cid for cid, _ in store.keyword_search("c", "written", 5)} == {"d1-1-0", f"{added.id}-1-0"}
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SQLITE_USER_VERSION,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)
        assert conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'chunks_fts%'"
        ).fetchone() == (0,)
    finally:
        conn.close()


def test_vector_search_is_exact_cosine_best_first(store: AnyStore) -> None:
    doc = put(store, "a.txt", "aaaa bbbb cccc dddd", [unit(1, 0), unit(1, 1), unit(0, 1), unit(-1, 0)])
    hits = store.vector_search("c", unit(1, 0.2), 3)
    assert [cid for cid, _ in hits] == [f"{doc.id}-1-0", f"{doc.id}-1-1", f"{doc.id}-1-2"]
    assert hits[0][1] == pytest.approx(float(unit(1, 0) @ unit(1, 0.2)), abs=1e-6)
    assert len(store.vector_search("c", unit(1, 0), 100)) == 4


def test_search_indexes_follow_commits_from_another_process(
    store: AnyStore, store_backend: StoreBackend
) -> None:
    mine = put(store, "mine.txt", "local words", [axis(0)])
    assert [cid for cid, _ in store.vector_search("c", axis(3), 5)] == [f"{mine.id}-1-0"]
    assert [cid for cid, _ in store.keyword_search("c", "words", 5)] == [f"{mine.id}-1-0"]

    script = textwrap.dedent(
        f"""
        import numpy as np
        from pathlib import Path
        from ragchat.domain import ChunkDraft
        from ragchat.config import Settings
        from ragchat.container import open_store
        store = open_store(Settings(_env_file=None))
        vector = np.zeros({DIM}, dtype=np.float32); vector[3] = 1.0
        store.replace_document(collection="c", path="theirs.txt", content_hash="x", title=None, char_count=5,
                               chunks=[ChunkDraft("other", (), 0, 5, 1)], vectors=vector[None, :])
        mine = store.find_document("c", "mine.txt")
        store.delete_document(mine.id)
        store.close()
        """
    )
    env = {**os.environ, **store_backend.environment()}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, env=env)

    theirs = store.find_document("c", "theirs.txt")
    assert theirs is not None
    assert [cid for cid, _ in store.vector_search("c", axis(3), 5)] == [f"{theirs.id}-1-0"]
    assert store.keyword_search("c", "words", 5) == []
    assert [cid for cid, _ in store.keyword_search("c", "other", 5)] == [f"{theirs.id}-1-0"]
    assert store.get_document(mine.id) is None


def test_concurrent_writers_and_readers_from_threads(store: AnyStore) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                put(
                    store,
                    f"w{n}-{i}.txt",
                    f"thread {n} document {i} lighthouse",
                    [axis(n % DIM), axis(i % DIM)],
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for i in range(30):
                store.vector_search("c", axis(i % DIM), 5)
                store.keyword_search("c", "lighthouse", 5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count_documents() == 30
    assert len(store.vector_search("c", axis(0), 1000)) == 60


def test_index_compacts_after_many_deletes(store: AnyStore) -> None:
    records = [put(store, f"{i}.txt", f"document number {i}", [unit(1, i)]) for i in range(20)]
    store.vector_search("c", axis(0), 1)
    for record in records[:15]:
        store.delete_document(record.id)
    hits = store.vector_search("c", axis(0), 100)
    assert sorted(cid for cid, _ in hits) == sorted(f"{r.id}-1-0" for r in records[15:])


def test_embedding_model_is_pinned(store: AnyStore) -> None:
    store.check_embedding_model("all-MiniLM-L6-v2", 384)
    store.check_embedding_model("all-MiniLM-L6-v2", 384)
    with pytest.raises(StoreError, match="new RAGCHAT_DATA_DIR"):
        store.check_embedding_model("bge-small", 384)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ragchat.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a ragchat database"):
        SqliteChunkStore(path)


@pytest.mark.parametrize("with_tombstones", [False, True])
def test_a_vector_scan_split_across_cores_finds_the_same_top_k(
    sqlite_store: AnyStore, monkeypatch: pytest.MonkeyPatch, with_tombstones: bool
) -> None:
    store = sqlite_store
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = [put(store, f"{i}.txt", f"document {i}", list(vectors[i * 4 : i * 4 + 4])) for i in range(10)]
    store.vector_search("c", vectors[0], 1)  # loads all 40 vectors
    if with_tombstones:
        store.delete_document(records[3].id)  # 4 tombstoned columns inside one part
    live = [i for i in range(40) if not (with_tombstones and 12 <= i < 16)]
    query = vectors[0] + vectors[21]
    query /= np.linalg.norm(query)
    whole = store.vector_search("c", query, 12)

    monkeypatch.setattr(vector_index, "_SCAN_PART_COLUMNS", 5)  # 40 columns: 3 parts on 3 "cores"
    monkeypatch.setattr(vector_index, "_CORES", 3)
    split = store.vector_search("c", query, 12)
    # Same chunks in the same order; a part's dot products may round differently in the last bit.
    assert [chunk_id for chunk_id, _ in split] == [chunk_id for chunk_id, _ in whole]
    assert [score for _, score in split] == pytest.approx([score for _, score in whole], abs=1e-6)
    expected = sorted(((float(vectors[i] @ query), i) for i in live), reverse=True)[:12]
    assert [score for _, score in split] == pytest.approx([score for score, _ in expected], abs=1e-6)


def test_prepare_search_builds_the_indexes_a_search_then_uses(store: AnyStore) -> None:
    store.prepare_search("missing")  # nothing to build, no error
    doc = put(store, "a.txt", "prepared words", [axis(0)])
    store.prepare_search("c")
    assert [cid for cid, _ in store.keyword_search("c", "prepared", 5)] == [f"{doc.id}-1-0"]
    assert [cid for cid, _ in store.vector_search("c", axis(0), 5)] == [f"{doc.id}-1-0"]


def test_a_failed_index_build_is_retried_from_scratch(sqlite_store: AnyStore) -> None:
    store = sqlite_store
    good = put(store, "good.txt", "well formed words", [axis(0)])
    bad = put(store, "bad.txt", "short", [np.ones(DIM // 2, dtype=np.float32)])  # another model's vectors
    with pytest.raises(StoreError, match="another dimension"):
        store.keyword_search("c", "words", 5)
    store.delete_document(bad.id)
    assert [cid for cid, _ in store.keyword_search("c", "words", 5)] == [f"{good.id}-1-0"]
    assert [cid for cid, _ in store.vector_search("c", axis(0), 5)] == [f"{good.id}-1-0"]


# --- PostgreSQL only ---------------------------------------------------------------------------------


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[PostgresChunkStore]:
    chunk_store = PostgresChunkStore(postgres_url)
    yield chunk_store
    chunk_store.close()


def test_recording_the_model_builds_the_hnsw_index_that_searches_use(pg_store: PostgresChunkStore) -> None:
    doc = put(pg_store, "a.txt", "aaaa bbbb cccc dddd", [unit(1, 0), unit(1, 1), unit(0, 1), unit(-1, 0)])
    pg_store.check_embedding_model("test-model", DIM)
    pg_store.check_embedding_model("test-model", DIM)  # a second replica: the index is there already
    with pg_store.engine.connect() as conn:
        column_type = conn.exec_driver_sql(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
        ).scalar_one()
        assert column_type == f"vector({DIM})"
        conn.exec_driver_sql("SET enable_seqscan = off")  # a 4-row table: make the planner show its index
        plan = "\n".join(
            str(row[0])
            for row in conn.exec_driver_sql(
                "EXPLAIN SELECT id FROM chunks WHERE collection = 'c'"
                f" ORDER BY embedding <=> '{[1.0] + [0.0] * (DIM - 1)}' LIMIT 3"
            )
        )
        assert VECTOR_INDEX in plan
    hits = pg_store.vector_search("c", unit(1, 0.2), 3)
    assert [cid for cid, _ in hits] == [f"{doc.id}-1-0", f"{doc.id}-1-1", f"{doc.id}-1-2"]


def test_a_small_collection_among_large_ones_gets_its_k_results(pg_store: PostgresChunkStore) -> None:
    rng = np.random.default_rng(3)
    big = rng.normal(size=(400, DIM)).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    for i in range(0, 400, 40):
        put(pg_store, f"big-{i}.txt", "filler " * 40, list(big[i : i + 40]), collection="big")
    small = put(
        pg_store, "s.txt", "one two three four five", [unit(1, 0.1 * i) for i in range(5)], collection="s"
    )
    pg_store.check_embedding_model("test-model", DIM)  # HNSW over all 405 rows
    hits = pg_store.vector_search("s", unit(-1, 0), 5)
    assert sorted(cid for cid, _ in hits) == sorted(f"{small.id}-1-{i}" for i in range(5))


def test_an_unreachable_server_raises_store_unavailable_then_recovers(
    postgres_server_factory: Callable[[], PostgresServer],
) -> None:
    server = postgres_server_factory()
    store = PostgresChunkStore(server.create_database())
    try:
        doc = put(store, "a.txt", "before the restart", [axis(0)])
        server.stop()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            store.get_document(doc.id)
        with pytest.raises(StoreUnavailable):
            store.vector_search("c", axis(0), 1)
        server.start()
        assert store.get_document(doc.id) == doc  # the pool dropped its dead connections
        assert store.keyword_search("c", "restart", 1)[0][0] == f"{doc.id}-1-0"
    finally:
        store.close()
