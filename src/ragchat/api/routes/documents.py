"""Routes: upload, list and delete documents; list collections."""

from __future__ import annotations

from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from ragchat.api.auth import ReadPrincipal, WritePrincipal, blocking, client_address
from ragchat.api.deps import ServicesDep
from ragchat.api.errors import ApiError
from ragchat.api.uploads import read_upload_form
from ragchat.core.access import CollectionNotFound, Permission
from ragchat.core.ingest import InvalidCollectionName, check_collection_name
from ragchat.domain import DocumentRecord
from ragchat.infra.embeddings import EmbeddingError

router = APIRouter(tags=["documents"])

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request (file name with folders, invalid collection, no files...)"},
    401: {"description": "No valid API key or session"},
    403: {"description": "Not allowed (a read-only key, or read access only)"},
    404: {"description": "Not found"},
    413: {"description": "A file is over the size limit (RAGCHAT_MAX_FILE_MB)"},
    503: {"description": "The embedding backend is unavailable"},
}


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
    """What happened to one uploaded file."""

    filename: str
    status: Literal["added", "replaced", "unchanged", "skipped"]
    document: DocumentOut | None
    chunks: int
    reason: str | None = Field(description="Why the file was skipped (null otherwise)")


class UploadResponse(BaseModel):
    results: list[UploadResult]


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
    response_model=UploadResponse,
    summary="Upload documents",
    description=(
        "Upload one or more files (multipart field `files`) into a collection (form field `collection`, "
        "default: the server's default collection). Unchanged files are left alone, changed ones replace "
        "their earlier version atomically; a file that cannot be read is reported as `skipped` with a reason."
    ),
    responses=_ERROR_RESPONSES,
    openapi_extra=_MULTIPART_BODY,
)
async def upload_documents(
    request: Request, services: ServicesDep, principal: WritePrincipal
) -> UploadResponse:
    settings = services.settings
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
        results: list[UploadResult] = []
        for upload in form.files:
            data = await anyio.to_thread.run_sync(upload.read_all)
            try:
                outcome = await services.ingest.ingest_upload(upload.filename, data, collection=collection)
            except EmbeddingError as exc:
                stored = ", ".join(result.filename for result in results) or "none"
                raise ApiError(
                    503, "embedding_unavailable", f"{exc} (files stored before the failure: {stored})"
                ) from None
            record = outcome.document
            if record is not None and outcome.status in ("added", "replaced"):
                await blocking(
                    services.access.record,
                    principal,
                    f"document_{outcome.status}",
                    f"{collection}/{upload.filename}",
                    {"document_id": record.id, "chunks": record.chunk_count},
                    address,
                )
            results.append(
                UploadResult(
                    filename=upload.filename,
                    status=outcome.status,
                    document=None if outcome.document is None else DocumentOut.of(outcome.document),
                    chunks=outcome.chunks,
                    reason=outcome.reason,
                )
            )
        return UploadResponse(results=results)
    finally:
        form.close()


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
