"""vLLM's health at a glance, read from its Prometheus `/metrics`.

Current vLLM (V1 engine) renamed or dropped some metrics the guide names; both are listed in `INDICATORS`:
`vllm:gpu_cache_usage_perc` is now `vllm:kv_cache_usage_perc` (a fraction 0-1, despite the name), and
`vllm:avg_generation_throughput_toks_per_s` was removed: throughput is the rate of
`vllm:generation_tokens_total` between two scrapes. The reader falls back to the old names for old servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


class VllmMetricsError(RuntimeError):
    """vLLM's /metrics could not be read; the message says where and why."""


@dataclass(frozen=True)
class Indicator:
    """One figure of the status: its key, what it means, the metric behind it and the guide's old name."""

    key: str
    label: str
    metric: str
    guide_name: str | None = None
    change: str | None = None  # "renamed" or "removed" since the guide


INDICATORS: tuple[Indicator, ...] = (
    Indicator("requests_running", "requests running", "vllm:num_requests_running"),
    Indicator("requests_waiting", "requests waiting", "vllm:num_requests_waiting"),
    Indicator(
        "kv_cache_usage",
        "KV-cache usage",
        "vllm:kv_cache_usage_perc",
        guide_name="vllm:gpu_cache_usage_perc",
        change="renamed",
    ),
    Indicator(
        "prefix_cache_hit_rate",
        "prefix-cache hit rate",
        "vllm:prefix_cache_hits_total ÷ vllm:prefix_cache_queries_total",
    ),
    Indicator(
        "prefix_cache_hit_rate_window",
        "prefix-cache hit rate, window",
        "rate(vllm:prefix_cache_hits_total) ÷ rate(vllm:prefix_cache_queries_total)",
    ),
    Indicator(
        "generation_tokens_per_s",
        "generation tokens/s",
        "rate(vllm:generation_tokens_total)",
        guide_name="vllm:avg_generation_throughput_toks_per_s",
        change="removed",
    ),
    Indicator("preemptions", "preemptions", "vllm:num_preemptions_total"),
)

# Current name first, then the names older vLLM releases used (prometheus_client drops the `_total`).
_SOURCES: dict[str, tuple[str, ...]] = {
    "requests_running": ("vllm:num_requests_running",),
    "requests_waiting": ("vllm:num_requests_waiting",),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    "prefix_cache_queries": ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"),
    "prefix_cache_hits": ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"),
    "generation_tokens": ("vllm:generation_tokens",),
    "prompt_tokens": ("vllm:prompt_tokens",),
    "preemptions": ("vllm:num_preemptions",),
}


@dataclass(frozen=True)
class VllmSample:
    """One scrape of /metrics, summed over engines; `None` where the server exports no such metric."""

    taken_at: float
    values: dict[str, float | None]
    models: tuple[str, ...]

    def get(self, key: str) -> float | None:
        return self.values.get(key)


@dataclass(frozen=True)
class VllmStatus:
    """The guide's key metrics under their current names (see `INDICATORS`)."""

    requests_running: float | None
    requests_waiting: float | None
    kv_cache_usage: float | None
    prefix_cache_hit_rate: float | None
    prefix_cache_hit_rate_window: float | None
    generation_tokens_per_s: float | None
    preemptions: float | None
    window_s: float
    models: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        data = asdict(self)
        data["models"] = list(self.models)
        return data


def parse_metrics(text: str, *, taken_at: float | None = None) -> VllmSample:
    """Parse Prometheus text from vLLM into a `VllmSample` (values summed over label sets)."""
    totals: dict[str, float] = {}
    models: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            name = sample.name.removesuffix("_total")
            totals[name] = totals.get(name, 0.0) + float(sample.value)
            if family.name.startswith("vllm:") and "model_name" in sample.labels:
                models.add(sample.labels["model_name"])
    values = {key: _first_present(totals, names) for key, names in _SOURCES.items()}
    return VllmSample(
        taken_at=time.monotonic() if taken_at is None else taken_at,
        values=values,
        models=tuple(sorted(models)),
    )


def summarize(first: VllmSample, second: VllmSample | None = None) -> VllmStatus:
    """Status from one scrape, or two (for throughput and the window's prefix-cache hit rate)."""
    last = second or first
    window = (second.taken_at - first.taken_at) if second is not None else 0.0
    throughput = None
    window_hit_rate = None
    if second is not None and window > 0:
        throughput = _rate(first, second, "generation_tokens", window)
        queries = _delta(first, second, "prefix_cache_queries")
        hits = _delta(first, second, "prefix_cache_hits")
        if queries and hits is not None:
            window_hit_rate = hits / queries
    queries_total = last.get("prefix_cache_queries")
    hits_total = last.get("prefix_cache_hits")
    return VllmStatus(
        requests_running=last.get("requests_running"),
        requests_waiting=last.get("requests_waiting"),
        kv_cache_usage=last.get("kv_cache_usage"),
        prefix_cache_hit_rate=(hits_total / queries_total)
        if queries_total and hits_total is not None
        else None,
        prefix_cache_hit_rate_window=window_hit_rate,
        generation_tokens_per_s=throughput,
        preemptions=last.get("preemptions"),
        window_s=round(window, 3),
        models=last.models,
    )


async def scrape(client: httpx.AsyncClient, metrics_url: str) -> VllmSample:
    """GET `metrics_url` and parse it; `VllmMetricsError` when unreachable or not vLLM's metrics."""
    try:
        response = await client.get(metrics_url)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise VllmMetricsError(f"{metrics_url} answered {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise VllmMetricsError(
            f"cannot reach {metrics_url}: {type(exc).__name__}; is vLLM running?"
        ) from None
    sample = parse_metrics(response.text)
    if sample.get("requests_running") is None and sample.get("generation_tokens") is None:
        raise VllmMetricsError(f"{metrics_url} holds no vllm:* metrics; is VLLM_BASE_URL a vLLM server?")
    return sample


async def read_status(metrics_url: str, *, window_s: float = 1.0, timeout_s: float = 5.0) -> VllmStatus:
    """Scrape twice, `window_s` apart (once when 0), and summarize."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        first = await scrape(client, metrics_url)
        if window_s <= 0:
            return summarize(first)
        await asyncio.sleep(window_s)
        return summarize(first, await scrape(client, metrics_url))


def metrics_url_for(base_url: str) -> str:
    """vLLM serves /metrics at its root: `http://h:8000/v1` → `http://h:8000/metrics`."""
    root = base_url.rstrip("/").removesuffix("/v1")
    return f"{root}/metrics"


def _first_present(totals: dict[str, float], names: Iterable[str]) -> float | None:
    for name in names:
        if name in totals:
            return totals[name]
    return None


def _delta(first: VllmSample, second: VllmSample, key: str) -> float | None:
    before, after = first.get(key), second.get(key)
    if before is None or after is None:
        return None
    return max(after - before, 0.0)  # a restarted server resets its counters


def _rate(first: VllmSample, second: VllmSample, key: str, window: float) -> float | None:
    delta = _delta(first, second, key)
    return None if delta is None else delta / window
