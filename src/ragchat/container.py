"""The one place that picks concrete implementations from settings and owns their lifetimes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anyio.to_thread
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ragchat import __version__
from ragchat.config import Settings
from ragchat.core.access import AccessService
from ragchat.core.chat import ChatLimits, ChatService
from ragchat.core.chunking import Chunker
from ragchat.core.conversations import ConversationService
from ragchat.core.ingest import CollectionQuota, IngestService
from ragchat.core.jobs import IngestJobs, JobPolicy
from ragchat.core.rates import RequestRates
from ragchat.core.retrieve import HybridRetriever
from ragchat.core.sso import SingleSignOn
from ragchat.domain import Passage
from ragchat.infra.conversations import ConversationStore
from ragchat.infra.db import engine_url, open_database
from ragchat.infra.embeddings import Embedder, EmbeddingError
from ragchat.infra.embeddings.factory import create_embedder, create_token_counter
from ragchat.infra.identity import IdentityStore
from ragchat.infra.jobs import JobStore
from ragchat.infra.llm import ChatModel
from ragchat.infra.llm.openai_compatible import OpenAICompatibleChatModel
from ragchat.infra.llm.vllm_metrics import VllmMonitor
from ragchat.infra.oidc import OidcClient, OidcConfig
from ragchat.infra.parsing import ParserPool
from ragchat.infra.pending_logins import PendingLoginStore
from ragchat.infra.store import ChunkStore
from ragchat.infra.store.postgres import PostgresChunkStore
from ragchat.infra.store.sqlite import SqliteChunkStore
from ragchat.infra.store.vector_index import HnswParameters
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
    parsers: ParserPool
    access: AccessService
    sso: SingleSignOn
    conversations: ConversationService
    jobs: IngestJobs
    """The ingestion queue (uploads as jobs); the app's lifespan runs its workers."""
    rates: RequestRates
    """Request rates per API key or user (RAGCHAT_REQUESTS_PER_MINUTE)."""
    vllm_monitor: VllmMonitor | None = None
    """Reads vLLM's /metrics (each worker's, behind vLLM's router) for /api/status; None unless vllm."""

    async def _close_vllm_monitor(self) -> None:
        if self.vllm_monitor is not None:
            await self.vllm_monitor.aclose()

    async def aclose(self) -> None:
        """Release everything this container opened. Every part is closed even when one fails; then the
        failure is raised (an `ExceptionGroup` of them when several failed)."""

        async def close_metrics() -> None:
            self.metrics.close()

        closes: list[Callable[[], Awaitable[None]]] = [
            self.jobs.stop,
            close_metrics,
            self._close_vllm_monitor,
            self.sso.aclose,
            functools.partial(anyio.to_thread.run_sync, self.access.identity.engine.dispose),
            functools.partial(anyio.to_thread.run_sync, self.parsers.close),
            self.llm.aclose,
            self.retriever.aclose,
            functools.partial(anyio.to_thread.run_sync, self.store.close),
            functools.partial(anyio.to_thread.run_sync, self.embedder.close),
        ]
        failures: list[Exception] = []
        for close in closes:
            try:
                await close()
            except Exception as exc:
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise ExceptionGroup("closing ragchat's services failed", failures)


def open_store(settings: Settings) -> ChunkStore:
    """The document store: PostgreSQL when RAGCHAT_DATABASE_URL names one, else the SQLite file (under
    RAGCHAT_DATA_DIR, or the one a sqlite:/// URL names), created on first use. Blocking: call from a
    thread."""
    url = make_url(engine_url(settings.resolved_database_url))
    hnsw = HnswParameters(
        m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction, ef_search=settings.hnsw_ef_search
    )
    if url.get_backend_name() == "postgresql":
        return PostgresChunkStore(settings.resolved_database_url, hnsw=hnsw)
    return SqliteChunkStore(
        Path(url.database) if url.database else settings.database_path,
        vector_index=settings.vector_index,
        hnsw=replace(hnsw, ef_search=settings.vector_index_ef_search),
    )


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


