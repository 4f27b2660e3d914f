"""Embedding models behind one small interface.

`Embedder.embed` is synchronous and CPU- or network-bound: use cases call it from a worker thread
(`anyio.to_thread.run_sync`) so the event loop never blocks. Implementations:
`local` (sentence-transformers or ONNX Runtime, offline) and `openai` (any OpenAI-compatible /v1/embeddings).
`ragchat.infra.embeddings.factory` picks one from settings.

    EmbeddingError           the backend cannot embed (message says what to fix)
    └── ModelNotAvailable    LOCAL_EMBEDDING_MODEL names no model found on this machine
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

InputType = Literal["document", "query"]
Vectors = npt.NDArray[np.float32]


class EmbeddingError(RuntimeError):
    """The embedding backend failed (unreachable server, bad response...); `str(error)` says what to fix."""


class ModelNotAvailable(EmbeddingError):
    """The configured local model is not on this machine (ragchat never downloads at run time)."""


class TokenCounter(Protocol):
    """The embedding model's tokenizer, as the chunker needs it."""

    max_tokens: int
    """The most tokens one input may hold, special tokens excluded (256 - 2 for all-MiniLM-L6-v2)."""

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of each model token in `text`, special tokens excluded."""
        ...


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def model_name(self) -> str:
        """The model's name as reported to users (and stored next to the vectors)."""
        ...

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> Vectors:
        """Encode `texts` (in batches) into an array of shape (len(texts), dimension)."""
        ...

    def close(self) -> None:
        """Release what the embedder holds open (a remote one's HTTP connections). Blocking, like `embed`."""
        ...
