"""The local embedding model on torch, through sentence-transformers (fully offline).

Also a `TokenCounter`: the chunker measures chunks with this model's own tokenizer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragchat.infra.embeddings import InputType, Vectors
from ragchat.infra.embeddings.model_files import ModelFiles, ModelTokenizer, resolve_model_dir


def wait_passively_in_openmp() -> None:
    """Make torch's OpenMP threads sleep between calls instead of spin-waiting (their default), unless
    OMP_WAIT_POLICY is set already. Spinning threads starve the event loop and the other threads of a busy
    host (docs/benchmarks.md, "Embedding server"). Takes effect only if called before torch loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class SentenceTransformerEmbedder:
    """sentence-transformers on CPU; the model loads on first use (or `load()`), not at construction."""

    def __init__(self, model: str, *, batch_size: int = 32) -> None:
        """`model`: LOCAL_EMBEDDING_MODEL (name, folder or cached hub id); resolved now, loaded lazily."""
        self.model_name = model
        self._files = ModelFiles.read(resolve_model_dir(model))
        self._tokenizer = ModelTokenizer(self._files.folder, self._files.max_seq_length)
        self.max_tokens = self._tokenizer.max_tokens
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        dimension = self._loaded().get_embedding_dimension()
        return int(dimension)

    def load(self) -> None:
        """Load the weights now (startup) instead of on the first `embed`."""
        self._loaded()

    def close(self) -> None:
        """Nothing to release: the loaded model is memory that goes with this object."""

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of each model token in `text`, special tokens excluded."""
        return self._tokenizer.token_offsets(text)

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> Vectors:
        """L2-normalised float32 vectors, shape (len(texts), dimension); inputs over the limit are cut."""
        model = self._loaded()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prompt = self._files.prompts.get(input_type)
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
            prompt=prompt,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                wait_passively_in_openmp()
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no "Loading weights" bar

                self._model = SentenceTransformer(
                    str(self._files.folder), device="cpu", local_files_only=True
                )
                self._model.max_seq_length = self._files.max_seq_length
            return self._model
