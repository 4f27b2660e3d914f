"""vLLM's health at a glance, read from its Prometheus `/metrics`.

Current vLLM (V1 engine) renamed or dropped some metrics the guide names; both are listed in `INDICATORS`:
`vllm:gpu_cache_usage_perc` is now `vllm:kv_cache_usage_perc` (a fraction 0-1, despite the name), and
`vllm:avg_generation_throughput_toks_per_s` was removed: throughput is the rate of
`vllm:generation_tokens_total` between two scrapes. The reader falls back to the old names for old servers.

Behind vLLM's router (`vllm-router`, scripts/start_router.sh) VLLM_BASE_URL is the router, whose own
`/metrics` is merely one worker's, proxied. `VllmMonitor` recognises the router by its `GET /workers`
listing, then scrapes every worker's `/metrics` itself and reads the router's Prometheus port
(`vllm_router_*`: circuit breaker and routed requests per worker). The router's `is_healthy` flag was seen
to stay true for a killed worker (vllm-router 0.1.17), so a worker whose /metrics does not answer is down
whatever the router says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
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


def combine(samples: Sequence[VllmSample]) -> VllmSample:
    """Several workers' scrapes as one server: counters and queues summed, KV-cache usage averaged."""
    values: dict[str, float | None] = {}
    for key in _SOURCES:
        present = [v for s in samples if (v := s.get(key)) is not None]
        if not present:
            values[key] = None
        elif key == "kv_cache_usage":
            values[key] = sum(present) / len(present)
        else:
            values[key] = sum(present)
    return VllmSample(
        taken_at=max((s.taken_at for s in samples), default=time.monotonic()),
        values=values,
        models=tuple(sorted({m for s in samples for m in s.models})),
    )


@dataclass(frozen=True)
class RouterWorker:
    """One worker as vLLM's router lists it (`GET /workers`) and counts it (its Prometheus metrics)."""

    url: str
    healthy: bool | None
    """The router's own health flag (its periodic health checks)."""
    circuit: str | None = None
    """The router's circuit breaker for this worker: closed (used), open (skipped), half_open (probing)."""
    routed_requests: float | None = None
    """Requests the router has sent to this worker since it started (vllm_router_processed_requests)."""


@dataclass(frozen=True)
class WorkerStatus:
    """One worker behind the router: `state` is up, down (its /metrics does not answer) or unhealthy (the
    router's health checks fail). `router.circuit` open: the router skips it until its next probe (the
    router updates that gauge only when it routes a request, so it may lag)."""

    url: str
    state: str
    router: RouterWorker
    error: str | None
    vllm: VllmStatus | None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "url": self.url,
            "state": self.state,
            "up": self.state == "up",
            "router_healthy": self.router.healthy,
            "circuit": self.router.circuit,
            "routed_requests": self.router.routed_requests,
            "error": self.error,
            "vllm": self.vllm.as_dict() if self.vllm else None,
        }


@dataclass(frozen=True)
class ClusterStatus:
    """VLLM_BASE_URL's status: one vLLM server (`workers` empty), or vLLM's router and its workers.

    `total` is the one server's figures, or the workers' that answered combined (see `combine`); `None`
    with `error` when nothing answered. `router_error` says why the router's own metrics are missing.
    """

    routed: bool
    total: VllmStatus | None
    error: str | None
    workers: tuple[WorkerStatus, ...] = ()
    router_metrics_url: str | None = None
    router_error: str | None = None


_CIRCUIT_STATES = {0: "closed", 1: "open", 2: "half_open"}


def parse_router_metrics(text: str) -> dict[str, dict[str, float]]:
    """The router's per-worker series (`vllm_router_*{worker=...}`), by worker URL then series name."""
    per_worker: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            worker = sample.labels.get("worker")
            if worker and sample.name.startswith("vllm_router_") and not sample.name.endswith("_created"):
                name = sample.name.removeprefix("vllm_router_").removesuffix("_total")
                series = per_worker.setdefault(worker.rstrip("/"), {})
                series[name] = series.get(name, 0.0) + float(sample.value)
    return per_worker


