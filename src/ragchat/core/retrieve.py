"""Retrieval: BM25 keyword search and vector search over a collection, fused by reciprocal rank fusion.

RRF (Cormack et al., 2009) scores a chunk `sum(1 / (rrf_k + rank))` over the result lists it appears in,
so it needs no calibration between BM25 scores and cosine similarities. The keyword search runs in one
worker thread while the query is embedded and searched in another. Queries of concurrent users are embedded
together, in one model call on the model's own thread (`MicroBatcher`): one user pays one small encode, and
sixteen users pay one batch instead of sixteen encodes fighting over the cores.
"""

from __future__ import annotations

import asyncio
import dataclasses
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


def reciprocal_rank_fusion(
    ranked_lists: list[list[str]], *, rrf_k: int
) -> list[tuple[str, float, list[int | None]]]:
    """Fuse lists of ids (best first): (id, fused score, 1-based rank in each list or None), best first."""
    scores: dict[str, float] = {}
    ranks: dict[str, list[int | None]] = {}
    for list_index, ids in enumerate(ranked_lists):
        for rank, item in enumerate(ids, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rrf_k + rank)
            ranks.setdefault(item, [None] * len(ranked_lists))[list_index] = rank
    ordered = sorted(scores, key=lambda item: (-scores[item], item))
    return [(item, scores[item], ranks[item]) for item in ordered]


class HybridRetriever:
    """Finds the passages of a collection that best answer a query."""

    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        *,
        rrf_k: int = 60,
        candidates: int = 40,
        metrics: AppMetrics | None = None,
    ) -> None:
        """`metrics` times each search (stage `retrieval`) and its query's embedding (`query_embedding`)."""
        self._metrics = metrics or AppMetrics()
        self._store = store
        self._embedder = embedder
        self._rrf_k = rrf_k
        self._candidates = candidates
        self._query_batcher: MicroBatcher | None = None
        self._query_batcher_loop: asyncio.AbstractEventLoop | None = None

    async def search(self, query: str, *, collection: str, k: int, mode: str = "hybrid") -> list[Passage]:
        """The best `k` passages for `query` in `collection`, best first.

        `mode`: "hybrid" (RRF of both; `score` is the fused score), "vector" (`score` is the cosine
        similarity) or "keyword" (`score` is the BM25 score, higher is better).
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

        async with anyio.create_task_group() as group:
            if mode in ("hybrid", "keyword"):
                group.start_soon(run_keyword)
            if mode in ("hybrid", "vector"):
                group.start_soon(run_vector)

        if mode == "keyword":
            return await self._passages(
                [(chunk_id, score, 1 + i, None) for i, (chunk_id, score) in enumerate(keyword_hits[:k])]
            )
        if mode == "vector":
            return await self._passages(
                [(chunk_id, score, None, 1 + i) for i, (chunk_id, score) in enumerate(vector_hits[:k])]
            )
        fused = reciprocal_rank_fusion(
            [[chunk_id for chunk_id, _ in keyword_hits], [chunk_id for chunk_id, _ in vector_hits]],
            rrf_k=self._rrf_k,
        )
        return await self._passages(
            [(chunk_id, score, ranks[0], ranks[1]) for chunk_id, score, ranks in fused[:k]]
        )

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
