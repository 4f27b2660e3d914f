"""Route: `GET /api/status`, vLLM's health at a glance (read from its /metrics, two scrapes apart).

Behind vLLM's router, every worker is listed (`workers`) with its own figures, and `vllm` holds the
workers' figures combined; against one vLLM server `workers` is empty, as before.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ragchat.api.auth import UserPrincipal
from ragchat.api.deps import ServicesDep
from ragchat.infra.llm.vllm_metrics import INDICATORS

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


class WorkerFigures(BaseModel):
    url: str
    state: str = Field(
        description="up; down (its /metrics does not answer); unhealthy (the router's health checks fail)"
    )
    up: bool
    router_healthy: bool | None = Field(description="The router's own health flag for this worker")
    circuit: str | None = Field(
        description="The router's circuit breaker: closed, open (skipped until its next probe) or half_open"
    )
    routed_requests: float | None = Field(description="Requests the router sent here since it started")
    error: str | None
    vllm: VllmFigures | None


class Status(BaseModel):
    backend: str
    metrics_url: str | None
    reachable: bool | None = Field(description="null when LLM_BACKEND is not vllm")
    error: str | None
    vllm: VllmFigures | None = Field(description="One server's figures, or the router's workers' combined")
    indicators: list[IndicatorInfo]
    router_metrics_url: str | None = Field(None, description="vLLM's router's own Prometheus endpoint")
    router_error: str | None = Field(None, description="Why the router's own metrics are missing")
    workers: list[WorkerFigures] = Field(
        default_factory=list, description="Every worker behind vLLM's router; empty for one vLLM server"
    )


@router.get("/api/status", response_model=Status, summary="vLLM's health at a glance")
async def vllm_status(
    services: ServicesDep,
    _: UserPrincipal,
    window: float = Query(1.0, ge=0, le=10, description="Seconds between the two scrapes (0: one scrape)"),
) -> Status:
    """Requests running and waiting, KV-cache usage, prefix-cache hit rate, generation throughput and
    preemptions, from vLLM's /metrics (each worker's, behind vLLM's router). vLLM being down is a status
    (`reachable: false`, or a worker's `state: down`), not an error."""
    indicators = [IndicatorInfo(**asdict(indicator)) for indicator in INDICATORS]
    monitor = services.vllm_monitor
    if monitor is None:
        return Status(
            backend=services.settings.llm_backend,
            metrics_url=None,
            reachable=None,
            error="LLM_BACKEND is not vllm: there is no vLLM /metrics to read",
            vllm=None,
            indicators=indicators,
            router_metrics_url=None,
            router_error=None,
        )
    status = await monitor.read(window)
    return Status(
        backend="vllm",
        metrics_url=monitor.metrics_url,
        reachable=status.total is not None,
        error=status.error,
        vllm=VllmFigures.model_validate(status.total.as_dict()) if status.total else None,
        indicators=indicators,
        router_metrics_url=status.router_metrics_url,
        router_error=status.router_error,
        workers=[WorkerFigures.model_validate(w.as_dict()) for w in status.workers],
    )
