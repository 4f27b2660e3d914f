"""Retrieval: BM25 keyword search and vector search over a collection, fused by a convex combination.

Each list's scores are standardised over its candidates (z-scores: how many standard deviations above the
list's mean), then a chunk scores `w * vector + (1 - w) * keyword` (w = `vector_weight`, which the app takes
from RAGCHAT_HYBRID_VECTOR_WEIGHT); a side that did not find the chunk counts the lowest score among its
candidates, which bounds what the chunk could have scored there. Unlike reciprocal rank fusion, this keeps
how far apart the candidates of each list are: a keyword list where one chunk holds the rare identifier and
the rest barely match moves that chunk up, a flat one hardly changes the vector order. Bruch et al. (2023,
"An Analysis of Fusion Functions for Hybrid Retrieval") found a convex combination better than RRF and
tunable with few queries; on our question sets this one beats vector-only and keyword-only search on both
the set it was chosen on and a held-out one (docs/benchmarks.md, "Retrieval quality").

The keyword search runs in one worker thread while the query is embedded and searched in another. Queries
of concurrent users are embedded together, in one model call on the model's own thread (`MicroBatcher`):
one user pays one small encode, and sixteen users pay one batch instead of sixteen encodes fighting over
the cores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
from typing import Literal, get_args

import anyio
import anyio.to_thread

from ragchat.domain import Passage
from ragchat.infra.embeddings import Embedder, InputType, Vectors
from ragchat.infra.embeddings.batching import Encoded, MicroBatcher
from ragchat.infra.store import ChunkStore
from ragchat.observability import AppMetrics

SearchMode = Literal["hybrid", "vector", "keyword"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)


def convex_fusion(
    keyword_hits: list[tuple[str, float]],
    vector_hits: list[tuple[str, float]],
    *,
    vector_weight: float,
    candidates: int,
) -> list[tuple[str, float, int | None, int | None]]:
    """Fuse two (id, score) lists, best first, into (id, fused score, keyword rank, vector rank), best first.

    Each list asked for `candidates` hits. Scores are standardised within each list, a list that came back
    shorter padded with zeros (the BM25 score of the chunks that hold none of the query's words), so that
    the one chunk holding a rare identifier stands far above the rest; an id missing from a list counts the
    list's lowest standardised score. A list whose scores are all equal counts 1 for each of its ids and 0
    for the others. Ranks are 1-based, None where the list lacks the id.
    """
    sides = [
        (_standardised(hits, candidates), weight)
        for hits, weight in ((keyword_hits, 1.0 - vector_weight), (vector_hits, vector_weight))
        if hits
    ]
    ranks: dict[str, list[int | None]] = {}
    for side, hits in enumerate((keyword_hits, vector_hits)):
        for rank, (item, _) in enumerate(hits, start=1):
            ranks.setdefault(item, [None, None])[side] = rank
    fused = {
        item: sum(weight * scores.get(item, floor) for (scores, floor), weight in sides) for item in ranks
    }
    ordered = sorted(fused, key=lambda item: (-fused[item], item))
    return [(item, fused[item], ranks[item][0], ranks[item][1]) for item in ordered]


def _standardised(hits: list[tuple[str, float]], candidates: int) -> tuple[dict[str, float], float]:
    """(z-score of each id, the score an id missing from the list counts)."""
    scores = [score for _, score in hits] + [0.0] * max(0, candidates - len(hits))
    deviation = statistics.pstdev(scores)
    if deviation == 0:
        return {item: 1.0 for item, _ in hits}, 0.0
    mean = statistics.fmean(scores)
    return {item: (score - mean) / deviation for item, score in hits}, (min(scores) - mean) / deviation


def _first_leaf(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first exception of `group` that is not itself a group."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


class HybridRetriever:
    """Finds the passages of a collection that best answer a query."""

    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        *,
        vector_weight: float,
        candidates: int = 40,
        metrics: AppMetrics | None = None,
    ) -> None:
        """`vector_weight`: the vector side's share of a hybrid score; `candidates`: hits taken from each
        side before fusing; `metrics` times each search (stage `retrieval`) and its query's embedding
        (`query_embedding`)."""
        self._metrics = metrics or AppMetrics()
        self._store = store
        self._embedder = embedder
        self._vector_weight = vector_weight
        self._candidates = candidates
        self._query_batcher: MicroBatcher | None = None
        self._query_batcher_loop: asyncio.AbstractEventLoop | None = None

    async def search(self, query: str, *, collection: str, k: int, mode: str = "hybrid") -> list[Passage]:
        """The best `k` passages for `query` in `collection`, best first.

        `mode`: "hybrid" (both, fused; `score` is the fused z-score), "vector" (`score` is the cosine
        similarity) or "keyword" (`score` is the BM25 score, higher is better).
        Raises `EmbeddingError` when the query cannot be embedded (itself, not in an exception group).
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
        if k <= 0 or not query.strip():
            return []
        with self._metrics.stage("retrieval"):
            return await self._search(query, collection=collection, k=k, mode=mode)

    async def _search(self, query: str, *, collection: str, k: int, mode: str) -> list[Passage]:
        pool = max(self._candidates, k)
        keyword_hits: list[tuple[str, float]] = []
        vector_hits: list[tuple[str, float]] = []

        async def run_keyword() -> None:
            nonlocal keyword_hits
            keyword_hits = await anyio.to_thread.run_sync(self._store.keyword_search, collection, query, pool)

        async def run_vector() -> None:
            nonlocal vector_hits
            with self._metrics.stage("query_embedding"):
                vector = await self._embed_query(query)
            vector_hits = await anyio.to_thread.run_sync(self._store.vector_search, collection, vector, pool)

        try:
            async with anyio.create_task_group() as group:
                if mode in ("hybrid", "keyword"):
                    group.start_soon(run_keyword)
                if mode in ("hybrid", "vector"):
                    group.start_soon(run_vector)
        except ExceptionGroup as failures:  # callers handle the failure itself (e.g. an `EmbeddingError`)
            raise _first_leaf(failures) from None

        if mode == "keyword":
            return await self._passages(
                [(chunk_id, score, 1 + i, None) for i, (chunk_id, score) in enumerate(keyword_hits[:k])]
            )
        if mode == "vector":
            return await self._passages(
                [(chunk_id, score, None, 1 + i) for i, (chunk_id, score) in enumerate(vector_hits[:k])]
            )
        fused = convex_fusion(keyword_hits, vector_hits, vector_weight=self._vector_weight, candidates=pool)
        return await self._passages(fused[:k])

    async def _embed_query(self, query: str) -> Vectors:
        loop = asyncio.get_running_loop()
        if self._query_batcher is None or self._query_batcher_loop is not loop:
            # One batcher per event loop: the app runs one loop for its lifetime; a batcher left on a loop
            # that has ended (a CLI command per loop) has no work left and is dropped.
            self._query_batcher = MicroBatcher(self._encode, max_batch_texts=64, max_wait_s=0)
            self._query_batcher_loop = loop
            self._query_batcher.start()
        encoded = await self._query_batcher.submit([query], "query")
        vector: Vectors = encoded.vectors[0]
        return vector

    def _encode(self, texts: list[str], input_type: InputType) -> Encoded:
        return Encoded(self._embedder.embed(texts, input_type=input_type))

    async def aclose(self) -> None:
        """Stop the query batcher (its worker task and model thread)."""
        if self._query_batcher is not None:
            await self._query_batcher.aclose()
            self._query_batcher = None

    async def _passages(self, hits: list[tuple[str, float, int | None, int | None]]) -> list[Passage]:
        stored = await anyio.to_thread.run_sync(self._store.get_passages, [chunk_id for chunk_id, *_ in hits])
        by_id = {passage.chunk_id: passage for passage in stored}
        return [
            dataclasses.replace(
                by_id[chunk_id], score=score, keyword_rank=keyword_rank, vector_rank=vector_rank
            )
            for chunk_id, score, keyword_rank, vector_rank in hits
            if chunk_id in by_id
        ]
