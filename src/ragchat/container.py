"""The one place that picks concrete implementations from settings and owns their lifetimes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from sqlalchemy import Engine

from ragchat import __version__
from ragchat.config import Settings
from ragchat.core.access import AccessService
from ragchat.core.chat import ChatService
from ragchat.core.chunking import Chunker
from ragchat.core.ingest import IngestService
from ragchat.core.retrieve import HybridRetriever
from ragchat.infra.db import open_database
from ragchat.infra.embeddings import Embedder, EmbeddingError
from ragchat.infra.embeddings.factory import create_embedder, create_token_counter
from ragchat.infra.identity import IdentityStore
from ragchat.infra.llm import ChatModel
from ragchat.infra.llm.openai_compatible import OpenAICompatibleChatModel
from ragchat.infra.loaders import load_document
from ragchat.infra.store import ChunkStore
from ragchat.infra.store.sqlite import SqliteChunkStore
from ragchat.observability import AppMetrics

logger = logging.getLogger(__name__)


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
    access: AccessService

    async def aclose(self) -> None:
        """Release everything this container opened."""
        self.metrics.close()
        await anyio.to_thread.run_sync(self.access.identity.engine.dispose)
        await self.llm.aclose()
        await self.retriever.aclose()
        await anyio.to_thread.run_sync(self.store.close)
        close_embedder = getattr(self.embedder, "close", None)  # remote embedders hold an HTTP pool
        if callable(close_embedder):
            await anyio.to_thread.run_sync(close_embedder)


def open_store(settings: Settings) -> ChunkStore:
    """The document store under RAGCHAT_DATA_DIR (created on first use). Blocking: call from a thread."""
    return SqliteChunkStore(settings.database_path)


def open_access(settings: Settings, engine: Engine | None = None) -> AccessService:
    """The access rules over the identity tables of the configured database. Blocking."""
    identity = IdentityStore(engine or open_database(settings.resolved_database_url))
    return AccessService(
        identity,
        session_hours=settings.session_hours,
        login_attempts=settings.login_attempts,
        login_attempts_per_address=settings.login_attempts_per_address,
        login_window_s=settings.login_window_s,
    )


def initial_admin_password_file(settings: Settings) -> Path:
    """Where the first start writes the generated admin password (mode 0600)."""
    return settings.data_dir / "initial-admin-password"


def _prepare_access(settings: Settings) -> AccessService:
    """Open the access rules; the default collection exists (admin-managed), and with auth on, the first
    start creates the admin (its password from RAGCHAT_ADMIN_PASSWORD or written to a 0600 file)."""
    access = open_access(settings)
    try:
        access.identity.add_collection(settings.default_collection, owner_id=None, if_missing=True)
        if settings.auth == "on":
            password = settings.admin_password.get_secret_value() if settings.admin_password else None
            written = access.bootstrap_admin(password, initial_admin_password_file(settings))
            if written is not None:
                logger.warning(
                    "first start: created user 'admin'; its one-time password is in %s (readable by this "
                    "account only). Log in at / and delete the file.",
                    written,
                )
    except BaseException:
        access.identity.engine.dispose()
        raise
    return access


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
        access = await anyio.to_thread.run_sync(_prepare_access, settings)
    except BaseException:
        await anyio.to_thread.run_sync(store.close)
        raise
    try:
        embedder, chunker = await anyio.to_thread.run_sync(_load_embedding_model, settings, store)
    except BaseException:
        await anyio.to_thread.run_sync(store.close)
        await anyio.to_thread.run_sync(access.identity.engine.dispose)
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
        access=access,
    )
