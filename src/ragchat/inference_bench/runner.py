"""Runs a benchmark: probe the server, then each workload's sweep, the prefix-cache pair, and capacity.

Every step is measured the same way: its prompts are built before the clock starts, `/metrics` is scraped
before it and after it and polled during it, and requests are sent either closed-loop (a fixed number in
flight: each finished request is replaced at once) or open-loop (Poisson arrivals at a fixed rate, seeded).

When the metrics server (with `--backend vllm`, the measured one) is vLLM's router, recognised by its
`GET /workers` listing as `ragchat status` does, the router's own `/metrics` is merely one worker's, proxied:
every worker's `/metrics` is scraped instead, and each step records the tier's figures (the workers' summed)
and each worker's own.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from ragchat import __version__
from ragchat.inference_bench.client import BenchClient, Message, RequestResult, ServerProblem
from ragchat.inference_bench.config import BenchConfig
from ragchat.inference_bench.metrics import Capacity, StepSummary, capacities, summarize
from ragchat.inference_bench.prometheus import (
    MetricsSnapshot,
    StepMonitor,
    StepServerMetrics,
    combine_snapshots,
)
from ragchat.inference_bench.workloads import (
    DEFAULT_TOKENS_PER_WORD,
    PromptFactory,
    Workload,
    dataset_workload,
    estimate_tokens,
    measure_tokens_per_word,
)

SCHEMA = "ragchat.bench.inference/1"


class ProgressSink(Protocol):
    """Where the runner reports progress (the CLI draws a rich progress bar; tests may pass `None`)."""

    def step_started(self, label: str, total: int) -> None:
        """A step (or warm-up) of `total` requests begins."""

    def request_finished(self, ok: bool) -> None:
        """One request of the current step ended."""

    def step_finished(self, step: StepResult) -> None:
        """The current step ended; its summary is ready."""

    def note(self, text: str) -> None:
        """Something the user should know (a skipped workload, a missing metric)."""


@dataclass
class ServerInfo:
    """What the benchmark learned about the server before the first measured request."""

    base_url: str
    model: str
    max_model_len: int | None
    vllm_version: str | None
    metrics_available: bool
    tokenize_available: bool
    cache_config: dict[str, str]
    models_listed: list[str]
    router_workers: list[str] = field(default_factory=list)
    """The workers behind vLLM's router (their root URLs) when the server is one; empty otherwise."""

    def to_record(self) -> dict[str, Any]:
        """JSON-ready values."""
        return dict(self.__dict__)


@dataclass
class StepResult:
    """One workload at one level: the raw requests, their summary, and the server's view."""

    workload: str
    mode: str
    level: float
    concurrency: int | None
    request_rate: float | None
    started_at: str
    duration_s: float
    results: list[RequestResult]
    summary: StepSummary
    server: StepServerMetrics

    def to_record(self) -> dict[str, Any]:
        """JSON-ready values, every raw sample included."""
        return {
            "workload": self.workload,
            "mode": self.mode,
            "level": self.level,
            "concurrency": self.concurrency,
            "request_rate": self.request_rate,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "summary": self.summary.to_record(),
            "server": self.server.to_record(),
            "samples": [result.to_record() for result in self.results],
        }


@dataclass
class PrefixExperiment:
    """The RAG workload with one shared prefix vs a unique prefix per request."""

    shared: StepResult
    unique: StepResult

    def to_record(self) -> dict[str, Any]:
        """Headline figures: TTFT p50 both ways, their ratio, and the hit rate both ways."""
        shared_ttft, unique_ttft = self.shared.summary.ttft_ms.p50, self.unique.summary.ttft_ms.p50
        return {
            "ttft_p50_ms_shared": shared_ttft,
            "ttft_p50_ms_unique": unique_ttft,
            "ttft_ratio_unique_over_shared": unique_ttft / shared_ttft
            if shared_ttft and unique_ttft
            else None,
            "hit_rate_shared": self.shared.server.prefix_cache_hit_rate,
            "hit_rate_unique": self.unique.server.prefix_cache_hit_rate,
            "cached_token_share_shared": _cached_share(self.shared.results),
            "cached_token_share_unique": _cached_share(self.unique.results),
            "steps": [self.unique.to_record(), self.shared.to_record()],
        }


def _cached_share(results: list[RequestResult]) -> float | None:
    """cached / prompt tokens from `usage.prompt_tokens_details` (vLLM: --enable-prompt-tokens-details)."""
    pairs = [(r.cached_prompt_tokens, r.prompt_tokens) for r in results if r.success]
    if not pairs or any(cached is None or not prompt for cached, prompt in pairs):
        return None
    return sum(c or 0 for c, _ in pairs) / sum(p or 0 for _, p in pairs)


