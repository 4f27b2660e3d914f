"""Route: liveness and a one-glance summary (version, documents stored, which LLM is configured)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter
from pydantic import BaseModel, Field

from ragchat import __version__
from ragchat.api.deps import ServicesDep

router = APIRouter(tags=["health"])


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


@router.get("/health", response_model=Health, summary="Health check")
async def health(services: ServicesDep) -> Health:
    settings = services.settings
    documents = await anyio.to_thread.run_sync(services.store.count_documents)
    model = settings.vllm_model if settings.llm_backend == "vllm" else settings.openai_model
    return Health(
        status="ok",
        version=__version__,
        documents=documents,
        llm=LlmHealth(backend=settings.llm_backend, model=model, reachable=services.llm.reachable),
    )
