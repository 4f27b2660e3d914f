"""The one place that picks concrete implementations from settings and owns their lifetimes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from sqlalchemy.engine import make_url

from ragchat import __version__
from ragchat.config import Settings
from ragchat.core.chat import ChatService
from ragchat.core.chunking import Chunker
from ragchat.core.ingest import IngestService
from ragchat.core.retrieve import HybridRetriever
from ragchat.infra.db import engine_url
from ragchat.infra.embeddings import Embedder, EmbeddingError
from ragchat.infra.embeddings.factory import create_embedder, create_token_counter
from ragchat.infra.llm import ChatModel
from ragchat.infra.llm.openai_compatible import OpenAICompatibleChatModel
from ragchat.infra.loaders import load_document
from ragchat.infra.store import ChunkStore
from ragchat.infra.store.postgres import HnswParameters, PostgresChunkStore
from ragchat.infra.store.sqlite import SqliteChunkStore
from ragchat.observability import AppMetrics


@dataclass
class Services:
    """Long-lived collaborators shared by the HTTP layer and the CLI."""

    settings: Settings
    store: ChunkStore
    embedder: Embedder
    ingest: IngestService
    retriever: HybridRetriever
    metrics: AppMetrics
    llm: ChatModel
    chat: ChatService

    async def aclose(self) -> None:
        """Release everything this container opened."""
        self.metrics.close()
        await self.llm.aclose()
        await self.retriever.aclose()
        await anyio.to_thread.run_sync(self.store.close)
        close_embedder = getattr(self.embedder, "close", None)  # remote embedders hold an HTTP pool
        if callable(close_embedder):
            await anyio.to_thread.run_sync(close_embedder)


def open_store(settings: Settings) -> ChunkStore:
    """The document store: PostgreSQL when RAGCHAT_DATABASE_URL names one, else the SQLite file (under
    RAGCHAT_DATA_DIR, or the one a sqlite:/// URL names), created on first use. Blocking: call from a
    thread."""
    url = make_url(engine_url(settings.resolved_database_url))
    if url.get_backend_name() == "postgresql":
        hnsw = HnswParameters(
            m=settings.hnsw_m,
            ef_construction=settings.hnsw_ef_construction,
            ef_search=settings.hnsw_ef_search,
        )
        return PostgresChunkStore(settings.resolved_database_url, hnsw=hnsw)
    return SqliteChunkStore(Path(url.database) if url.database else settings.database_path)


def _load_embedding_model(settings: Settings, store: ChunkStore) -> tuple[Embedder, Chunker]:
    """Load the embedding model now (not on the first request) and check it matches the stored vectors."""
    embedder = create_embedder(settings)
    try:
        embedder.embed(["warm-up"], input_type="query")
        store.check_embedding_model(embedder.model_name, embedder.dimension)
    except EmbeddingError:
        if settings.embedding_backend == "local":
            raise
        # A remote embedding server may come up after us; requests report it until then.
    chunker = Chunker(create_token_counter(settings), settings.chunk_tokens, settings.chunk_overlap_tokens)
    return embedder, chunker


def create_metrics(settings: Settings) -> AppMetrics:
    """This instance's Prometheus metrics (own registry), labelled with its version and configuration."""
    local = settings.embedding_backend == "local"
    return AppMetrics(
        version=__version__,
        llm_backend=settings.llm_backend,
        embedding_model=settings.local_embedding_model if local else settings.embedding_model,
    )


async def build_services(settings: Settings) -> Services:
    """Open the store, the embedding model and the LLM client chosen by `settings`."""
    metrics = create_metrics(settings)
    store = await anyio.to_thread.run_sync(open_store, settings)
    try:
        embedder, chunker = await anyio.to_thread.run_sync(_load_embedding_model, settings, store)
    except BaseException:
        await anyio.to_thread.run_sync(store.close)
        raise
    ingest = IngestService(
        store,
        embedder,
        chunker,
        load_document,
        max_file_bytes=settings.max_file_bytes,
        batch_chunks=4 * settings.embedding_batch_size,
        metrics=metrics,
    )
    retriever = HybridRetriever(store, embedder, vector_weight=settings.hybrid_vector_weight, metrics=metrics)
    llm = OpenAICompatibleChatModel.from_settings(settings)  # connects lazily: the LLM may start after us

    async def list_collections() -> list[str]:
        return await anyio.to_thread.run_sync(store.list_collections)

    chat = ChatService(
        retriever=retriever,
        llm=llm,
        list_collections=list_collections,
        default_collection=settings.default_collection,
        retrieval_k=settings.retrieval_k,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        metrics=metrics,
    )
    return Services(
        settings=settings,
        store=store,
        embedder=embedder,
        ingest=ingest,
        retriever=retriever,
        metrics=metrics,
        llm=llm,
        chat=chat,
    )