@dataclass
class BenchRun:
    """Everything one run produced; `to_record()` is the JSON file's content."""

    config: BenchConfig
    server: ServerInfo
    run_tag: str
    tokens_per_word: float
    started_at: str
    finished_at: str = ""
    load_average: dict[str, list[float]] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    capacities: list[Capacity] = field(default_factory=list)
    prefix: PrefixExperiment | None = None
    notes: list[str] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """The whole run as JSON-ready values."""
        return {
            "schema": SCHEMA,
            "tool": f"ragchat bench {__version__}",
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "processor": platform.machine(),
                "cpu_count": os.cpu_count(),
                "load_average": self.load_average,
            },
            "settings": self.config.to_record(),
            "server": self.server.to_record(),
            "run_tag": self.run_tag,
            "tokens_per_word": self.tokens_per_word,
            "metric_definitions": "vllm bench serve: TTFT=first content chunk, ITL=gaps between content "
            "chunks, TPOT=(E2E-TTFT)/(output_tokens-1), output tokens from usage.completion_tokens",
            "steps": [step.to_record() for step in self.steps],
            "capacity": [cap.to_record() for cap in self.capacities],
            "prefix_cache": self.prefix.to_record() if self.prefix else None,
            "notes": self.notes,
        }


def _load_average() -> list[float]:
    """The client machine's 1/5/15-minute load averages: a busy client or shared host skews latencies."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _QuietProgress:
    def step_started(self, label: str, total: int) -> None:
        pass

    def request_finished(self, ok: bool) -> None:
        pass

    def step_finished(self, step: StepResult) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class BenchRunner:
    """Drives one benchmark run against an OpenAI-compatible server."""

    def __init__(self, config: BenchConfig, progress: ProgressSink | None = None) -> None:
        self.config = config
        self.progress: ProgressSink = progress or _QuietProgress()
        self.client = BenchClient(
            config.base_url,
            api_key=config.api_key,
            max_connections=max(
                (*config.concurrency, config.max_concurrency or 1, config.prefix_concurrency)
            ),
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.request_timeout_s,
            max_tokens_field="max_completion_tokens" if config.backend == "openai" else "max_tokens",
            metrics_url=config.metrics_url,
        )
        self._next_index = 0
        self._step_number = 0
        self._model = config.model or ""
        self._metrics_available = False
        self._workers: list[str] = []

    async def run(self) -> BenchRun:
        """Probe, run every step, and return the results; raises `ServerProblem` if the server is unusable."""
        try:
            return await self._run()
        finally:
            await self.client.aclose()

    async def _run(self) -> BenchRun:
        config = self.config
        server = await self.probe()
        self._model = server.model
        self._metrics_available = server.metrics_available
        tokens_per_word = DEFAULT_TOKENS_PER_WORD
        if server.tokenize_available:
            measured = await measure_tokens_per_word(
                lambda text: self.client.count_text_tokens(server.model, text), config.seed
            )
            tokens_per_word = measured or tokens_per_word
        run = BenchRun(
            config=config,
            server=server,
            run_tag=secrets.token_hex(4),
            tokens_per_word=tokens_per_word,
            started_at=_now(),
            load_average={"start": _load_average()},
        )
        if server.router_workers:
            self._note(
                run,
                f"vLLM's router with {len(server.router_workers)} workers: each worker's /metrics is read "
                "(figures per worker and summed)",
            )
        if not server.metrics_available:
            where = (
                "no worker behind the router answers /metrics"
                if server.router_workers
                else f"{self.client.metrics_root}/metrics has no vllm:* series"
            )
            self._note(run, f"{where}: no server view in this run")
        factory = PromptFactory(
            seed=config.seed,
            run_tag=run.run_tag,
            rag_passages=config.shape.rag_passages,
            passage_tokens=config.shape.passage_tokens,
            tokens_per_word=tokens_per_word,
        )
        for workload, sweep in self._workloads(run, factory):
            await self._warm_up(workload, 1 if workload.name == "long" else config.warmup)
            for concurrency, rate in sweep:
                run.steps.append(await self._step(workload, concurrency=concurrency, rate=rate))
        self._capacities(run)
        if config.prefix_experiment:
            await self._prefix_experiment(run, factory)
        run.finished_at = _now()
        run.load_average["end"] = _load_average()
        return run

    # --- probing -----------------------------------------------------------------------------------

    async def probe(self) -> ServerInfo:
        """Check the server answers, serves the model, and accepts a streamed request; learn its limits."""
        config = self.config
        listed = await self.client.list_models()
        names = [str(item.get("id")) for item in listed if item.get("id")]
        if config.model:
            model = config.model
            if names and model not in names:
                shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
                raise ServerProblem(f"model {model!r} is not served at {config.base_url}; it serves: {shown}")
        elif names:
            model = names[0]
        else:
            raise ServerProblem(f"{config.base_url} lists no models; name the one to use with --model")
        entry = next((item for item in listed if item.get("id") == model), {})
        max_model_len = entry.get("max_model_len")
        body = self.client.chat_body(
            model,
            [{"role": "user", "content": "Say OK."}],
            max_tokens=1,
            temperature=config.temperature,
            ignore_eos=config.ignore_eos,
        )
        check = await self.client.stream_chat(-1, body)
        if not check.success:
            raise ServerProblem(f"a test request to {config.base_url}/chat/completions failed: {check.error}")
        if config.backend != "openai":  # vLLM's router as the metrics server (also behind --backend app)
            self._workers = await self.client.router_workers() or []
        snapshot = await self._scrape_now()
        tokenize_available = await self.client.count_text_tokens(model, "hello") is not None
        return ServerInfo(
            base_url=config.base_url,
            model=model,
            max_model_len=int(max_model_len) if isinstance(max_model_len, int) else None,
            vllm_version=await self.client.server_version(),
            metrics_available=snapshot is not None,
            tokenize_available=tokenize_available,
            cache_config=snapshot.cache_config if snapshot else {},
            models_listed=names[:20],
            router_workers=list(self._workers),
        )

    # --- planning ----------------------------------------------------------------------------------

    def _workloads(
        self, run: BenchRun, factory: PromptFactory
    ) -> list[tuple[Workload, list[tuple[int | None, float | None]]]]:
        config = self.config
        if config.mode == "rate":
            sweep: list[tuple[int | None, float | None]] = [
                (config.max_concurrency, rate) for rate in config.request_rates
            ]
        else:
            sweep = [(level, None) for level in config.concurrency]
        plan: list[tuple[Workload, list[tuple[int | None, float | None]]]] = []
        if config.dataset is not None:
            plan.append((dataset_workload(config.dataset), sweep))
        for name in config.workloads:
            if name == "chat":
                plan.append((factory.chat(), sweep))
            elif name == "rag":
                plan.append((factory.rag(), sweep))
            elif name == "long":
                long_workload = self._long_workload(run, factory)
                if long_workload is not None:
                    plan.append((long_workload, [(1, None)]))
        return plan

    def _long_workload(self, run: BenchRun, factory: PromptFactory) -> Workload | None:
        config, server = self.config, run.server
        target = config.shape.long_prompt_tokens
        if target is None:
            if server.max_model_len is None:
                self._note(
                    run,
                    "long workload skipped: the server reports no max_model_len; give --long-prompt-tokens",
                )
                return None
            target = server.max_model_len - config.max_tokens - config.shape.long_margin_tokens
        if target < 64:
            self._note(run, f"long workload skipped: only {target} prompt tokens fit; lower --max-tokens")
            return None

        async def count(messages: list[Message]) -> int | None:
            counted = await self.client.count_prompt_tokens(server.model, messages)
            return counted if counted is not None else estimate_tokens(messages)

        if not server.tokenize_available:
            self._note(run, "long workload sized by a 4-characters-per-token estimate (no /tokenize)")
        return factory.long_context(target, count)

    def _note(self, run: BenchRun, text: str) -> None:
        run.notes.append(text)
        self.progress.note(text)

    # --- measuring ---------------------------------------------------------------------------------

    def _take_indices(self, count: int) -> list[int]:
        start = self._next_index
        self._next_index += count
        return list(range(start, start + count))

    async def _bodies(self, workload: Workload, indices: list[int]) -> list[dict[str, Any]]:
        config = self.config
        bodies = []
        for index in indices:
            messages = await workload.build(index)
            bodies.append(
                self.client.chat_body(
                    self.server_model,
                    messages,
                    max_tokens=config.max_tokens,
                    temperature=config.temperature,
                    ignore_eos=config.ignore_eos,
                )
            )
        return bodies

    @property
    def server_model(self) -> str:
        """The model every request names (set by `probe`)."""
        return self._model

    async def _warm_up(self, workload: Workload, count: int) -> None:
        if count <= 0:
            return
        bodies = await self._bodies(workload, self._take_indices(count))
        self.progress.step_started(f"{workload.name}: warm-up", count)
        for k, body in enumerate(bodies):
            result = await self._send(k, body)
            self.progress.request_finished(result.success)

    async def _send(self, index: int, body: dict[str, Any]) -> RequestResult:
        try:
            return await self.client.stream_chat(index, body)
        except Exception as exc:  # a request must never end the run; its failure is data
            return RequestResult(index=index, error=f"{type(exc).__name__}: {exc}")

    async def _step(
        self,
        workload: Workload,
        *,
        concurrency: int | None,
        rate: float | None,
        requests: int | None = None,
    ) -> StepResult:
        config = self.config
        count = requests or config.requests_per_step(concurrency if rate is None else None)
        indices = self._take_indices(count)
        bodies = await self._bodies(workload, indices)
        level: float = rate if rate is not None else float(concurrency or 1)
        label = (
            f"{workload.name} @ {level:g} req/s" if rate is not None else f"{workload.name} @ {level:g} users"
        )
        self.progress.step_started(label, count)
        monitor = StepMonitor(scrape=self._scrape, interval_s=config.metrics_interval_s)
        self._step_number += 1
        started_at = _now()
        await monitor.start()
        begin = time.perf_counter()
        results: list[RequestResult | None] = [None] * count

        async def one(position: int) -> None:
            offset = time.perf_counter() - begin
            result = await self._send(indices[position], bodies[position])
            result.start_s = offset
            results[position] = result
            self.progress.request_finished(result.success)

        if rate is None:
            await self._closed_loop(one, count, concurrency or 1)
        else:
            await self._open_loop(one, count, rate, concurrency)
        duration = time.perf_counter() - begin
        server = await monitor.stop()
        done = [result for result in results if result is not None]
        step = StepResult(
            workload=workload.name,
            mode="rate" if rate is not None else "concurrency",
            level=level,
            concurrency=concurrency,
            request_rate=rate,
            started_at=started_at,
            duration_s=duration,
            results=done,
            summary=summarize(done, duration, config.slo),
            server=server,
        )
        self.progress.step_finished(step)
        return step

    async def _scrape(self) -> MetricsSnapshot | None:
        return await self._scrape_now() if self._metrics_available else None

    async def _scrape_now(self) -> MetricsSnapshot | None:
        """The server's /metrics; behind the router, every worker's combined (`None` if none answers)."""
        if not self._workers:
            return await self.client.scrape_metrics()
        scraped = await asyncio.gather(*(self.client.scrape_metrics(url) for url in self._workers))
        parts = {url: snap for url, snap in zip(self._workers, scraped, strict=True) if snap is not None}
        return combine_snapshots(parts) if parts else None

    @staticmethod
    async def _closed_loop(one: Callable[[int], Awaitable[None]], count: int, in_flight: int) -> None:
        """Keep exactly `in_flight` requests running until `count` have been sent."""
        positions = iter(range(count))

        async def user() -> None:
            for position in positions:
                await one(position)

        await asyncio.gather(*(user() for _ in range(min(in_flight, count))))

    async def _open_loop(
        self, one: Callable[[int], Awaitable[None]], count: int, rate: float, cap: int | None
    ) -> None:
        """Poisson arrivals (seeded exponential gaps, the first at once), at most `cap` in flight."""
        rng = np.random.default_rng([self.config.seed, self._step_number])
        gaps = rng.exponential(1.0 / rate, size=count)
        gaps[0] = 0.0
        arrivals = np.cumsum(gaps)
        gate = asyncio.Semaphore(cap) if cap else None
        start = time.perf_counter()

        async def gated(position: int) -> None:
            if gate is None:
                await one(position)
                return
            async with gate:
                await one(position)

        tasks = []
        for position, arrival in enumerate(arrivals):
            delay = start + float(arrival) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(gated(position)))
        await asyncio.gather(*tasks)

    # --- conclusions -------------------------------------------------------------------------------

    def _capacities(self, run: BenchRun) -> None:
        unit = "req/s" if self.config.mode == "rate" else "users"
        triples = [(step.workload, step.level, step.summary) for step in run.steps]
        run.capacities = capacities(triples, self.config.slo, unit)

    async def _prefix_experiment(self, run: BenchRun, factory: PromptFactory) -> None:
        config = self.config
        if config.backend == "app":
            self._note(run, "prefix-cache experiment skipped: the app builds its own prompts (--backend app)")
            return
        if run.server.cache_config.get("enable_prefix_caching", "True") == "False":
            self._note(
                run, "the server runs with prefix caching off: expect no difference in this experiment"
            )
        requests = config.prefix_runs or config.runs
        unique, shared = factory.rag_unique_prefix(), factory.rag_shared_prefix()
        await self._warm_up(unique, min(config.warmup, 1))
        unique_step = await self._step(
            unique, concurrency=config.prefix_concurrency, rate=None, requests=requests
        )
        shared_step = await self._step(
            shared, concurrency=config.prefix_concurrency, rate=None, requests=requests
        )
        run.prefix = PrefixExperiment(shared=shared_step, unique=unique_step)
