"""Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, TEI, Infinity, `ragchat embed-server`),
through the official `openai` client: batched requests, timeouts, a few retries, and one clear
`EmbeddingError` when the server cannot be reached or answers with an error.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragchat.infra.embeddings import EmbeddingError, InputType, Vectors


class OpenAIEmbedder:
    """Embeds through `POST {base_url}/embeddings`; the dimension is learnt from the first response."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 2,
    ) -> None:
        """Settings: EMBEDDING_BASE_URL, EMBEDDING_MODEL, EMBEDDING_API_KEY (or OPENAI_API_KEY)."""
        from openai import OpenAI, Timeout

        self.model_name = model
        self._base_url = base_url
        self._batch_size = batch_size
        self._client = OpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",  # local servers ignore it; the client insists on one
            timeout=Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=max_retries,
        )
        self._dimension: int | None = None
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.embed(["dimension probe"], input_type="query")
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> Vectors:
        """L2-normalised float32 vectors, shape (len(texts), dimension), requested `batch_size` at a time."""
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        parts = [
            self._embed_batch(list(texts[first : first + self._batch_size]))
            for first in range(0, len(texts), self._batch_size)
        ]
        vectors = np.concatenate(parts, axis=0)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _embed_batch(self, batch: list[str]) -> Any:
        import openai

        where = f"the embedding server at {self._base_url} (EMBEDDING_BASE_URL)"
        try:
            response = self._client.embeddings.create(
                model=self.model_name, input=batch, encoding_format="float"
            )
        except openai.APITimeoutError:
            raise EmbeddingError(f"{where} did not answer in time; is it overloaded?") from None
        except openai.APIConnectionError:
            raise EmbeddingError(f"cannot reach {where}; is it running?") from None
        except openai.AuthenticationError:
            raise EmbeddingError(f"{where} refused the key; set EMBEDDING_API_KEY") from None
        except openai.NotFoundError as exc:
            raise EmbeddingError(
                f"{where} does not serve model {self.model_name!r} (EMBEDDING_MODEL) or /embeddings: "
                f"{_message(exc)}"
            ) from None
        except openai.APIStatusError as exc:
            raise EmbeddingError(f"{where} answered {exc.status_code}: {_message(exc)}") from None
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(batch):
            raise EmbeddingError(f"{where} returned {len(rows)} vectors for {len(batch)} inputs")
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        with self._lock:
            if self._dimension is None:
                self._dimension = int(vectors.shape[1])
            elif vectors.shape[1] != self._dimension:
                raise EmbeddingError(
                    f"{where} changed vector size from {self._dimension} to {vectors.shape[1]}"
                )
        return vectors


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))
