"""Embedding models behind one small interface.

`Embedder.embed` is synchronous and CPU- or network-bound: use cases call it from a worker thread
(`anyio.to_thread.run_sync`) so the event loop never blocks. Implementations:
`local` (sentence-transformers or ONNX Runtime, offline) and `openai` (any OpenAI-compatible /v1/embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

InputType = Literal["document", "query"]
Vectors = npt.NDArray[np.float32]


class TokenCounter(Protocol):
    """The embedding model's tokenizer, as the chunker needs it."""

    max_tokens: int

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of each model token in `text`, special tokens excluded."""
        ...


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_name: str
    dimension: int

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> Vectors:
        """Encode `texts` (in batches) into an array of shape (len(texts), dimension)."""
        ...
