"""Ingestion: files and folders (or uploaded bytes) into stored, embedded chunks.

Idempotent by content: a file whose SHA-256 matches the stored version is left alone; a changed file
replaces its earlier version in one store transaction (readers see the old or the new version, never half),
so a process killed mid-ingest leaves only whole documents, and running the ingest again finishes the rest
without duplicates. A file that cannot be ingested is skipped with a reason and the others proceed.

Pipeline: one worker thread reads, hashes, parses and chunks the next files while the calling thread embeds
chunks in batches that span several small documents (the model is fastest on full batches) and commits each
document in its own transaction. Parsing goes through the injected `DocumentLoader` (in the app and the CLI,
`ragchat.infra.parsing.ParserPool`: worker processes with memory and time limits); uploads are ingested a
few at a time (`max_concurrent_uploads`), so waiting uploads hold no worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import anyio
import anyio.to_thread

from ragchat.core.chunking import embedding_text
from ragchat.domain import ChunkDraft, DocumentRecord, ExtractedDocument, IngestReport
from ragchat.infra.embeddings import Embedder
from ragchat.infra.loaders import LoadError, UnsupportedFile, check_supported
from ragchat.infra.store import ChunkStore
from ragchat.observability import AppMetrics

FileStatus = Literal["added", "replaced", "unchanged", "skipped"]
DocumentLoader = Callable[[str, bytes], ExtractedDocument]
"""`(file name, bytes) -> ExtractedDocument`, raising `LoadError` with the reason to show."""

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PREFETCH_FILES = 8


class InvalidCollectionName(ValueError):
    """A collection name outside `COLLECTION_NAME`."""


def check_collection_name(name: str) -> str:
    """Return `name` if it is a valid collection name, else raise `InvalidCollectionName` saying why."""
    if not COLLECTION_NAME.match(name):
        raise InvalidCollectionName(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class CollectionQuota:
    """How much one collection may hold (uploads only: `ragchat ingest` on the server is not limited)."""

    max_documents: int
    max_text_chars: int


class QuotaExceeded(Exception):
    """An upload would take a collection past its quota; nothing of it was stored."""


class DocumentQuotaExceeded(QuotaExceeded):
    """The collection holds, or would hold, more documents than its quota."""


class TextQuotaExceeded(QuotaExceeded):
    """The collection holds as much text as its quota allows."""


class Splitter(Protocol):
    """Cuts an extracted document into chunks (`ragchat.core.chunking.Chunker`)."""

    def split(self, document: ExtractedDocument) -> list[ChunkDraft]: ...


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file: its status, the stored document (if any) and why it was skipped."""

    path: str
    status: FileStatus
    document: DocumentRecord | None = None
    reason: str | None = None

    @property
    def chunks(self) -> int:
        return self.document.chunk_count if self.document is not None else 0


class IngestProgress(Protocol):
    """Receives progress from `IngestService.ingest_paths` (the CLI draws a progress bar with it)."""

    def start(self, total_files: int) -> None:
        """Called once, after the paths were walked, with the number of files found."""
        ...

    def advance(self, outcome: FileOutcome) -> None:
        """Called once per file, when it is settled."""
        ...


@dataclass(frozen=True, slots=True)
class _PreparedDocument:
    """A parsed and chunked file waiting for its vectors."""

    path: str
    content_hash: str
    title: str | None
    char_count: int
    chunks: list[ChunkDraft]
    replaces_existing: bool


