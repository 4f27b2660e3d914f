"""Ingestion jobs in the database: uploads waiting to be parsed and embedded, and what became of each file.

Plain rows in and out (SQLAlchemy Core on the engine of `ragchat.infra.db`, SQLite or PostgreSQL); the
use case that runs the jobs is `ragchat.core.jobs`. A job is `queued` until one app process claims it
(`running`, with that process's id and a heartbeat), then `done` once every file is settled. The uploaded
bytes stay in the job's file rows until the file is settled, so a job survives a restart of the app.

Claiming is safe with several app processes on one database: on PostgreSQL the candidate row is locked
with `SELECT ... FOR UPDATE SKIP LOCKED` (a second claimer skips it instead of waiting), and everywhere the
claim is an `UPDATE ... WHERE status = <what was read>` whose row count says whether this process won; on
SQLite the claim's transaction also holds the database's write lock from its start. Queuing takes turns
(SQLite's write lock, a PostgreSQL advisory lock), so the queue's bound holds across processes. A running
job whose heartbeat is older than the lease is claimed again (its process was killed). Every method
blocks: call them from a worker thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Literal

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, insert, or_, select, update

from ragchat.infra.db import write_transaction
from ragchat.infra.db.schema import ingest_job_files, ingest_jobs

JobStatus = Literal["queued", "running", "done"]
FileStatus = Literal["pending", "processing", "added", "replaced", "unchanged", "skipped", "failed"]
SETTLED: frozenset[str] = frozenset({"added", "replaced", "unchanged", "skipped", "failed"})
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class JobFileRecord:
    """One file of a job and its outcome so far (`document_id` once stored)."""

    position: int
    filename: str
    size: int
    status: FileStatus
    reason: str | None
    document_id: str | None
    chunks: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job and its files, in upload order."""

    id: str
    collection: str
    owner_id: int | None
    owner_name: str
    address: str | None
    status: JobStatus
    created_at: str
    started_at: str | None
    finished_at: str | None
    files: tuple[JobFileRecord, ...]


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file to queue: its plain name and an open binary file holding its bytes (read from the start)."""

    filename: str
    content: IO[bytes]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _now() -> datetime:
    return datetime.now(UTC)


class JobStore:
    """Ingestion jobs and their files, as rows (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def unfinished_count(self) -> int:
        """Jobs queued or running, over all users."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(ingest_jobs).where(ingest_jobs.c.status != "done")
                ).scalar_one()
            )

    def create(
        self,
        *,
        collection: str,
        owner_id: int | None,
        owner_name: str,
        address: str | None,
        files: Iterable[NewFile],
        max_unfinished: int,
    ) -> str | None:
        """Queue a job with `files` (their bytes are copied into the database) and return its id; None,
        with nothing stored, when `max_unfinished` jobs are already queued or running."""
        job_id = uuid.uuid4().hex
        with write_transaction(self.engine, serialize="ingest-jobs-create") as conn:
            unfinished = conn.execute(
                select(func.count()).select_from(ingest_jobs).where(ingest_jobs.c.status != "done")
            ).scalar_one()
            if unfinished >= max_unfinished:
                return None
            conn.execute(
                insert(ingest_jobs).values(
                    id=job_id,
                    collection=collection,
                    owner_id=owner_id,
                    owner_name=owner_name,
                    address=address,
                    status="queued",
                    created_at=_iso(_now()),
                )
            )
            for position, new in enumerate(files):
                new.content.seek(0)
                data = bytearray()
                while block := new.content.read(_READ_CHUNK):
                    data.extend(block)
                conn.execute(
                    insert(ingest_job_files).values(
                        job_id=job_id,
                        position=position,
                        filename=new.filename,
                        size=len(data),
                        data=bytes(data),
                        status="pending",
                        chunks=0,
                    )
                )
        return job_id

    def claim(self, worker_id: str, *, lease_s: float) -> str | None:
        """Claim the oldest queued job (or a running one whose heartbeat is older than `lease_s`) for
        `worker_id`; its id, or None when there is none to take."""
        now = _now()
        stale = _iso(now - timedelta(seconds=lease_s))
        claimable = or_(
            ingest_jobs.c.status == "queued",
            and_(ingest_jobs.c.status == "running", ingest_jobs.c.heartbeat_at < stale),
        )
        with write_transaction(self.engine) as conn:
            candidate = conn.execute(
                select(ingest_jobs.c.id, ingest_jobs.c.status, ingest_jobs.c.claimed_by)
                .where(claimable)
                .order_by(ingest_jobs.c.created_at, ingest_jobs.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if candidate is None:
                return None
            claimed = conn.execute(
                update(ingest_jobs)
                .where(
                    ingest_jobs.c.id == candidate.id,
                    ingest_jobs.c.status == candidate.status,
                    claimable,
                )
                .values(
                    status="running",
                    claimed_by=worker_id,
                    heartbeat_at=_iso(now),
                    started_at=func.coalesce(ingest_jobs.c.started_at, _iso(now)),
                )
            )
            return str(candidate.id) if claimed.rowcount == 1 else None

    def heartbeat(self, worker_id: str) -> None:
        """Tell the other processes that `worker_id` is still working on the jobs it claimed."""
        with self.engine.begin() as conn:
            conn.execute(
                update(ingest_jobs)
                .where(ingest_jobs.c.claimed_by == worker_id, ingest_jobs.c.status == "running")
                .values(heartbeat_at=_iso(_now()))
            )

    def release(self, worker_id: str) -> None:
        """Put the running jobs of `worker_id` back in the queue (the process is stopping)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(ingest_jobs)
                .where(ingest_jobs.c.claimed_by == worker_id, ingest_jobs.c.status == "running")
                .values(status="queued", claimed_by=None, heartbeat_at=None)
            )

    def next_file(self, job_id: str, worker_id: str) -> tuple[JobFileRecord, bytes] | None:
        """The job's first unsettled file with its bytes, marked `processing`; None when every file is
        settled or the job is no longer claimed by `worker_id` (another process took it over)."""
        with write_transaction(self.engine) as conn:
            if not self._holds(conn, job_id, worker_id):
                return None
            row = conn.execute(
                select(ingest_job_files)
                .where(
                    ingest_job_files.c.job_id == job_id,
                    ingest_job_files.c.status.in_(("pending", "processing")),
                )
                .order_by(ingest_job_files.c.position)
                .limit(1)
            ).first()
            if row is None:
                return None
            conn.execute(
                update(ingest_job_files)
                .where(ingest_job_files.c.job_id == job_id, ingest_job_files.c.position == row.position)
                .values(status="processing")
            )
        record = JobFileRecord(row.position, row.filename, row.size, "processing", None, None, 0)
        return record, bytes(row.data or b"")

    def settle_file(
        self,
        job_id: str,
        position: int,
        *,
        status: FileStatus,
        reason: str | None,
        document_id: str | None,
        chunks: int,
    ) -> None:
        """Record a file's outcome and drop its bytes."""
        with self.engine.begin() as conn:
            conn.execute(
                update(ingest_job_files)
                .where(ingest_job_files.c.job_id == job_id, ingest_job_files.c.position == position)
                .values(status=status, reason=reason, document_id=document_id, chunks=chunks, data=None)
            )

    def finish(self, job_id: str, worker_id: str) -> bool:
        """Mark the job done if `worker_id` still holds it and every file is settled."""
        with write_transaction(self.engine) as conn:
            if not self._holds(conn, job_id, worker_id):
                return False
            open_files = conn.execute(
                select(func.count())
                .select_from(ingest_job_files)
                .where(ingest_job_files.c.job_id == job_id, ingest_job_files.c.status.not_in(SETTLED))
            ).scalar_one()
            if open_files:
                return False
            conn.execute(
                update(ingest_jobs)
                .where(ingest_jobs.c.id == job_id)
                .values(status="done", finished_at=_iso(_now()), claimed_by=None, heartbeat_at=None)
            )
            return True

    def get(self, job_id: str) -> JobRecord | None:
        """The job with its files, or None."""
        jobs = self._load(ingest_jobs.c.id == job_id, limit=1)
        return jobs[0] if jobs else None

    def list_jobs(self, *, owner_id: int | None, everyone: bool, limit: int) -> list[JobRecord]:
        """The newest jobs first: everyone's, or those of `owner_id` (None: the implicit admins')."""
        if everyone:
            return self._load(None, limit=limit)
        owner = ingest_jobs.c.owner_id
        return self._load(owner.is_(None) if owner_id is None else owner == owner_id, limit=limit)

    @staticmethod
    def _holds(conn: Connection, job_id: str, worker_id: str) -> bool:
        held = conn.execute(
            select(ingest_jobs.c.id).where(
                ingest_jobs.c.id == job_id,
                ingest_jobs.c.status == "running",
                ingest_jobs.c.claimed_by == worker_id,
            )
        ).first()
        return held is not None

    def _load(self, condition: ColumnElement[bool] | None, *, limit: int) -> list[JobRecord]:
        query = select(*[c for c in ingest_jobs.c if c.name not in ("claimed_by", "heartbeat_at")])
        if condition is not None:
            query = query.where(condition)
        query = query.order_by(ingest_jobs.c.created_at.desc(), ingest_jobs.c.id).limit(limit)
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
            ids = [row.id for row in rows]
            files: dict[str, list[JobFileRecord]] = {job_id: [] for job_id in ids}
            if ids:
                for row in conn.execute(
                    select(*[c for c in ingest_job_files.c if c.name != "data"])
                    .where(ingest_job_files.c.job_id.in_(ids))
                    .order_by(ingest_job_files.c.job_id, ingest_job_files.c.position)
                ):
                    files[row.job_id].append(
                        JobFileRecord(
                            row.position,
                            row.filename,
                            row.size,
                            row.status,
                            row.reason,
                            row.document_id,
                            row.chunks,
                        )
                    )
        return [
            JobRecord(
                id=row.id,
                collection=row.collection,
                owner_id=row.owner_id,
                owner_name=row.owner_name,
                address=row.address,
                status=row.status,
                created_at=row.created_at,
                started_at=row.started_at,
                finished_at=row.finished_at,
                files=tuple(files[row.id]),
            )
            for row in rows
        ]
