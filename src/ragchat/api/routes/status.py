"""Route: `GET /api/status`, vLLM's health at a glance (read from its /metrics, two scrapes apart)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ragchat.api.auth import UserPrincipal
from ragchat.api.deps import ServicesDep
from ragchat.infra.llm.vllm_metrics import INDICATORS, VllmMetricsError, metrics_url_for, read_status

router = APIRouter(tags=["operations"])


class IndicatorInfo(BaseModel):
    key: str
    label: str
    metric: str = Field(description="The current vLLM metric (or PromQL) behind the figure")
    guide_name: str | None = Field(description="What the guide calls it, where vLLM renamed or removed it")
    change: str | None = Field(description="renamed or removed (since the guide)")


class VllmFigures(BaseModel):
    requests_running: float | None
    requests_waiting: float | None
    kv_cache_usage: float | None = Field(description="Fraction 0-1 of the KV cache in use")
    prefix_cache_hit_rate: float | None = Field(description="Hits / queries since vLLM started")
    prefix_cache_hit_rate_window: float | None = Field(description="Hits / queries within the window")
    generation_tokens_per_s: float | None = Field(description="Rate of vllm:generation_tokens_total")
    preemptions: float | None
    window_s: float
    models: list[str]


class Status(BaseModel):
    backend: str
    metrics_url: str | None
    reachable: bool | None = Field(description="null when LLM_BACKEND is not vllm")
    error: str | None
    vllm: VllmFigures | None
    indicators: list[IndicatorInfo]


@router.get("/api/status", response_model=Status, summary="vLLM's health at a glance")
async def vllm_status(
    services: ServicesDep,
    _: UserPrincipal,
    window: float = Query(1.0, ge=0, le=10, description="Seconds between the two scrapes (0: one scrape)"),
) -> Status:
    """Requests running and waiting, KV-cache usage, prefix-cache hit rate, generation throughput and
    preemptions, from vLLM's /metrics. vLLM being down is a status (`reachable: false`), not an error."""
    settings = services.settings
    indicators = [IndicatorInfo(**asdict(indicator)) for indicator in INDICATORS]
    if settings.llm_backend != "vllm":
        return Status(
            backend=settings.llm_backend,
            metrics_url=None,
            reachable=None,
            error="LLM_BACKEND is not vllm: there is no vLLM /metrics to read",
            vllm=None,
            indicators=indicators,
        )
    url = metrics_url_for(settings.vllm_base_url)
    try:
        status = await read_status(url, window_s=window, timeout_s=settings.llm_connect_timeout_s)
    except VllmMetricsError as exc:
        return Status(
            backend="vllm", metrics_url=url, reachable=False, error=str(exc), vllm=None, indicators=indicators
        )
    return Status(
        backend="vllm",
        metrics_url=url,
        reachable=True,
        error=None,
        vllm=VllmFigures.model_validate(status.as_dict()),
        indicators=indicators,
    )
