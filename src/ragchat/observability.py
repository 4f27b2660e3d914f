"""ragchat's own Prometheus metrics: one `AppMetrics` per app instance, with its own registry.

Nothing is registered globally, so several apps (tests) live side by side. Every label takes values from a
fixed set (unknown values become "other"), so the number of series stays bounded.

Several worker processes (`ragchat serve --workers N`): prometheus_client's multiprocess mode, switched on
by `PROMETHEUS_MULTIPROC_DIR` (an empty folder, set before the workers start; `ragchat serve` makes one).
Each worker then writes its values to files there, and `/metrics`, whichever worker answers it, reports the
sum over all workers (`ragchat_http_requests_in_progress` over the live ones).

Exported (Prometheus naming, seconds and `_total` counters):

- `ragchat_stage_duration_seconds{stage}` histogram: `query_embedding`, `retrieval` (which includes
  `query_embedding`), `prompt_assembly`, `ttft` (request received → first answer token sent by the app),
  `total` (request received → answer complete).
- `ragchat_prompt_tokens_total`, `ragchat_completion_tokens_total`: tokens sent to and received from the LLM.
- `ragchat_http_requests_total{route,method,status}`, `ragchat_http_request_duration_seconds{route}`,
  `ragchat_http_requests_in_progress`: every HTTP request, by route template.
- `ragchat_errors_total{kind}`: failures by kind (see `ErrorKind`).
- `ragchat_ingested_files_total`, `ragchat_ingested_chunks_total`, `ragchat_ingest_failures_total`
  (files added or replaced, their chunks, files skipped as unusable).
- `ragchat_build_info{version,python,llm_backend,embedding_model}` = 1.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

Stage = Literal["query_embedding", "retrieval", "prompt_assembly", "ttft", "total"]
ErrorKind = Literal[
    "llm_unreachable",  # connection refused / DNS / connect timeout
    "llm_timeout",  # no bytes within the read timeout
    "llm_error",  # the LLM answered with an error status, or broke off mid-stream
    "embedding",  # the embedding model or server failed
    "bad_request",  # the client sent something invalid (4xx)
    "not_found",
    "ingest",  # a file could not be ingested
    "client_disconnect",
    "internal",  # anything unexpected (5xx)
    "other",
]

STAGES: Final = frozenset(get_args(Stage))
ERROR_KINDS: Final = frozenset(get_args(ErrorKind))
HTTP_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

# From 1 ms (an embedding of one query on a warm model) to a minute (a long answer on a busy GPU).
STAGE_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75,
    1.0, 1.5, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
)  # fmt: skip


class AppMetrics:
    """Counters and histograms for one ragchat instance; `render()` gives the Prometheus text format.

    Use cases call the small recording API: `with metrics.stage("retrieval"): ...`,
    `metrics.observe("ttft", seconds)`, `metrics.tokens(prompt, completion)`, `metrics.error("llm_timeout")`,
    `metrics.ingested(files=1, chunks=12, failures=0)`. The HTTP middleware calls `http_request(...)`.
    """

    def __init__(
        self,
        *,
        version: str = "unknown",
        llm_backend: str = "unknown",
        embedding_model: str = "unknown",
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._stage = Histogram(
            "ragchat_stage_duration_seconds",
            "Duration of one stage of answering or ingesting (ttft and total are from request arrival).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self._prompt_tokens = Counter(
            "ragchat_prompt_tokens", "Prompt tokens sent to the LLM.", registry=registry
        )
        self._completion_tokens = Counter(
            "ragchat_completion_tokens", "Completion tokens received from the LLM.", registry=registry
        )
        self._errors = Counter("ragchat_errors", "Failures, by kind.", ["kind"], registry=registry)
        self._http_requests = Counter(
            "ragchat_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self._http_duration = Histogram(
            "ragchat_http_request_duration_seconds",
            "Time from request arrival to the last byte of the response (whole stream for SSE).",
            ["route"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self._http_in_progress = Gauge(
            "ragchat_http_requests_in_progress",
            "HTTP requests being answered now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._files = Counter(
            "ragchat_ingested_files", "Files ingested (added or replaced).", registry=registry
        )
        self._chunks = Counter("ragchat_ingested_chunks", "Chunks stored by ingestion.", registry=registry)
        self._failures = Counter(
            "ragchat_ingest_failures", "Files that could not be ingested.", registry=registry
        )
        build = {
            "version": version,
            "python": platform.python_version(),
            "llm_backend": llm_backend,
            "embedding_model": embedding_model,
        }
        Gauge(
            "ragchat_build_info",
            "Version and configuration of this ragchat instance (always 1).",
            list(build),
            registry=registry,
            multiprocess_mode="max",
        ).labels(**build).set(1)
        # Every stage and error kind exists from the start, so dashboards and rate() see zeros, not gaps.
        for stage in sorted(STAGES):
            self._stage.labels(stage)
        for kind in sorted(ERROR_KINDS):
            self._errors.labels(kind)

    # --- recording API used by core and api -------------------------------------------------------
    @contextmanager
    def stage(self, name: Stage) -> Iterator[None]:
        """Time the enclosed block as stage `name` (recorded even when the block raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - started)

    def observe(self, name: Stage, seconds: float) -> None:
        """Record a duration measured elsewhere (e.g. `ttft` from the request's arrival)."""
        self._stage.labels(name if name in STAGES else "other").observe(max(seconds, 0.0))

    def tokens(self, prompt: int, completion: int) -> None:
        """Add one LLM call's usage (prompt tokens in, completion tokens out)."""
        self._prompt_tokens.inc(max(prompt, 0))
        self._completion_tokens.inc(max(completion, 0))

    def error(self, kind: ErrorKind) -> None:
        """Count one failure of `kind` (unknown kinds count as "other")."""
        self._errors.labels(kind if kind in ERROR_KINDS else "other").inc()

    def ingested(self, *, files: int, chunks: int, failures: int = 0) -> None:
        """Add an ingestion's outcome: files added or replaced, chunks written, files that failed."""
        self._files.inc(max(files, 0))
        self._chunks.inc(max(chunks, 0))
        self._failures.inc(max(failures, 0))
        if failures > 0:
            self._errors.labels("ingest").inc(failures)

    # --- HTTP layer ---------------------------------------------------------------------------------
    def http_started(self) -> None:
        """A request began (pairs with `http_request`)."""
        self._http_in_progress.inc()

    def http_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """A request ended. `route` must be a route template (bounded), never the raw path."""
        self._http_in_progress.dec()
        method = method if method in HTTP_METHODS else "other"
        self._http_requests.labels(route, method, str(status)).inc()
        self._http_duration.labels(route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric above (summed over the workers, if several)."""
        if _multiprocess_dir() is None:
            return generate_latest(self.registry)
        workers = CollectorRegistry()
        multiprocess.MultiProcessCollector(workers)  # type: ignore[no-untyped-call]
        return generate_latest(workers)

    def close(self) -> None:
        """Call when this process stops serving: its in-progress gauge no longer counts."""
        if _multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class EmbedServerMetrics:
    """Metrics of `ragchat embed-server` (own registry); the `model` label takes only served model names."""

    OUTCOMES: Final = frozenset({"ok", "client_error", "server_error"})

    def __init__(self, models: Sequence[str], *, version: str = "unknown") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._models = frozenset(models)
        self._requests = Counter(
            "ragchat_embed_requests",
            "Embedding requests, by model and outcome (ok, client_error, server_error).",
            ["model", "outcome"],
            registry=registry,
        )
        self._inputs = Counter("ragchat_embed_inputs", "Texts embedded.", ["model"], registry=registry)
        self._request_duration = Histogram(
            "ragchat_embed_request_duration_seconds",
            "Time from request arrival to response, batching wait included.",
            ["model"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self._batch_texts = Histogram(
            "ragchat_embed_batch_texts",
            "Texts per model call (requests batched together).",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
            registry=registry,
        )
        self._batch_duration = Histogram(
            "ragchat_embed_batch_duration_seconds",
            "Duration of one model call.",
            ["model"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        Info("ragchat_embed_build", "Version of this embedding server.", registry=registry).info(
            {"version": version, "python": platform.python_version(), "models": ",".join(sorted(models))}
        )

    def _label(self, model: str) -> str:
        return model if model in self._models else "unknown"

    def request(self, *, model: str, outcome: str, seconds: float, inputs: int) -> None:
        """One answered request; `outcome` is ok, client_error or server_error."""
        label = self._label(model)
        self._requests.labels(label, outcome if outcome in self.OUTCOMES else "server_error").inc()
        self._request_duration.labels(label).observe(seconds)
        if outcome == "ok":
            self._inputs.labels(label).inc(inputs)

    def batch(self, *, model: str, texts: int, seconds: float) -> None:
        """One model call of `texts` texts."""
        label = self._label(model)
        self._batch_texts.labels(label).observe(texts)
        self._batch_duration.labels(label).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
