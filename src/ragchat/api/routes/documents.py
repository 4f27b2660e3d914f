"""Routes: upload, list and delete documents; list collections."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from ragchat.api.auth import ReadPrincipal, WritePrincipal, blocking, client_address
from ragchat.api.deps import ServicesDep
from ragchat.api.errors import ApiError
from ragchat.api.routes.jobs import DocumentOut, JobOut, job_out
from ragchat.api.uploads import read_upload_form
from ragchat.core.access import CollectionNotFound, Permission
from ragchat.core.ingest import InvalidCollectionName, check_collection_name
from ragchat.infra.jobs import NewFile

router = APIRouter(tags=["documents"])

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "With `wait=true`: the job, done", "model": JobOut},
    400: {"description": "Bad request (file name with folders, invalid collection, no files...)"},
    401: {"description": "No valid API key or session"},
    403: {"description": "Not allowed (a read-only key, or read access only)"},
    404: {"description": "Not found"},
    409: {"description": "The collection holds its most documents (RAGCHAT_COLLECTION_MAX_DOCUMENTS)"},
    413: {
        "description": "A file over RAGCHAT_MAX_FILE_MB, or the collection holds its most text "
        "(RAGCHAT_COLLECTION_MAX_TEXT_MB)"
    },
    415: {"description": "A file of a type ragchat does not read (refused from the part's headers)"},
    503: {"description": "The ingestion queue is full (Retry-After says when to try again)"},
}


class DocumentList(BaseModel):
    documents: list[DocumentOut]


_MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One or more .md, .txt, .html, .pdf or .docx files (plain names).",
                        },
                        "collection": {"type": "string", "description": "Collection to add them to."},
                    },
                }
            }
        },
    }
}


def collection_or_400(name: str) -> str:
    """`name` if it is a valid collection name, else a 400 in the error shape."""
    try:
        return check_collection_name(name)
    except InvalidCollectionName as exc:
        raise ApiError(400, "invalid_collection", str(exc)) from None


@router.post(
    "/api/documents",
    status_code=202,
    response_model=JobOut,
    summary="Upload documents",
    description=(
        "Upload one or more files (multipart field `files`) into a collection (form field `collection`, "
        "default: the server's default collection). The files are stored as an ingestion job and the "
        "answer (202, `Location: /api/jobs/{id}`) comes at once; parsing and embedding run in the "
        "background, and `GET /api/jobs/{id}` shows each file's outcome as it settles: unchanged files are "
        "left alone, changed ones replace their earlier version atomically, a file that cannot be read is "
        "`skipped` with a reason. With `wait=true` the answer (200) waits for the job to be done."
    ),
    responses=_ERROR_RESPONSES,
    openapi_extra=_MULTIPART_BODY,
)
async def upload_documents(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: WritePrincipal,
    wait: bool = Query(False, description="Answer once every file is settled (200) instead of at once"),
) -> JobOut:
    settings = services.settings
    await services.jobs.check_room()
    form = await read_upload_form(request, max_file_bytes=settings.max_file_bytes)
    try:
        collection = collection_or_400(form.fields.get("collection") or settings.default_collection)
        address = client_address(request)
        await blocking(services.access.prepare_write, principal, collection, address)
        if not form.files:
            raise ApiError(400, "no_files", "send one or more files in the multipart field 'files'")
        names = [upload.filename for upload in form.files]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ApiError(
                400, "duplicate_filename", f"the same file name was sent twice: {', '.join(duplicates)}"
            )
        await blocking(services.ingest.check_upload_room, collection, names)
        job_id = await services.jobs.submit(
            collection=collection,
            owner_id=principal.user_id,
            owner_name=principal.name,
            address=address,
            files=[NewFile(upload.filename, upload.content) for upload in form.files],
        )
    finally:
        form.close()
    response.headers["Location"] = f"/api/jobs/{job_id}"
    job = await services.jobs.wait(job_id) if wait else await services.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"the job {job_id} was removed before it was done")
    if wait:
        response.status_code = 200
    return await job_out(services, job)


@router.get(
    "/api/documents",
    response_model=DocumentList,
    summary="List documents",
    responses={404: {"description": "The collection named does not exist (or you may not read it)"}},
)
async def list_documents(
    services: ServicesDep,
    principal: ReadPrincipal,
    collection: str | None = Query(None, description="Only this collection (default: all you may read)"),
) -> DocumentList:
    if collection is not None:
        await blocking(services.access.require, principal, collection, Permission.READ)
        records = await anyio.to_thread.run_sync(services.store.list_documents, collection)
    else:
        readable = set(await blocking(services.access.readable_names, principal))
        records = [
            record
            for record in await anyio.to_thread.run_sync(services.store.list_documents, None)
            if record.collection in readable
        ]
    return DocumentList(documents=[DocumentOut.of(record) for record in records])


@router.delete(
    "/api/documents/{document_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a document",
    description="Removes the document and every chunk, vector and keyword-index entry of it.",
    responses={404: {"description": "No document has this id (or you may not read it)"}},
)
async def delete_document(
    document_id: str, request: Request, services: ServicesDep, principal: WritePrincipal
) -> Response:
    missing = ApiError(404, "document_not_found", f"no document has the id {document_id!r}")
    record = await anyio.to_thread.run_sync(services.store.get_document, document_id)
    if record is None:
        raise missing
    try:
        await blocking(services.access.require, principal, record.collection, Permission.WRITE)
    except CollectionNotFound:
        raise missing from None
    if not await anyio.to_thread.run_sync(services.store.delete_document, document_id):
        raise missing
    await blocking(
        services.access.record,
        principal,
        "document_deleted",
        f"{record.collection}/{record.path}",
        {"document_id": document_id},
        client_address(request),
    )
    return Response(status_code=204)