class IngestService:
    """Turns files into stored documents: load, chunk, embed, store; skip what is unchanged or unusable."""

    def __init__(
        self,
        store: ChunkStore,
        embedder: Embedder,
        splitter: Splitter,
        loader: DocumentLoader,
        *,
        max_file_bytes: int,
        batch_chunks: int = 128,
        max_concurrent_uploads: int = 2,
        upload_quota: CollectionQuota | None = None,
        metrics: AppMetrics | None = None,
    ) -> None:
        self._store = store
        self._quota = upload_quota
        self._metrics = metrics
        self._embedder = embedder
        self._splitter = splitter
        self._loader = loader
        self._max_file_bytes = max_file_bytes
        self._batch_chunks = batch_chunks
        self._upload_slots = anyio.CapacityLimiter(max_concurrent_uploads)

    # --- files and folders (CLI) ---------------------------------------------------------------------

    def ingest_paths(
        self, paths: Sequence[Path], *, collection: str, progress: IngestProgress | None = None
    ) -> IngestReport:
        """Ingest files and folders (walked recursively, hidden entries left out) into `collection`."""
        check_collection_name(collection)
        files, missing = discover_files(paths)
        report = IngestReport()

        def settle(outcome: FileOutcome) -> None:
            _record(report, outcome)
            self._count(outcome)
            if progress is not None:
                progress.advance(outcome)

        if progress is not None:
            progress.start(len(files) + len(missing))
        for path in missing:
            settle(FileOutcome(str(path), "skipped", reason="no such file or folder"))

        pending: list[_PreparedDocument] = []
        for item in self._prepare_ahead(files, collection):
            if isinstance(item, FileOutcome):
                settle(item)
                continue
            pending.append(item)
            if sum(len(doc.chunks) for doc in pending) >= self._batch_chunks:
                for outcome in self._embed_and_store(pending, collection):
                    settle(outcome)
                pending = []
        for outcome in self._embed_and_store(pending, collection):
            settle(outcome)
        return report

    def _prepare_ahead(
        self, files: Sequence[Path], collection: str
    ) -> Iterator[FileOutcome | _PreparedDocument]:
        """Prepare files in order on a worker thread, a few files ahead of the caller."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragchat-ingest") as pool:
            queue: deque[Future[FileOutcome | _PreparedDocument]] = deque()
            try:
                for path in files:
                    queue.append(pool.submit(self._prepare_file, path, collection))
                    if len(queue) >= _PREFETCH_FILES:
                        yield queue.popleft().result()
                while queue:
                    yield queue.popleft().result()
            finally:
                for future in queue:
                    future.cancel()

    def _prepare_file(self, path: Path, collection: str) -> FileOutcome | _PreparedDocument:
        key = str(path)
        try:
            check_supported(path.name)
        except UnsupportedFile as exc:
            return FileOutcome(key, "skipped", reason=str(exc))
        try:
            size = path.stat().st_size
            if size > self._max_file_bytes:
                return FileOutcome(key, "skipped", reason=self._too_large(size))
            data = path.read_bytes()
        except OSError as exc:
            return FileOutcome(key, "skipped", reason=f"cannot read the file: {exc.strerror or exc}")
        return self._prepare(key, path.name, data, collection)

    def _prepare(self, key: str, name: str, data: bytes, collection: str) -> FileOutcome | _PreparedDocument:
        """Hash `data`; unless the stored version under `key` matches, parse it (as `name`) and chunk it."""
        content_hash = hashlib.sha256(data).hexdigest()
        existing = self._store.find_document(collection, key)
        if existing is not None and existing.content_hash == content_hash:
            return FileOutcome(key, "unchanged", document=existing)
        try:
            extracted = self._loader(name, data)
        except LoadError as exc:
            return FileOutcome(key, "skipped", reason=str(exc))
        chunks = self._splitter.split(extracted)
        if not chunks:
            return FileOutcome(key, "skipped", reason="no text to index was found in the file")
        return _PreparedDocument(
            path=key,
            content_hash=content_hash,
            title=extracted.title,
            char_count=len(extracted.text),
            chunks=chunks,
            replaces_existing=existing is not None,
        )

    def _embed_and_store(self, documents: Sequence[_PreparedDocument], collection: str) -> list[FileOutcome]:
        """Embed the chunks of `documents` together, then store each document in its own transaction."""
        if not documents:
            return []
        texts = [embedding_text(chunk) for doc in documents for chunk in doc.chunks]
        vectors = self._embedder.embed(texts, input_type="document")
        outcomes: list[FileOutcome] = []
        offset = 0
        for doc in documents:
            record = self._store.replace_document(
                collection=collection,
                path=doc.path,
                content_hash=doc.content_hash,
                title=doc.title,
                char_count=doc.char_count,
                chunks=doc.chunks,
                vectors=vectors[offset : offset + len(doc.chunks)],
            )
            offset += len(doc.chunks)
            outcomes.append(
                FileOutcome(doc.path, "replaced" if doc.replaces_existing else "added", document=record)
            )
        return outcomes

    def _count(self, outcome: FileOutcome) -> None:
        """Ingestion metrics: stored files and their chunks; skipped files count as failures."""
        if self._metrics is not None:
            stored = outcome.status in ("added", "replaced")
            self._metrics.ingested(
                files=int(stored),
                chunks=outcome.chunks if stored else 0,
                failures=int(outcome.status == "skipped"),
            )

    def _too_large(self, size: int) -> str:
        return (
            f"the file is {size / 1048576:.1f} MB, over the {self._max_file_bytes / 1048576:g} MB limit "
            "(raise it with RAGCHAT_MAX_FILE_MB)"
        )

    # --- uploads (HTTP) -------------------------------------------------------------------------------

    async def ingest_upload(self, filename: str, data: bytes, *, collection: str) -> FileOutcome:
        """Ingest one uploaded file stored under its (already sanitised) plain `filename` in `collection`."""
        outcome = await anyio.to_thread.run_sync(
            self.ingest_bytes, filename, data, collection, limiter=self._upload_slots
        )
        self._count(outcome)
        return outcome

    def ingest_bytes(self, filename: str, data: bytes, collection: str) -> FileOutcome:
        """Ingest `data` as the file `filename` (a plain name, no folders) in `collection`."""
        check_collection_name(collection)
        if Path(filename).name != filename or filename in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {filename!r}")
        if len(data) > self._max_file_bytes:
            return FileOutcome(filename, "skipped", reason=self._too_large(len(data)))
        try:
            check_supported(filename)
        except UnsupportedFile as exc:
            return FileOutcome(filename, "skipped", reason=str(exc))
        prepared = self._prepare(filename, filename, data, collection)
        if isinstance(prepared, FileOutcome):
            return prepared
        over = self._over_quota(prepared, collection)
        if over is not None:
            return FileOutcome(filename, "skipped", reason=over)
        return self._embed_and_store([prepared], collection)[0]

    def check_upload_room(self, collection: str, filenames: Sequence[str]) -> None:
        """Raise a `QuotaExceeded` saying why when `collection` is full for an upload of `filenames` (each
        file's text is checked again before it is stored). Blocking."""
        if self._quota is None:
            return
        stored = self._store.list_documents(collection)
        paths = {record.path for record in stored}
        new_documents = len({name for name in filenames if name not in paths})
        if new_documents and len(stored) + new_documents > self._quota.max_documents:
            raise DocumentQuotaExceeded(
                f"collection {collection!r} holds {len(stored)} documents; {new_documents} more would pass "
                f"its limit of {self._quota.max_documents} (RAGCHAT_COLLECTION_MAX_DOCUMENTS). Delete "
                "documents or use another collection; nothing was stored"
            )
        text = sum(record.char_count for record in stored)
        if text >= self._quota.max_text_chars:
            raise TextQuotaExceeded(
                f"collection {collection!r} holds {_mega(text)} characters of text, its limit "
                f"(RAGCHAT_COLLECTION_MAX_TEXT_MB: {_mega(self._quota.max_text_chars)}). Delete documents or "
                "use another collection; nothing was stored"
            )

    def _over_quota(self, document: _PreparedDocument, collection: str) -> str | None:
        """Why storing `document` would take the collection past its quota, or None when it fits."""
        if self._quota is None:
            return None
        stored = [record for record in self._store.list_documents(collection) if record.path != document.path]
        if len(stored) + 1 > self._quota.max_documents:
            return (
                f"collection {collection!r} holds its limit of {self._quota.max_documents} documents "
                "(RAGCHAT_COLLECTION_MAX_DOCUMENTS); delete documents or use another collection"
            )
        text = sum(record.char_count for record in stored) + document.char_count
        if text > self._quota.max_text_chars:
            return (
                f"its {_mega(document.char_count)} characters of text would take collection {collection!r} "
                f"past its limit of {_mega(self._quota.max_text_chars)} (RAGCHAT_COLLECTION_MAX_TEXT_MB); "
                "delete documents or use another collection"
            )
        return None


def _mega(count: int) -> str:
    """`count` characters in millions, for messages."""
    return f"{count / 1_000_000:.2f} million" if count >= 10_000 else f"{count:,}"


def discover_files(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Regular files under `paths` (folders walked recursively in name order, hidden entries left out),
    each once, as absolute paths; and the paths that do not exist."""
    found: dict[Path, None] = {}
    missing: list[Path] = []
    for given in paths:
        path = Path(os.path.abspath(given.expanduser()))
        if path.is_dir():
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
                for name in sorted(names):
                    candidate = Path(folder) / name
                    if not name.startswith(".") and candidate.is_file():
                        found.setdefault(candidate, None)
        elif path.is_file():
            found.setdefault(path, None)
        else:
            missing.append(path)
    return list(found), missing


def _record(report: IngestReport, outcome: FileOutcome) -> None:
    if outcome.status == "added" and outcome.document is not None:
        report.added.append(outcome.document)
    elif outcome.status == "replaced" and outcome.document is not None:
        report.replaced.append(outcome.document)
    elif outcome.status == "unchanged":
        report.unchanged.append(outcome.path)
    else:
        report.skipped.append((outcome.path, outcome.reason or "unknown reason"))
