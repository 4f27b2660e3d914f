"""Routes: ingestion jobs (an upload's progress and each file's outcome), the caller's own or, for an
admin, everyone's."""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ragchat.api.auth import UserPrincipal
from ragchat.api.deps import ServicesDep
from ragchat.api.errors import ApiError
from ragchat.container import Services
from ragchat.core.access import Principal
from ragchat.domain import DocumentRecord
from ragchat.infra.jobs import JobRecord

router = APIRouter(tags=["jobs"])


class DocumentOut(BaseModel):
    """A stored document."""

    id: str
    collection: str
    path: str = Field(description="Source path, or the file name of an upload")
    title: str | None
    chunk_count: int
    char_count: int
    content_hash: str = Field(description="SHA-256 of the file's bytes")
    created_at: str

    @classmethod
    def of(cls, record: DocumentRecord) -> DocumentOut:
        return cls.model_validate(record.as_dict())


class UploadResult(BaseModel):
    """What happened (so far) to one uploaded file."""

    filename: str
    status: Literal["pending", "processing", "added", "replaced", "unchanged", "skipped", "failed"] = Field(
        description="pending/processing: not settled yet; added/replaced/unchanged: stored; skipped: the "
        "file cannot be indexed (reason); failed: the server could not index it now (reason; send it again)"
    )
    document: DocumentOut | None = Field(description="The stored document (null unless stored)")
    chunks: int
    reason: str | None = Field(description="Why the file was skipped or failed (null otherwise)")
    size: int = Field(description="The file's size in bytes")


class JobOut(BaseModel):
    """An upload's ingestion job: its progress and each file's outcome, in upload order."""

    id: str
    collection: str
    owner: str = Field(description="Who uploaded the files")
    status: Literal["queued", "running", "done"]
    created_at: str
    started_at: str | None
    finished_at: str | None
    total_files: int
    settled_files: int = Field(description="Files with their final outcome")
    results: list[UploadResult]


class JobList(BaseModel):
    jobs: list[JobOut]


async def job_out(services: Services, job: JobRecord) -> JobOut:
    """The API view of `job` (stored documents as they are now: null once deleted)."""

    def documents() -> dict[str, DocumentRecord]:
        found = {}
        for file in job.files:
            if file.document_id is not None:
                record = services.store.get_document(file.document_id)
                if record is not None:
                    found[file.document_id] = record
        return found

    stored = await anyio.to_thread.run_sync(documents)
    results = []
    for file in job.files:
        record = stored.get(file.document_id) if file.document_id is not None else None
        results.append(
            UploadResult(
                filename=file.filename,
                status=file.status,
                document=DocumentOut.of(record) if record is not None else None,
                chunks=file.chunks,
                reason=file.reason,
                size=file.size,
            )
        )
    return JobOut(
        id=job.id,
        collection=job.collection,
        owner=job.owner_name,
        status=job.status,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        total_files=len(job.files),
        settled_files=sum(result.status not in ("pending", "processing") for result in results),
        results=results,
    )


def _visible(job: JobRecord, principal: Principal) -> bool:
    return principal.is_admin or (principal.user_id is not None and job.owner_id == principal.user_id)


@router.get(
    "/api/jobs/{job_id}",
    response_model=JobOut,
    summary="An ingestion job",
    description="An upload's progress and each file's outcome (your own jobs; an admin sees every job).",
    responses={404: {"description": "No job has this id (or it is another user's)"}},
)
async def get_job(job_id: str, services: ServicesDep, principal: UserPrincipal) -> JobOut:
    job = await services.jobs.get(job_id)
    if job is None or not _visible(job, principal):
        raise ApiError(404, "job_not_found", f"no job of yours has the id {job_id!r}")
    return await job_out(services, job)


@router.get(
    "/api/jobs",
    response_model=JobList,
    summary="List ingestion jobs",
    description="The newest jobs first: your own; an admin's list has everyone's.",
)
async def list_jobs(
    services: ServicesDep,
    principal: UserPrincipal,
    limit: int = Query(50, ge=1, le=500, description="At most this many jobs"),
) -> JobList:
    def load() -> list[JobRecord]:
        return services.jobs.store.list_jobs(
            owner_id=principal.user_id, everyone=principal.is_admin, limit=limit
        )

    jobs = await anyio.to_thread.run_sync(load)
    return JobList(jobs=[await job_out(services, job) for job in jobs])
