"""Routes: `GET /health`, liveness only (public); `GET /api/health`, a one-glance summary for signed-in
callers (version, documents stored, which LLM is configured and whether it answered lately)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ragchat import __version__
from ragchat.api.auth import PUBLIC, UserPrincipal
from ragchat.api.deps import ServicesDep

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str


class LlmHealth(BaseModel):
    backend: str
    model: str | None
    reachable: bool | None = Field(
        description="Whether the LLM answered the app's last request to it; null before the first"
    )


class Health(BaseModel):
    status: str
    version: str
    documents: int
    llm: LlmHealth


@router.get("/health", response_model=Liveness, summary="Liveness", dependencies=[Depends(PUBLIC)])
async def liveness() -> Liveness:
    """`{"status": "ok"}` while the app serves requests; nothing else (it needs no credentials)."""
    return Liveness(status="ok")


@router.get("/api/health", response_model=Health, summary="Health at a glance")
async def health(services: ServicesDep, _: UserPrincipal) -> Health:
    settings = services.settings
    documents = await anyio.to_thread.run_sync(services.store.count_documents)
    model = settings.vllm_model if settings.llm_backend == "vllm" else settings.openai_model
    return Health(
        status="ok",
        version=__version__,
        documents=documents,
        llm=LlmHealth(backend=settings.llm_backend, model=model, reachable=services.llm.reachable),
    )
