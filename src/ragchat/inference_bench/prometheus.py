"""vLLM's Prometheus `/metrics`, read around each benchmark step: counter deltas and peaks sampled during it.

Only the few series the benchmark needs are parsed (a cheap line filter, so polling every half second does not
steal CPU from a server sharing the machine). Names follow current vLLM; the older names the guide uses
(`vllm:gpu_cache_usage_perc`, `vllm:gpu_prefix_cache_*`) are read as fallbacks.

Behind vLLM's router the runner scrapes every worker and hands the monitor one combined snapshot whose
`parts` are the workers' own: the step's figures are then the tier's (counters summed over the workers),
and `StepServerMetrics.workers` holds each worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# Gauges whose peak matters during a step, and counters whose increase over a step matters.
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
REQUESTS_WAITING = ("vllm:num_requests_waiting",)
REQUESTS_RUNNING = ("vllm:num_requests_running",)
PREFIX_HITS = ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total")
PREFIX_QUERIES = ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total")
PREEMPTIONS = ("vllm:num_preemptions_total",)
PROMPT_TOKENS = ("vllm:prompt_tokens_total",)
GENERATION_TOKENS = ("vllm:generation_tokens_total",)
REQUESTS_FINISHED = ("vllm:request_success_total",)
CACHE_CONFIG = "vllm:cache_config_info"

_WANTED = frozenset(
    KV_USAGE
    + REQUESTS_WAITING
    + REQUESTS_RUNNING
    + PREFIX_HITS
    + PREFIX_QUERIES
    + PREEMPTIONS
    + PROMPT_TOKENS
    + GENERATION_TOKENS
    + REQUESTS_FINISHED
    + (CACHE_CONFIG,)
)
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class MetricsSnapshot:
    """The wanted series of one scrape: values summed over label sets (e.g. over `model_name`).

    `parts`: for several servers scraped as one (the workers behind a router, see `combine_snapshots`),
    each server's own snapshot by its URL; empty for one server.
    """

    values: dict[str, float]
    cache_config: dict[str, str]
    parts: dict[str, MetricsSnapshot] = field(default_factory=dict)

    def get(self, names: tuple[str, ...]) -> float | None:
        """The first of `names` (current name, then older ones) that the server exposes."""
        for name in names:
            if name in self.values:
                return self.values[name]
        return None


def parse_metrics(text: str) -> MetricsSnapshot:
    """Parse Prometheus text exposition, keeping only the series the benchmark uses."""
    values: dict[str, float] = {}
    cache_config: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        match = _SAMPLE.match(line)
        if match is None or match["name"] not in _WANTED:
            continue
        name = match["name"]
        if name == CACHE_CONFIG:
            cache_config = {m["key"]: m["value"] for m in _LABEL.finditer(match["labels"] or "")}
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if math.isfinite(value):
            values[name] = values.get(name, 0.0) + value
    return MetricsSnapshot(values=values, cache_config=cache_config)


def combine_snapshots(parts: dict[str, MetricsSnapshot]) -> MetricsSnapshot:
    """Several servers' scrapes as one: series summed, KV-cache usage averaged (each worker has its own
    cache), the first server's cache config; `parts` keeps each server's snapshot."""
    values: dict[str, float] = {}
    for snapshot in parts.values():
        for name, value in snapshot.values.items():
            values[name] = values.get(name, 0.0) + value
    for name in KV_USAGE:
        present = [snapshot.values[name] for snapshot in parts.values() if name in snapshot.values]
        if present:
            values[name] = sum(present) / len(present)
    first = next(iter(parts.values()), None)
    return MetricsSnapshot(values=values, cache_config=first.cache_config if first else {}, parts=dict(parts))


@dataclass
class StepServerMetrics:
    """What the server reported over one step: counter increases and gauge peaks.

    `workers`: behind vLLM's router, each worker's own figures by its URL (`available: false` for one whose
    /metrics did not answer before and after the step); the step's own figures are then their sums.
    """

    available: bool
    requests_finished: float | None = None
    prefix_cache_hits: float | None = None
    prefix_cache_queries: float | None = None
    preemptions: float | None = None
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    peak_kv_cache_usage: float | None = None
    peak_requests_waiting: float | None = None
    peak_requests_running: float | None = None
    samples_taken: int = 0
    workers: dict[str, StepServerMetrics] = field(default_factory=dict)

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        """hits / queries over the step (both count prompt tokens), or None when nothing was queried."""
        if not self.prefix_cache_queries or self.prefix_cache_hits is None:
            return None
        return self.prefix_cache_hits / self.prefix_cache_queries

    def to_record(self) -> dict[str, Any]:
        """JSON-ready values, hit rate included."""
        return {
            "available": self.available,
            "requests_finished": self.requests_finished,
            "prefix_cache_hits": self.prefix_cache_hits,
            "prefix_cache_queries": self.prefix_cache_queries,
            "prefix_cache_hit_rate": self.prefix_cache_hit_rate,
            "preemptions": self.preemptions,
            "prompt_tokens": self.prompt_tokens,
            "generation_tokens": self.generation_tokens,
            "peak_kv_cache_usage": self.peak_kv_cache_usage,
            "peak_requests_waiting": self.peak_requests_waiting,
            "peak_requests_running": self.peak_requests_running,
            "samples_taken": self.samples_taken,
            "workers": {url: worker.to_record() for url, worker in self.workers.items()},
        }


def _delta(after: MetricsSnapshot, before: MetricsSnapshot, names: tuple[str, ...]) -> float | None:
    end, start = after.get(names), before.get(names)
    if end is None or start is None:
        return None
    return max(0.0, end - start)


def _peak(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None else max(current, value)


def _sum(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


@dataclass
class _Peaks:
    kv: float | None = None
    waiting: float | None = None
    running: float | None = None
    samples: int = 0
    parts: dict[str, _Peaks] = field(default_factory=dict)

    def add(self, snapshot: MetricsSnapshot) -> None:
        self.kv = _peak(self.kv, snapshot.get(KV_USAGE))
        self.waiting = _peak(self.waiting, snapshot.get(REQUESTS_WAITING))
        self.running = _peak(self.running, snapshot.get(REQUESTS_RUNNING))
        self.samples += 1
        for url, part in snapshot.parts.items():
            self.parts.setdefault(url, _Peaks()).add(part)


def _step_metrics(before: MetricsSnapshot, after: MetricsSnapshot, peaks: _Peaks) -> StepServerMetrics:
    """One server's view of a step (the combined one's counters are re-summed by `StepMonitor.stop`)."""
    return StepServerMetrics(
        available=True,
        requests_finished=_delta(after, before, REQUESTS_FINISHED),
        prefix_cache_hits=_delta(after, before, PREFIX_HITS),
        prefix_cache_queries=_delta(after, before, PREFIX_QUERIES),
        preemptions=_delta(after, before, PREEMPTIONS),
        prompt_tokens=_delta(after, before, PROMPT_TOKENS),
        generation_tokens=_delta(after, before, GENERATION_TOKENS),
        peak_kv_cache_usage=peaks.kv,
        peak_requests_waiting=peaks.waiting,
        peak_requests_running=peaks.running,
        samples_taken=peaks.samples,
    )


def _with_workers(
    total: StepServerMetrics, before: MetricsSnapshot, after: MetricsSnapshot, peaks: _Peaks
) -> StepServerMetrics:
    """`total` with each worker's figures, and its counters the sums over the workers that answered both
    scrapes (a worker missing from one scrape would otherwise show as a drop in the combined counters)."""
    workers = {
        url: _step_metrics(before.parts[url], after.parts[url], peaks.parts.get(url, _Peaks()))
        if url in before.parts and url in after.parts
        else StepServerMetrics(available=False)
        for url in dict.fromkeys([*before.parts, *after.parts])
    }
    seen = [worker for worker in workers.values() if worker.available]

    def summed(name: str) -> float | None:
        return _sum([getattr(worker, name) for worker in seen])

    total.requests_finished = summed("requests_finished")
    total.prefix_cache_hits = summed("prefix_cache_hits")
    total.prefix_cache_queries = summed("prefix_cache_queries")
    total.preemptions = summed("preemptions")
    total.prompt_tokens = summed("prompt_tokens")
    total.generation_tokens = summed("generation_tokens")
    total.workers = workers
    return total


@dataclass
class StepMonitor:
    """Scrapes before a step, polls during it (for peaks; `interval_s` 0 turns polling off), scrapes after it.

    `scrape` returns a snapshot or None when the server has no usable `/metrics`; then every figure stays
    None and the step's record says `available: false`.
    """

    scrape: Callable[[], Awaitable[MetricsSnapshot | None]]
    interval_s: float = 1.0
    _before: MetricsSnapshot | None = None
    _peaks: _Peaks = field(default_factory=_Peaks)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the `before` scrape and begin polling."""
        self._peaks = _Peaks()
        self._before = await self.scrape()
        if self._before is not None and self.interval_s > 0:
            self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                snapshot = await self.scrape()
            except Exception:  # a bad scrape must not end the step; the next poll may succeed
                continue
            if snapshot is not None:
                self._peaks.add(snapshot)

    async def stop(self) -> StepServerMetrics:
        """Stop polling, take the `after` scrape, and return the step's server view."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        before = self._before
        after = await self.scrape() if before is not None else None
        if before is None or after is None:
            return StepServerMetrics(available=False)
        self._peaks.add(after)
        total = _step_metrics(before, after, self._peaks)
        if before.parts or after.parts:
            return _with_workers(total, before, after, self._peaks)
        return total
