"""Route: hybrid (BM25 + vector) search over a collection's passages."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ragchat.api.auth import ReadPrincipal, blocking
from ragchat.api.deps import ServicesDep
from ragchat.api.errors import ApiError
from ragchat.api.routes.documents import collection_or_400
from ragchat.config import Settings
from ragchat.core.access import Permission
from ragchat.core.retrieve import SearchMode
from ragchat.infra.embeddings import EmbeddingError

router = APIRouter(tags=["search"])
_DEFAULT_VECTOR_WEIGHT = Settings.model_fields["hybrid_vector_weight"].default


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000, description="What to look for, in plain words")
    k: int = Field(5, ge=1, le=50, description="How many passages to return")
    collection: str | None = Field(None, description="Collection to search (default: the server's default)")
    mode: SearchMode = Field(
        "hybrid",
        description="hybrid = BM25 and vector scores, each standardised over its candidates (z-scores), "
        f"then weighted: the vector side by RAGCHAT_HYBRID_VECTOR_WEIGHT ({_DEFAULT_VECTOR_WEIGHT} by "
        "default), the keyword side by the rest",
    )


class SearchResult(BaseModel):
    rank: int
    score: float = Field(
        description="hybrid: fused z-score (standard deviations above the candidates' mean, weighted); "
        "vector: cosine similarity; keyword: BM25 score"
    )
    chunk_id: str
    document_id: str
    document: str = Field(description="Source path (or upload file name) of the document")
    heading: str = Field(description="Heading path above the passage, joined by ' > '")
    text: str
    start: int = Field(description="Character offset of the passage in the document's extracted text")
    end: int


class SearchResponse(BaseModel):
    results: list[SearchResult]


@router.post(
    "/api/search",
    response_model=SearchResponse,
    summary="Search passages",
    description="The `k` best passages of a collection for `query`, best first (query embedding included).",
    responses={
        404: {"description": "The collection does not exist (or you may not read it)"},
        503: {"description": "The embedding backend is unavailable"},
    },
)
async def search(body: SearchRequest, services: ServicesDep, principal: ReadPrincipal) -> SearchResponse:
    collection = collection_or_400(body.collection or services.settings.default_collection)
    await blocking(services.access.require, principal, collection, Permission.READ)
    try:
        passages = await services.retriever.search(
            body.query, collection=collection, k=body.k, mode=body.mode
        )
    except EmbeddingError as exc:
        raise ApiError(503, "embedding_unavailable", str(exc)) from None
    return SearchResponse(
        results=[
            SearchResult(
                rank=rank,
                score=passage.score,
                chunk_id=passage.chunk_id,
                document_id=passage.document_id,
                document=passage.document_path,
                heading=passage.heading,
                text=passage.text,
                start=passage.start,
                end=passage.end,
            )
            for rank, passage in enumerate(passages, start=1)
        ]
    )
