"""IngestService with the real loaders, chunker, embedding model and each store (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from ragchat.config import Settings
from ragchat.core.chunking import Chunker
from ragchat.core.ingest import FileOutcome, IngestService, InvalidCollectionName, discover_files
from ragchat.infra.db.schema import chunks
from ragchat.infra.embeddings import Embedder
from ragchat.infra.embeddings.factory import create_token_counter
from ragchat.infra.loaders import load_document
from tests.support.sample_files import TOPICS, binary_bytes, write
from tests.support.stores import AnyStore


def make_service(store: AnyStore, embedder: Embedder, **options: int) -> IngestService:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    chunker = Chunker(create_token_counter(settings), settings.chunk_tokens, settings.chunk_overlap_tokens)
    limits = {"max_file_bytes": 100_000, "batch_chunks": 64} | options
    return IngestService(store, embedder, chunker, load_document, **limits)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    for name, text in TOPICS.items():
        write(folder / name, text)
    return folder


class RecordingProgress:
    def __init__(self) -> None:
        self.total: int | None = None
        self.outcomes: list[FileOutcome] = []

    def start(self, total_files: int) -> None:
        self.total = total_files

    def advance(self, outcome: FileOutcome) -> None:
        self.outcomes.append(outcome)


def chunk_ids(store: AnyStore) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(chunks.c.id).order_by(chunks.c.id)).scalars())


def test_reingesting_unchanged_files_changes_nothing(
    store: AnyStore, embedder: Embedder, corpus: Path
) -> None:
    service = make_service(store, embedder)
    progress = RecordingProgress()
    first = service.ingest_paths([corpus], collection="default", progress=progress)
    assert sorted(Path(doc.path).name for doc in first.added) == sorted(TOPICS)
    assert first.skipped == [] and first.replaced == [] and first.unchanged == []
    assert progress.total == 3
    assert sorted(o.status for o in progress.outcomes) == ["added"] * 3
    before_docs, before_chunks = store.list_documents(), chunk_ids(store)
    assert len(before_chunks) == first.chunk_count > 0

    second = service.ingest_paths([corpus, corpus / "volcanoes.md"], collection="default")
    assert len(second.unchanged) == 3
    assert second.added == second.replaced == []
    assert store.list_documents() == before_docs
    assert chunk_ids(store) == before_chunks


def test_changed_file_replaces_its_chunks(store: AnyStore, embedder: Embedder, corpus: Path) -> None:
    service = make_service(store, embedder)
    service.ingest_paths([corpus], collection="default")
    original = store.find_document("default", str(corpus / "sourdough.txt"))
    assert original is not None

    write(corpus / "sourdough.txt", "Rye bread\n\nRye flour makes a dense, dark loaf with a sour tang.")
    report = service.ingest_paths([corpus], collection="default")
    assert [doc.id for doc in report.replaced] == [original.id]
    assert len(report.unchanged) == 2
    updated = store.get_document(original.id)
    assert updated is not None and updated.content_hash != original.content_hash
    assert store.count_documents() == 3
    texts = [
        p.text for p in store.get_passages([cid for cid, _ in store.keyword_search("default", "rye", 10)])
    ]
    assert texts and all("Rye" in text for text in texts)
    assert store.keyword_search("default", "starter yeast", 10) == []


def test_vectors_stay_with_their_document_across_batches(
    store: AnyStore, embedder: Embedder, tmp_path: Path
) -> None:
    facts = {
        "whales.txt": "Blue whales are the largest animals ever known to have lived.",
        "rust.txt": "The Rust borrow checker enforces ownership rules at compile time.",
        "tea.txt": "Green tea leaves are steamed or pan-fired soon after picking.",
        "jazz.txt": "Bebop jazz features fast tempos and complex chord progressions.",
        "glacier.txt": "Glaciers carve U-shaped valleys as they slowly flow downhill.",
    }
    for name, text in facts.items():
        write(tmp_path / "many" / name, text)
    service = make_service(store, embedder, batch_chunks=2)  # several batches, each spanning documents
    report = service.ingest_paths([tmp_path / "many"], collection="default")
    assert len(report.added) == 5
    for name, text in facts.items():
        query = embedder.embed([text], input_type="document")[0]
        best = store.get_passages([store.vector_search("default", query, 1)[0][0]])[0]
        assert Path(best.document_path).name == name
        assert float(np.dot(query, query)) == pytest.approx(1.0, abs=1e-4)


def test_bad_and_missing_files_are_skipped_with_reasons(
    store: AnyStore, embedder: Embedder, corpus: Path
) -> None:
    write(corpus / "image.png", binary_bytes())
    write(corpus / "garbage.txt", binary_bytes())
    write(corpus / "huge.md", "# Big\n\n" + "word " * 30_000)
    write(corpus / ".hidden.md", "# Hidden\n\nnot for indexing")
    write(corpus / ".git" / "config.txt", "not for indexing either")
    service = make_service(store, embedder)
    report = service.ingest_paths([corpus, corpus / "nope.md"], collection="default")
    reasons = {Path(path).name: reason for path, reason in report.skipped}
    assert set(reasons) == {"image.png", "garbage.txt", "huge.md", "nope.md"}
    assert "unsupported file type ('.png')" in reasons["image.png"]
    assert "binary" in reasons["garbage.txt"]
    assert "limit" in reasons["huge.md"] and "RAGCHAT_MAX_FILE_MB" in reasons["huge.md"]
    assert reasons["nope.md"] == "no such file or folder"
    assert len(report.added) == 3
    assert store.count_documents() == 3


def test_discover_files_walks_in_order_without_hidden_entries(tmp_path: Path) -> None:
    for name in ("b.md", "a/z.txt", "a/y.txt", ".secret/x.md", "a/.h.md"):
        write(tmp_path / "root" / name, "x")
    files, missing = discover_files([tmp_path / "root", tmp_path / "root" / "b.md", tmp_path / "gone"])
    assert [f.relative_to(tmp_path / "root").as_posix() for f in files] == ["b.md", "a/y.txt", "a/z.txt"]
    assert missing == [tmp_path / "gone"]


async def test_upload_statuses(store: AnyStore, embedder: Embedder) -> None:
    service = make_service(store, embedder)
    text = TOPICS["volcanoes.md"].encode()
    added = await service.ingest_upload("volcanoes.md", text, collection="uploads")
    assert (added.path, added.status, added.reason) == ("volcanoes.md", "added", None)
    record = added.document
    assert record is not None and record.path == "volcanoes.md" and record.collection == "uploads"
    assert added.chunks == record.chunk_count > 0
    assert (await service.ingest_upload("volcanoes.md", text, collection="uploads")).status == "unchanged"
    replaced = await service.ingest_upload("volcanoes.md", text + b"\n\nLava cools.", collection="uploads")
    assert replaced.status == "replaced"
    assert replaced.document is not None and replaced.document.id == record.id
    skipped = await service.ingest_upload("blob.exe", b"MZ\x00\x01", collection="uploads")
    assert (skipped.status, skipped.document) == ("skipped", None)
    assert skipped.reason is not None and "unsupported" in skipped.reason
    with pytest.raises(ValueError, match="plain file name"):
        await service.ingest_upload("../escape.md", text, collection="uploads")
    assert store.count_documents() == 1


def test_collection_names_are_checked(store: AnyStore, embedder: Embedder, corpus: Path) -> None:
    service = make_service(store, embedder)
    for bad in ("", "../x", "a b", "x" * 65, "-lead"):
        with pytest.raises(InvalidCollectionName):
            service.ingest_paths([corpus], collection=bad)
    assert store.count_documents() == 0
