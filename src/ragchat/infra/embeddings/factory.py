"""Picks the embedding implementation and the chunker's token counter from settings.

| EMBEDDING_BACKEND | LOCAL_EMBEDDING_RUNTIME | embedder                                  |
|-------------------|-------------------------|-------------------------------------------|
| local             | onnx (default)          | ONNX Runtime fp32, cached export          |
| local             | onnx-int8               | ONNX Runtime int8, cached quantization    |
| local             | torch                   | sentence-transformers on torch            |
| openai            | (ignored)               | OpenAI-compatible /v1/embeddings endpoint |

Token counting always uses LOCAL_EMBEDDING_MODEL's tokenizer (default all-MiniLM-L6-v2, shipped as a
package). With the openai backend the remote model's tokenizer is unknown, so chunks are measured with the
local one: set LOCAL_EMBEDDING_MODEL to a folder holding the remote model's tokenizer for exact counts.
Word-piece tokenizers of other models give counts within a few percent, far below the 8k-token limits of
hosted embedding models.
"""

from __future__ import annotations

from ragchat.config import Settings
from ragchat.infra.embeddings import Embedder, TokenCounter
from ragchat.infra.embeddings.model_files import ModelTokenizer


def create_embedder(settings: Settings) -> Embedder:
    """The embedder selected by EMBEDDING_BACKEND (and LOCAL_EMBEDDING_RUNTIME); weights load on first use."""
    if settings.embedding_backend == "openai":
        from ragchat.infra.embeddings.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            base_url=settings.embedding_base_url,
            model=settings.embedding_model,
            api_key=settings.embedding_api_key,
            batch_size=settings.embedding_batch_size,
        )
    if settings.local_embedding_runtime == "torch":
        from ragchat.infra.embeddings.local import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(
            settings.local_embedding_model, batch_size=settings.embedding_batch_size
        )
    from ragchat.infra.embeddings.onnx import OnnxEmbedder

    return OnnxEmbedder(
        settings.local_embedding_model,
        cache_dir=settings.models_dir / "onnx",
        precision="int8" if settings.local_embedding_runtime == "onnx-int8" else "fp32",
        batch_size=settings.embedding_batch_size,
    )


def create_token_counter(settings: Settings) -> TokenCounter:
    """LOCAL_EMBEDDING_MODEL's tokenizer (tokenizer.json only: no weights, no torch)."""
    return ModelTokenizer.for_model(settings.local_embedding_model)
