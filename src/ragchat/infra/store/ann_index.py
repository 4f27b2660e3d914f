"""Approximate cosine search over the vectors of one collection, in memory: an HNSW graph built with
`hnswlib` (`RAGCHAT_VECTOR_INDEX=hnsw`), for the SQLite store's large collections.

It does what the exact index (`vector_index.py`) does, behind the same interface, and is kept in step
with the database rows the same way (`memory_indexes.py`): documents are added and removed whole; a
removed document's nodes are marked deleted in the graph (searches pass over them) and the graph is built
again from its live vectors once they are a quarter of it. Vectors are inserted in batches, each by every
core. The recall and latency this gives are in docs/benchmarks.md; why hnswlib in docs/design-choices.md.

Thread safety: changes come from the owner's catch-up (one at a time); a search may run beside them and
takes the graph's own lock.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import hnswlib
import numpy as np

from ragchat.infra.store.vector_index import HnswParameters

_CORES = os.cpu_count() or 1
# Vectors waiting to be inserted are handed to the graph in batches of about this many (inserting a batch
# uses every core; holding a whole collection's vectors at once would double a first build's memory).
_BATCH = 65_536


class HnswVectorIndex:
    """The vectors of one collection's chunks in an HNSW graph; documents are added and removed whole."""

    def __init__(self, parameters: HnswParameters) -> None:
        self.parameters = parameters
        self.dimension: int | None = None
        self._graph: hnswlib.Index | None = None
        self._chunk_ids: list[str] = []  # by graph label
        self._labels_by_document: dict[str, np.ndarray] = {}
        self._waiting: list[tuple[np.ndarray, np.ndarray]] = []  # (labels, vectors) not in the graph yet
        self._waiting_count = 0
        self._dead = 0
        self._lock = threading.Lock()

    def add_document(self, document_id: str, chunk_ids: list[str], vectors: np.ndarray) -> None:
        start = len(self._chunk_ids)
        labels = np.arange(start, start + len(chunk_ids), dtype=np.int64)
        self._labels_by_document[document_id] = labels
        if not chunk_ids:
            return
        if self.dimension is None:
            self.dimension = vectors.shape[1]
        self._chunk_ids.extend(chunk_ids)
        self._waiting.append((labels, np.ascontiguousarray(vectors, dtype=np.float32)))
        self._waiting_count += len(labels)
        if self._waiting_count >= _BATCH:
            self.flush()

    def remove_document(self, document_id: str) -> None:
        labels = self._labels_by_document.pop(document_id, None)
        if labels is None or len(labels) == 0:
            return
        self.flush()
        with self._lock:
            assert self._graph is not None
            for label in labels:
                self._graph.mark_deleted(int(label))
        self._dead += len(labels)

    def flush(self) -> None:
        """Insert the vectors of the documents added since the last call into the graph."""
        if not self._waiting:
            return
        labels = np.concatenate([labels for labels, _ in self._waiting])
        vectors = np.concatenate([vectors for _, vectors in self._waiting])
        self._waiting, self._waiting_count = [], 0
        with self._lock:
            if self._graph is None:
                self._graph = self._new_graph(len(labels))
            needed = self._graph.get_current_count() + len(labels)
            if needed > self._graph.get_max_elements():
                self._graph.resize_index(max(needed, 2 * self._graph.get_max_elements()))
            self._graph.add_items(vectors, labels, num_threads=_CORES)

    def compact_if_sparse(self) -> None:
        """Build the graph again from its live vectors once deleted nodes are a quarter of it."""
        if self._dead == 0 or self._dead * 4 < len(self._chunk_ids):
            return
        self.flush()
        documents = list(self._labels_by_document.items())
        live = np.concatenate([labels for _, labels in documents]) if documents else np.zeros(0, np.int64)
        with self._lock:
            assert self._graph is not None
            graph = self._new_graph(len(live))
            if len(live):
                vectors = np.asarray(self._graph.get_items(live, return_type="numpy"), dtype=np.float32)
                graph.add_items(vectors, np.arange(len(live)), num_threads=_CORES)
            self._graph = graph
            self._chunk_ids = [self._chunk_ids[int(label)] for label in live]
        start = 0
        for document_id, labels in documents:
            self._labels_by_document[document_id] = np.arange(start, start + len(labels), dtype=np.int64)
            start += len(labels)
        self._dead = 0

    def snapshot(self) -> HnswVectorIndex:
        """What a search needs: the index itself (a search takes the graph's lock)."""
        return self

    def top_k(self, query: np.ndarray, k: int, pool: ThreadPoolExecutor) -> list[tuple[str, float]]:
        """Approximate cosine top-k, best first (`pool` is not needed: one search is one thread's work)."""
        with self._lock:
            graph = self._graph
            live = 0 if graph is None else graph.get_current_count() - self._dead
            k = min(k, live)
            if graph is None or k <= 0:
                return []
            graph.set_ef(max(self.parameters.ef_search, k))
            try:
                labels, distances = graph.knn_query(query, k, num_threads=1)
            except RuntimeError:
                # hnswlib found fewer than k live nodes (a small graph thinned by deletions): look at all.
                graph.set_ef(graph.get_current_count())
                labels, distances = graph.knn_query(query, k, num_threads=1)
            chunk_ids = self._chunk_ids
            return [
                (chunk_ids[int(label)], 1.0 - float(distance))
                for label, distance in zip(labels[0], distances[0], strict=True)
            ]

    def _new_graph(self, capacity: int) -> hnswlib.Index:
        assert self.dimension is not None
        graph = hnswlib.Index(space="cosine", dim=self.dimension)
        graph.init_index(
            max_elements=max(capacity, 1024),
            M=self.parameters.m,
            ef_construction=self.parameters.ef_construction,
        )
        return graph
