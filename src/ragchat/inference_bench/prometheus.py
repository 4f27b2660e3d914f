"""vLLM's Prometheus `/metrics`, read around each benchmark step: counter deltas and peaks sampled during it.

Only the few series the benchmark needs are parsed (a cheap line filter, so polling every half second does not
steal CPU from a server sharing the machine). Names follow current vLLM; the older names the guide uses
(`vllm:gpu_cache_usage_perc`, `vllm:gpu_prefix_cache_*`) are read as fallbacks.
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
    + (CACHE_CONFIG,)
)
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class MetricsSnapshot:
    """The wanted series of one scrape: values summed over label sets (e.g. over `model_name`)."""

    values: dict[str, float]
    cache_config: dict[str, str]

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


@dataclass
class StepServerMetrics:
    """What the server reported over one step: counter increases and gauge peaks."""

    available: bool
    prefix_cache_hits: float | None = None
    prefix_cache_queries: float | None = None
    preemptions: float | None = None
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    peak_kv_cache_usage: float | None = None
    peak_requests_waiting: float | None = None
    peak_requests_running: float | None = None
    samples_taken: int = 0

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


@dataclass
class _Peaks:
    kv: float | None = None
    waiting: float | None = None
    running: float | None = None
    samples: int = 0

    def add(self, snapshot: MetricsSnapshot) -> None:
        self.kv = _peak(self.kv, snapshot.get(KV_USAGE))
        self.waiting = _peak(self.waiting, snapshot.get(REQUESTS_WAITING))
        self.running = _peak(self.running, snapshot.get(REQUESTS_RUNNING))
        self.samples += 1


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
        return StepServerMetrics(
            available=True,
            prefix_cache_hits=_delta(after, before, PREFIX_HITS),
            prefix_cache_queries=_delta(after, before, PREFIX_QUERIES),
            preemptions=_delta(after, before, PREEMPTIONS),
            prompt_tokens=_delta(after, before, PROMPT_TOKENS),
            generation_tokens=_delta(after, before, GENERATION_TOKENS),
            peak_kv_cache_usage=self._peaks.kv,
            peak_requests_waiting=self._peaks.waiting,
            peak_requests_running=self._peaks.running,
            samples_taken=self._peaks.samples,
        )
