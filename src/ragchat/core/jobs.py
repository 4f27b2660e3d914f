"""Uploads as jobs: stored at once, parsed and embedded in the background, each file's outcome recorded.

`IngestJobs.submit` stores an upload's files as a queued job (rows in the database,
`ragchat.infra.jobs.JobStore`) and returns its id; the queue is bounded (`QueueFull`). `IngestJobs.run`,
started by the app's lifespan, works the queue with a few worker tasks: each claims the oldest queued job,
ingests its files one by one through `IngestService.ingest_upload` and records each file's outcome
(`added`, `replaced`, `unchanged`, `skipped` with the file's own reason, `failed` with the server's) before
the next, so one file's failure never hides the others and progress is visible while the job runs.

Jobs outlive the process: a job left `running` by a process that was killed is claimed again once its
heartbeat is older than the lease (by another process, or this app after a restart), and goes on from its
first unsettled file. Storing a document is idempotent by content, so a file that was stored just before
the kill is found `unchanged`, never stored twice. A process that stops cleanly puts its jobs back in the
queue at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread

from ragchat.core.access import AccessService
from ragchat.core.ingest import FileOutcome, IngestService
from ragchat.infra.embeddings import EmbeddingError
from ragchat.infra.jobs import FileStatus, JobRecord, JobStore, NewFile
from ragchat.infra.store import StoreError

logger = logging.getLogger(__name__)

POLL_S = 2.0
"""How often an idle worker looks for jobs queued by other processes (local uploads wake it at once)."""
QUEUE_RETRY_AFTER_S = 30


class QueueFull(Exception):
    """The ingestion queue holds its maximum of unfinished jobs; `retry_after_s` says when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class JobPolicy:
    """How the queue is worked: worker tasks per process, the queue's bound, the claim's lease."""

    workers: int
    max_unfinished: int
    lease_s: float


class IngestJobs:
    """The ingestion queue of one app process (see the module docstring)."""

    def __init__(
        self, jobs: JobStore, ingest: IngestService, access: AccessService, policy: JobPolicy
    ) -> None:
        self.store = jobs
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._ingest = ingest
        self._access = access
        self._policy = policy
        self._wake: anyio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    # --- submitting and reading -------------------------------------------------------------------

    async def check_room(self) -> None:
        """`QueueFull` when the queue is full now (checked again when the job is stored)."""
        if await anyio.to_thread.run_sync(self.store.unfinished_count) >= self._policy.max_unfinished:
            raise self._full()

    async def submit(
        self,
        *,
        collection: str,
        owner_id: int | None,
        owner_name: str,
        address: str | None,
        files: Sequence[NewFile],
    ) -> str:
        """Store `files` as a queued job in `collection`; its id. `QueueFull` when there is no room."""

        def create() -> str | None:
            return self.store.create(
                collection=collection,
                owner_id=owner_id,
                owner_name=owner_name,
                address=address,
                files=files,
                max_unfinished=self._policy.max_unfinished,
            )

        job_id = await anyio.to_thread.run_sync(create)
        if job_id is None:
            raise self._full()
        if self._wake is not None:
            self._wake.set()
        return job_id

    async def get(self, job_id: str) -> JobRecord | None:
        """The job, or None."""
        return await anyio.to_thread.run_sync(self.store.get, job_id)

    async def wait(self, job_id: str, *, poll_s: float = 0.2) -> JobRecord | None:
        """The job once it is done (whichever process works it); None if it disappeared."""
        while True:
            job = await self.get(job_id)
            if job is None or job.status == "done":
                return job
            await anyio.sleep(poll_s)

    def _full(self) -> QueueFull:
        return QueueFull(
            f"the ingestion queue is full ({self._policy.max_unfinished} uploads are waiting or being "
            "indexed, RAGCHAT_MAX_QUEUED_JOBS); nothing was stored, send the files again in a little while",
            QUEUE_RETRY_AFTER_S,
        )

    # --- working the queue ------------------------------------------------------------------------

    def start(self) -> None:
        """Work the queue in the background (`run` in a task of the running event loop) until `stop`."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self.run(), name="ragchat-ingest-jobs")

    async def stop(self) -> None:
        """Stop working the queue (the file being ingested is finished first); a no-op unless started."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def run(self) -> None:
        """Work the queue until cancelled; then put this process's unfinished jobs back in the queue."""
        self._wake = anyio.Event()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._keep_alive)
                for _ in range(self._policy.workers):
                    tasks.start_soon(self._work)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(self.store.release, self.worker_id)
                except Exception:
                    logger.exception("could not put this process's ingestion jobs back in the queue")

    async def _keep_alive(self) -> None:
        while True:
            await anyio.sleep(self._policy.lease_s / 4)
            try:
                await anyio.to_thread.run_sync(self.store.heartbeat, self.worker_id)
            except Exception:
                logger.exception("ingestion jobs: the heartbeat could not be written")

    async def _work(self) -> None:
        while True:
            try:
                job_id = await anyio.to_thread.run_sync(
                    lambda: self.store.claim(self.worker_id, lease_s=self._policy.lease_s)
                )
                if job_id is not None:
                    await self._process(job_id)
                    continue
            except Exception:
                logger.exception("ingestion jobs: working the queue failed; trying again")
            wake = self._wake
            assert wake is not None
            with anyio.move_on_after(POLL_S):
                await wake.wait()
            if wake.is_set() and self._wake is wake:
                self._wake = anyio.Event()

    async def _process(self, job_id: str) -> None:
        job = await self.get(job_id)
        if job is None:
            return
        while True:
            item = await anyio.to_thread.run_sync(self.store.next_file, job_id, self.worker_id)
            if item is None:
                break
            record, data = item
            status, reason, outcome = await self._ingest_one(job, record.filename, data)
            await anyio.to_thread.run_sync(self._settle, job, record.position, status, reason, outcome)
        await anyio.to_thread.run_sync(self.store.finish, job_id, self.worker_id)

    def _settle(
        self,
        job: JobRecord,
        position: int,
        status: FileStatus,
        reason: str | None,
        outcome: FileOutcome | None,
    ) -> None:
        """Record a file's outcome (and, for a stored document, its audit event). Blocking."""
        document = outcome.document if outcome is not None else None
        self.store.settle_file(
            job.id,
            position,
            status=status,
            reason=reason,
            document_id=document.id if document is not None else None,
            chunks=document.chunk_count if document is not None else 0,
        )
        if document is not None and status in ("added", "replaced"):
            self._access.record(
                None,
                f"document_{status}",
                f"{job.collection}/{document.path}",
                {"document_id": document.id, "chunks": document.chunk_count, "job": job.id},
                job.address,
                actor=job.owner_name,
            )

    async def _ingest_one(
        self, job: JobRecord, filename: str, data: bytes
    ) -> tuple[FileStatus, str | None, FileOutcome | None]:
        """Ingest one file of `job`: (status, reason, outcome); a server-side failure is `failed`."""
        if await anyio.to_thread.run_sync(self._access.identity.collection, job.collection) is None:
            return "skipped", f"collection {job.collection!r} was deleted before the file was indexed", None
        try:
            outcome = await self._ingest.ingest_upload(filename, data, collection=job.collection)
        except EmbeddingError as exc:
            return "failed", f"{exc}; upload the file again once the embedding server is back", None
        except StoreError as exc:
            return "failed", str(exc), None
        except Exception:
            logger.exception("ingestion job %s: %s failed", job.id, filename)
            return "failed", "the server failed on this file (its log has the details); upload it again", None
        return outcome.status, outcome.reason, outcome