def open_conversations(settings: Settings, access: AccessService) -> ConversationService:
    """Saved conversations in the same database as the identity tables."""
    return ConversationService(
        ConversationStore(access.identity.engine),
        access,
        retention_days=settings.conversation_retention_days,
    )


def open_sso(settings: Settings, access: AccessService) -> SingleSignOn:
    """Single sign-on over the same database (the OpenID client only when RAGCHAT_OIDC_ISSUER is set)."""
    oidc = None
    if settings.oidc_issuer is not None and settings.oidc_client_id is not None:
        secret = settings.oidc_client_secret
        oidc = OidcClient(
            OidcConfig(
                issuer=settings.oidc_issuer,
                client_id=settings.oidc_client_id,
                client_secret=secret.get_secret_value() if secret else None,
                scopes=settings.oidc_scopes,
                username_claim=settings.oidc_username_claim,
                groups_claim=settings.oidc_groups_claim,
            )
        )
    return SingleSignOn(
        access,
        oidc=oidc,
        pending=PendingLoginStore(access.identity.engine),
        auto_create_users=settings.oidc_auto_create_users,
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
            embedder.close()
            raise
        # A remote embedding server may come up after us; requests report it until then.
    except BaseException:
        embedder.close()
        raise
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
    parsers = ParserPool.from_settings(settings)  # starts its processes on first use
    ingest = IngestService(
        store,
        embedder,
        chunker,
        parsers.parse,
        max_file_bytes=settings.max_file_bytes,
        batch_chunks=4 * settings.embedding_batch_size,
        max_concurrent_uploads=settings.parse_workers,
        upload_quota=CollectionQuota(
            max_documents=settings.collection_max_documents,
            max_text_chars=int(settings.collection_max_text_mb * 1_000_000),
        ),
        metrics=metrics,
    )
    retriever = HybridRetriever(store, embedder, vector_weight=settings.hybrid_vector_weight, metrics=metrics)
    llm = OpenAICompatibleChatModel.from_settings(settings)  # connects lazily: the LLM may start after us

    async def list_collections() -> list[str]:
        return await anyio.to_thread.run_sync(store.list_collections)

    async def passages_by_id(chunk_ids: Sequence[str]) -> list[Passage]:
        return await anyio.to_thread.run_sync(store.get_passages, chunk_ids)

    chat = ChatService(
        retriever=retriever,
        llm=llm,
        list_collections=list_collections,
        passages_by_id=passages_by_id,
        default_collection=settings.default_collection,
        retrieval_k=settings.retrieval_k,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        limits=ChatLimits(
            max_question_chars=settings.max_question_chars,
            max_history_messages=settings.max_history_messages,
            max_history_chars=settings.max_history_chars,
        ),
        metrics=metrics,
    )
    conversations = open_conversations(settings, access)
    await anyio.to_thread.run_sync(conversations.remove_expired)
    return Services(
        settings=settings,
        store=store,
        embedder=embedder,
        ingest=ingest,
        retriever=retriever,
        metrics=metrics,
        llm=llm,
        chat=chat,
        parsers=parsers,
        access=access,
        sso=open_sso(settings, access),
        conversations=conversations,
        jobs=IngestJobs(
            JobStore(access.identity.engine),
            ingest,
            access,
            JobPolicy(
                workers=settings.parse_workers,
                max_unfinished=settings.max_queued_jobs,
                lease_s=settings.job_lease_s,
            ),
        ),
        rates=RequestRates(settings.requests_per_minute),
        vllm_monitor=create_vllm_monitor(settings) if settings.llm_backend == "vllm" else None,
    )


def create_vllm_monitor(settings: Settings) -> VllmMonitor:
    """The reader of vLLM's metrics at VLLM_BASE_URL (one server, or vLLM's router and its workers)."""
    return VllmMonitor(
        settings.vllm_base_url,
        router_metrics_url=settings.vllm_router_metrics_url,
        timeout_s=settings.llm_connect_timeout_s,
    )
