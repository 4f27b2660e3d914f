"""HybridRetriever over the real embedding model and SQLite store; the fusion arithmetic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from ragchat.config import Settings
from ragchat.core.chunking import Chunker
from ragchat.core.ingest import IngestService
from ragchat.core.retrieve import HybridRetriever, convex_fusion
from ragchat.infra.embeddings import Embedder
from ragchat.infra.embeddings.factory import create_token_counter
from ragchat.infra.loaders import load_document
from ragchat.infra.store.sqlite import SqliteChunkStore
from tests.support.sample_files import TOPICS, write


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[SqliteChunkStore]:
    folder = tmp_path_factory.mktemp("retrieve")
    for name, text in TOPICS.items():
        write(folder / "corpus" / name, text)
    write(
        folder / "corpus" / "errors.md",
        "# Error codes\n\nThe code E1234 means the flux capacitor overheated.\n\n"
        "## Cooling\n\nLet the device rest for ten minutes before restarting it.",
    )
    chunk_store = SqliteChunkStore(folder / "ragchat.sqlite3")
    settings = Settings(_env_file=None, data_dir=folder / "data")  # type: ignore[call-arg]
    chunker = Chunker(create_token_counter(settings), settings.chunk_tokens, settings.chunk_overlap_tokens)
    IngestService(chunk_store, embedder, chunker, load_document, max_file_bytes=1 << 20).ingest_paths(
        [folder / "corpus"], collection="default"
    )
    yield chunk_store
    chunk_store.close()


@pytest.fixture(scope="module")
def retriever(store: SqliteChunkStore, embedder: Embedder) -> HybridRetriever:
    default_weight = Settings.model_fields["hybrid_vector_weight"].default
    return HybridRetriever(store, embedder, vector_weight=default_weight)


def test_convex_fusion_standardises_each_list_and_weighs_the_sides() -> None:
    keyword = [("a", 12.0), ("b", 7.0), ("c", 2.0)]  # BM25: z-scores 1.2247, 0, -1.2247
    vector = [("b", 0.9), ("d", 0.7), ("a", 0.5)]  # cosine: z-scores 1.2247, 0, -1.2247
    fused = convex_fusion(keyword, vector, vector_weight=0.6, candidates=3)
    z = 1.5**0.5
    # A side that lacks an id counts its lowest z-score: "d" gets -z from the keyword side, "c" from the
    # vector side.
    assert [item for item, *_ in fused] == ["b", "a", "d", "c"]
    assert [score for _, score, *_ in fused] == pytest.approx([0.6 * z, 0.4 * z - 0.6 * z, -0.4 * z, -z])
    assert fused[0][2:] == (2, 1)  # keyword rank, vector rank
    assert fused[2][2:] == (None, 2)
    assert fused[3][2:] == (3, None)


def test_convex_fusion_weight_extremes_and_flat_lists() -> None:
    keyword = [("k", 3.0), ("v", 1.0)]
    vector = [("v", 0.8), ("k", 0.2)]
    assert convex_fusion(keyword, vector, vector_weight=1.0, candidates=2)[0][0] == "v"
    assert convex_fusion(keyword, vector, vector_weight=0.0, candidates=2)[0][0] == "k"
    flat = convex_fusion([("x", 1.5), ("y", 1.5)], [], vector_weight=0.6, candidates=2)  # all count fully
    assert [score for _, score, *_ in flat] == pytest.approx([0.4, 0.4])
    assert convex_fusion([], [], vector_weight=0.6, candidates=2) == []


def test_a_single_keyword_hit_lifts_its_chunk_over_the_vector_order() -> None:
    # An identifier found in one chunk only: against the 39 chunks without it (BM25 0) it stands ~6
    # deviations out, which outweighs the vector side ranking it 30th of 40.
    vector = [(f"v{i}", 0.7 - i * 0.005) for i in range(40)]
    vector[29] = ("rare", vector[29][1])
    fused = convex_fusion([("rare", 7.5)], vector, vector_weight=0.6, candidates=40)
    assert fused[0][0] == "rare"
    assert fused[0][2:] == (1, 30)


async def test_vector_mode_finds_paraphrases_keyword_mode_cannot(retriever: HybridRetriever) -> None:
    query = "molten rock bursting out of a mountain"
    vector = await retriever.search(query, collection="default", k=1, mode="vector")
    assert Path(vector[0].document_path).name == "volcanoes.md"
    assert vector[0].vector_rank == 1 and vector[0].keyword_rank is None
    assert 0 < vector[0].score <= 1


async def test_keyword_mode_finds_exact_codes(retriever: HybridRetriever) -> None:
    keyword = await retriever.search("E1234", collection="default", k=3, mode="keyword")
    assert Path(keyword[0].document_path).name == "errors.md"
    assert "E1234" in keyword[0].text
    assert keyword[0].keyword_rank == 1 and keyword[0].score > 0


async def test_hybrid_fuses_both_and_returns_whole_passages(retriever: HybridRetriever) -> None:
    results = await retriever.search("what does error E1234 mean", collection="default", k=3)
    assert Path(results[0].document_path).name == "errors.md"
    assert results[0].keyword_rank is not None and results[0].vector_rank is not None
    assert [p.score for p in results] == sorted((p.score for p in results), reverse=True)
    path = Path(results[0].document_path)
    document = load_document(path.name, await anyio.Path(path).read_bytes())
    assert document.text[results[0].start : results[0].end] == results[0].text


async def test_edge_cases(retriever: HybridRetriever) -> None:
    assert await retriever.search("   ", collection="default", k=3) == []
    assert await retriever.search("anything", collection="nowhere", k=3) == []
    assert len(await retriever.search("?!*()", collection="default", k=2)) == 2  # vector side still answers
    with pytest.raises(ValueError, match="unknown search mode"):
        await retriever.search("x", collection="default", k=3, mode="fuzzy")