class VllmMonitor:
    """Reads the status of the server at VLLM_BASE_URL, or of every worker behind vLLM's router there.

    Holds one HTTP client for its lifetime (the app's lifespan owns it; `aclose` releases it).
    """

    def __init__(
        self, base_url: str, *, router_metrics_url: str | None = None, timeout_s: float = 5.0
    ) -> None:
        self.root_url = base_url.rstrip("/").removesuffix("/v1")
        self.metrics_url = metrics_url_for(base_url)
        self.router_metrics_url = router_metrics_url or default_router_metrics_url(self.root_url)
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def read(self, window_s: float = 1.0) -> ClusterStatus:
        """Scrape twice, `window_s` apart (once when 0); never raises for a server or worker that is down."""
        listed = await self._router_workers()
        if listed is None:
            try:
                return ClusterStatus(
                    routed=False, total=await self._one(self.metrics_url, window_s), error=None
                )
            except VllmMetricsError as exc:
                return ClusterStatus(routed=False, total=None, error=str(exc))
        urls = [metrics_url_for(w.url) for w in listed]
        first = await self._scrape_all(urls)
        second = first
        if window_s > 0:
            await asyncio.sleep(window_s)
            second = await self._scrape_all(urls)
        router_series, router_error = await self._router_series()
        workers = []
        pairs: list[tuple[VllmSample | None, VllmSample]] = []  # (earlier scrape if any, last scrape)
        for listed_worker, before, after in zip(listed, first, second, strict=True):
            worker = _with_router_series(listed_worker, router_series.get(listed_worker.url, {}))
            if isinstance(after, VllmMetricsError):
                workers.append(WorkerStatus(worker.url, "down", worker, str(after), None))
                continue
            earlier = before if isinstance(before, VllmSample) and before is not after else None
            pairs.append((earlier, after))
            vllm = summarize(earlier, after) if earlier else summarize(after)
            workers.append(WorkerStatus(worker.url, _state(worker), worker, None, vllm))
        both = [(b, a) for b, a in pairs if b is not None]  # answered both scrapes: rates are known
        total: VllmStatus | None = None
        error: str | None = None
        if both:
            total = summarize(combine([b for b, _ in both]), combine([a for _, a in both]))
        elif pairs:
            total = summarize(combine([a for _, a in pairs]))
        else:
            error = f"no worker behind the router at {self.root_url} answers /metrics"
        return ClusterStatus(
            routed=True,
            total=total,
            error=error,
            workers=tuple(workers),
            router_metrics_url=self.router_metrics_url,
            router_error=router_error,
        )

    async def _one(self, url: str, window_s: float) -> VllmStatus:
        first = await scrape(self._http, url)
        if window_s <= 0:
            return summarize(first)
        await asyncio.sleep(window_s)
        return summarize(first, await scrape(self._http, url))

    async def _scrape_all(self, urls: Sequence[str]) -> list[VllmSample | VllmMetricsError]:
        async def one(url: str) -> VllmSample | VllmMetricsError:
            try:
                return await scrape(self._http, url)
            except VllmMetricsError as exc:
                return exc

        return list(await asyncio.gather(*(one(url) for url in urls)))

    async def _router_workers(self) -> list[RouterWorker] | None:
        return await router_workers(self._http, self.root_url)

    async def _router_series(self) -> tuple[dict[str, dict[str, float]], str | None]:
        try:
            response = await self._http.get(self.router_metrics_url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            return {}, (
                f"cannot read the router's metrics at {self.router_metrics_url}: {type(exc).__name__} "
                "(set VLLM_ROUTER_METRICS_URL to its --prometheus-port)"
            )
        return parse_router_metrics(response.text), None


async def router_workers(http: httpx.AsyncClient, root_url: str) -> list[RouterWorker] | None:
    """vLLM's router's worker list (`GET {root_url}/workers`), or None when `root_url` is not vLLM's router
    (e.g. vLLM itself, which answers 404) or does not answer."""
    try:
        response = await http.get(f"{root_url.rstrip('/')}/workers")
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("workers"), list):
        return None
    workers = []
    for entry in data["workers"]:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            healthy = entry.get("is_healthy")
            workers.append(
                RouterWorker(
                    url=entry["url"].rstrip("/"), healthy=healthy if isinstance(healthy, bool) else None
                )
            )
    return workers


def _with_router_series(worker: RouterWorker, series: dict[str, float]) -> RouterWorker:
    state = series.get("cb_state")
    return RouterWorker(
        url=worker.url,
        healthy=worker.healthy if "worker_health" not in series else series["worker_health"] > 0,
        circuit=_CIRCUIT_STATES.get(int(state), str(state)) if state is not None else None,
        routed_requests=series.get("processed_requests"),
    )


def _state(worker: RouterWorker) -> str:
    return "unhealthy" if worker.healthy is False else "up"


def default_router_metrics_url(root_url: str) -> str:
    """The router's Prometheus endpoint by default: its host, port 29000 (vllm-router's default)."""
    parsed = httpx.URL(root_url)
    return str(parsed.copy_with(port=29000, path="/metrics", query=None))


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
