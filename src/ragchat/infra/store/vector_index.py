"""Exact cosine search over one collection's vectors, in memory (the SQLite store's default vector index).

The vectors are one column per chunk of a float32 matrix (a scan then streams through memory in order,
about twice as fast as one row per chunk), growable, with tombstones for removed chunks. Like the keyword
index it is derived data, built and kept in step from the database rows (`memory_indexes.py`).

`VectorIndex` is what both in-memory vector indexes do: this exact one and the approximate HNSW graph of
`ann_index.py` (`RAGCHAT_VECTOR_INDEX` picks); the PostgreSQL store searches its vectors in the database
instead (pgvector HNSW, `postgres.py`). `HnswParameters` shape both HNSW indexes.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

# A vector scan is split across the cores once a collection has this many chunks per core (below that,
# handing parts to threads costs more than it saves).
_SCAN_PART_COLUMNS = 32_768
_CORES = os.cpu_count() or 1


@functools.cache
def _blas() -> ThreadpoolController:
    """numpy's BLAS thread pools (found on first use, not at import)."""
    return ThreadpoolController()


def scan_pool() -> ThreadPoolExecutor:
    """A thread pool for split scans, one thread per core (the owner shuts it down)."""
    return ThreadPoolExecutor(max_workers=_CORES, thread_name_prefix="ragchat-vector-scan")


@dataclass(frozen=True, slots=True)
class HnswParameters:
    """HNSW settings: `m` and `ef_construction` when the graph is built, `ef_search` per query (the
    defaults are `Settings`' RAGCHAT_HNSW_*)."""

    m: int = 16
    ef_construction: int = 64
    ef_search: int = 1000


class VectorSearch(Protocol):
    """The vectors of a collection, ready to be searched outside the owner's lock."""

    def top_k(self, query: np.ndarray, k: int, pool: ThreadPoolExecutor) -> list[tuple[str, float]]:
        """The `k` chunk ids most similar to `query` (L2-normalised) by cosine, best first, with scores."""
        ...


class VectorIndex(Protocol):
    """The vectors of one collection's chunks in memory; documents are added and removed whole, by the
    owner's catch-up (one at a time)."""

    @property
    def dimension(self) -> int | None:
        """The vectors' dimension, once the first vector is in."""
        ...

    def add_document(self, document_id: str, chunk_ids: list[str], vectors: np.ndarray) -> None: ...

    def remove_document(self, document_id: str) -> None: ...

    def compact_if_sparse(self) -> None:
        """Reclaim the room of removed documents once they are a large share of the index."""
        ...

    def flush(self) -> None:
        """Make the documents added so far searchable (an index may add them in batches)."""
        ...

    def snapshot(self) -> VectorSearch:
        """What a search needs, safe to use after the owner's lock is released."""
        ...


@dataclass
class ExactVectorIndex:
    """The vectors of one collection's chunks; documents are added and removed whole."""

    dimension: int | None = None
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    size: int = 0
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    dead: int = 0
    chunk_ids: list[str] = field(default_factory=list)
    columns_by_document: dict[str, np.ndarray] = field(default_factory=dict)

    def remove_document(self, document_id: str) -> None:
        columns = self.columns_by_document.pop(document_id, None)
        if columns is None:
            return
        self.alive[columns] = False
        self.dead += len(columns)

    def add_document(self, document_id: str, chunk_ids: list[str], vectors: np.ndarray) -> None:
        count = len(chunk_ids)
        if count == 0:
            self.columns_by_document[document_id] = np.zeros(0, dtype=np.int64)
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
        self.columns_by_document[document_id] = columns

    def flush(self) -> None:
        """Nothing to do: added columns are searchable at once."""

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
        self.columns_by_document = {doc: remap[columns] for doc, columns in self.columns_by_document.items()}
        self.size, self.dead = len(keep), 0

    def snapshot(self) -> VectorSnapshot:
        """What a search needs, safe to use after the owner's lock is released: columns beyond `size` and
        new arrays made by later updates do not disturb it (a chunk tombstoned meanwhile may still show up,
        and its passage is then simply not found)."""
        size = self.size
        alive = self.alive[:size].copy() if self.dead else None
        return VectorSnapshot(self.matrix[:, :size], alive, self.chunk_ids)


@dataclass(frozen=True, slots=True)
class VectorSnapshot:
    """The vectors of a collection as of one moment."""

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
