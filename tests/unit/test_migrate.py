"""`ragchat migrate --to postgresql://...`: a SQLite data directory copied into an empty PostgreSQL database,
vectors as they were, resumable, counts verified; a database that holds something else is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ragchat.cli.main import app
from ragchat.domain import ChunkDraft
from ragchat.infra.db import open_database
from ragchat.infra.db.copy import copy_database
from ragchat.infra.db.schema import chunks
from ragchat.infra.store import StoreError
from ragchat.infra.store.postgres import VECTOR_INDEX, PostgresChunkStore
from ragchat.infra.store.sqlite import SqliteChunkStore

DIM = 8


def fill(data_dir: Path, documents: int) -> dict[str, np.ndarray]:
    """A SQLite store with `documents` documents of 3 chunks each; {chunk id: vector}."""
    store = SqliteChunkStore(data_dir / "ragchat.sqlite3")
    rng = np.random.default_rng(5)
    vectors: dict[str, np.ndarray] = {}
    try:
        store.check_embedding_model("test-model", DIM)
        for i in range(documents):
            matrix = rng.normal(size=(3, DIM)).astype(np.float32)
            text = f"document {i} about the lighthouse number {i}"
            record = store.replace_document(
                collection="a" if i % 2 else "b",
                path=f"{i}.txt",
                content_hash=str(i),
                title=None,
                char_count=len(text),
                chunks=[ChunkDraft(text, ("Head",), 0, len(text), 8) for _ in range(3)],
                vectors=matrix,
            )
            vectors.update({f"{record.id}-1-{j}": matrix[j] for j in range(3)})
    finally:
        store.close()
    return vectors


def test_migrate_copies_every_row_and_vector_and_the_copy_is_searchable(
    tmp_path: Path, postgres_url: str
) -> None:
    vectors = fill(tmp_path / "data", 7)
    result = CliRunner().invoke(app, ["migrate", "--to", postgres_url, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "chunks rows" in result.output and "21" in result.output and "DIFFERS" not in result.output

    store = PostgresChunkStore(postgres_url)
    try:
        with store.engine.connect() as conn:
            copied = dict(conn.execute(select(chunks.c.id, chunks.c.embedding)).all())
            indexes = conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")
            assert VECTOR_INDEX in set(indexes.scalars())
        assert copied.keys() == vectors.keys()
        assert all(np.array_equal(copied[chunk_id], vector) for chunk_id, vector in vectors.items())
        store.check_embedding_model("test-model", DIM)
        with pytest.raises(StoreError):
            store.check_embedding_model("another-model", DIM)
        some_id, some_vector = next(iter(vectors.items()))
        collection = store.get_passages([some_id])[0].collection
        assert store.vector_search(collection, some_vector, 1)[0][0] == some_id
        assert len(store.keyword_search("a", "lighthouse", 50)) == 9
        added = store.replace_document(  # new rows get new row ids after the copied ones
            collection="a",
            path="new.txt",
            content_hash="n",
            title=None,
            char_count=3,
            chunks=[ChunkDraft("new", (), 0, 3, 1)],
            vectors=np.ones((1, DIM), dtype=np.float32),
        )
        assert store.get_passages([f"{added.id}-1-0"])[0].text == "new"
    finally:
        store.close()


def test_a_copy_cut_short_is_finished_by_running_again(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(tmp_path / "data", 10)
    source = open_database(f"sqlite:///{tmp_path / 'data' / 'ragchat.sqlite3'}")
    target = open_database(postgres_url)
    monkeypatch.setattr("ragchat.infra.db.copy._BATCH", 4)
    seen: list[tuple[str, int]] = []

    def stop_midway(table: str, done: int, total: int) -> None:
        seen.append((table, done))
        if table == "chunks" and done >= 12:
            raise KeyboardInterrupt  # as if the process were stopped between two batches

    try:
        with pytest.raises(KeyboardInterrupt):
            copy_database(source, target, "the-source", stop_midway)
        seen.clear()
        copy_database(source, target, "the-source", lambda table, done, total: seen.append((table, done)))
        assert ("chunks", 12) in seen, "the second run starts after the chunks already copied"
        with target.connect() as conn:
            assert len(conn.execute(select(chunks.c.id)).all()) == 30
        with pytest.raises(Exception, match="holds a copy of the-source"):
            copy_database(source, target, "another-source", lambda *_: None)
    finally:
        source.dispose()
        target.dispose()


def test_a_target_that_holds_documents_is_refused(tmp_path: Path, postgres_url: str) -> None:
    fill(tmp_path / "data", 1)
    store = PostgresChunkStore(postgres_url)
    store.replace_document(
        collection="c",
        path="x.txt",
        content_hash="x",
        title=None,
        char_count=1,
        chunks=[ChunkDraft("x", (), 0, 1, 1)],
        vectors=np.ones((1, DIM), dtype=np.float32),
    )
    store.close()
    result = CliRunner().invoke(app, ["migrate", "--to", postgres_url, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "already holds documents" in result.output
