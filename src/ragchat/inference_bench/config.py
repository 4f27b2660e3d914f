"""What one benchmark run does: backends, the sweep, the SLO and the workloads' shape, as plain values.

`BenchConfig` is built once by the CLI (from flags, with defaults taken from `ragchat.config.Settings`) and
passed to everything else; nothing here reads the environment.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Backend = Literal["vllm", "openai", "app"]
BACKENDS: tuple[Backend, ...] = ("vllm", "openai", "app")
WORKLOADS: tuple[str, ...] = ("chat", "rag", "long")

OPENAI_BASE_URL = "https://api.openai.com/v1"


class BenchConfigError(ValueError):
    """A flag value that cannot be used; the message says which flag and what would work."""


@dataclass(frozen=True)
class Slo:
    """A latency objective on p95 values: a step meets it when both p95s are at or under the limits."""

    ttft_p95_ms: float = 2000.0
    tpot_p95_ms: float = 100.0

    @classmethod
    def parse(cls, text: str) -> Slo:
        """Read `ttft_p95=MS,tpot_p95=MS` (either key may be left out to keep its default)."""
        values: dict[str, float] = {}
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            key, sep, raw = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in ("ttft_p95", "tpot_p95"):
                raise BenchConfigError(
                    f"--slo: cannot read {part!r}; write e.g. ttft_p95=2000,tpot_p95=100 (milliseconds)"
                )
            try:
                number = float(raw.strip().removesuffix("ms"))
            except ValueError:
                raise BenchConfigError(f"--slo: {key} needs a number of milliseconds, got {raw!r}") from None
            if number <= 0:
                raise BenchConfigError(f"--slo: {key} must be positive, got {number:g}")
            values[f"{key}_ms"] = number
        return cls(**values)

    def describe(self) -> str:
        """`ttft_p95<=2000 ms, tpot_p95<=100 ms`."""
        return f"ttft_p95<={self.ttft_p95_ms:g} ms, tpot_p95<={self.tpot_p95_ms:g} ms"

    def admits(self, ttft_ms: float, tpot_ms: float | None) -> bool:
        """Whether one request (or a step's p95 pair) is within the objective; no TPOT counts as met."""
        return ttft_ms <= self.ttft_p95_ms and (tpot_ms is None or tpot_ms <= self.tpot_p95_ms)


@dataclass(frozen=True)
class WorkloadShape:
    """Sizes of the generated prompts."""

    rag_passages: int = 4
    passage_tokens: int = 300
    long_prompt_tokens: int | None = None
    long_margin_tokens: int = 64


@dataclass(frozen=True)
class BenchConfig:
    """Every setting of one `ragchat bench run`; recorded verbatim (API key removed) in the JSON output."""

    backend: Backend
    base_url: str
    output_dir: Path
    api_key: str | None = None
    model: str | None = None
    metrics_url: str | None = None
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    request_rates: tuple[float, ...] = ()
    max_concurrency: int | None = None
    runs: int = 10
    max_tokens: int = 128
    warmup: int = 2
    seed: int = 0
    slo: Slo = field(default_factory=Slo)
    workloads: tuple[str, ...] = ("chat", "rag", "long")
    shape: WorkloadShape = field(default_factory=WorkloadShape)
    dataset: Path | None = None
    prefix_experiment: bool = True
    prefix_runs: int | None = None
    prefix_concurrency: int = 1
    ignore_eos: bool = False
    temperature: float = 0.0
    request_timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    metrics_interval_s: float = 1.0
    plots: bool = True

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise BenchConfigError("--runs must be at least 1")
        if self.max_tokens < 1:
            raise BenchConfigError("--max-tokens must be at least 1")
        if self.warmup < 0:
            raise BenchConfigError("--warmup cannot be negative")
        if not self.concurrency or any(level < 1 for level in self.concurrency):
            raise BenchConfigError("--concurrency needs positive integers, e.g. 1,2,4,8")
        if any(rate <= 0 for rate in self.request_rates):
            raise BenchConfigError("--request-rate needs positive numbers (requests per second)")
        unknown = [name for name in self.workloads if name not in WORKLOADS]
        if unknown:
            raise BenchConfigError(
                f"--workloads: unknown {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
            )
        if not self.workloads and self.dataset is None and not self.prefix_experiment:
            raise BenchConfigError("nothing to run: give --workloads, --dataset or --prefix-experiment")
        if self.shape.rag_passages < 1 or self.shape.passage_tokens < 8:
            raise BenchConfigError("--rag-passages must be >= 1 and --passage-tokens >= 8")
        if self.metrics_interval_s < 0:
            raise BenchConfigError("--metrics-interval cannot be negative")
        if self.prefix_concurrency < 1:
            raise BenchConfigError("--prefix-concurrency must be at least 1")

    @property
    def mode(self) -> Literal["concurrency", "rate"]:
        """`rate` (open loop, Poisson arrivals) when request rates were given, else `concurrency`."""
        return "rate" if self.request_rates else "concurrency"

    def requests_per_step(self, concurrency: int | None) -> int:
        """Measured requests in one step: `--runs`, raised to the concurrency so every slot is used."""
        return max(self.runs, concurrency or 1)

    def to_record(self) -> dict[str, Any]:
        """The settings as JSON-ready values, without the API key."""
        record = asdict(self)
        record.pop("api_key")
        record["api_key_set"] = self.api_key is not None
        record["output_dir"] = str(self.output_dir)
        record["dataset"] = str(self.dataset) if self.dataset else None
        return record


def parse_int_list(text: str, flag: str) -> tuple[int, ...]:
    """`1,2,4,8` -> (1, 2, 4, 8), sorted and without repeats."""
    try:
        values = {int(part) for part in re.split(r"[,\s]+", text.strip()) if part}
    except ValueError:
        raise BenchConfigError(f"{flag}: expected integers separated by commas, got {text!r}") from None
    if not values:
        raise BenchConfigError(f"{flag}: give at least one value")
    return tuple(sorted(values))


def parse_float_list(text: str, flag: str) -> tuple[float, ...]:
    """`0.5,1,2` -> (0.5, 1.0, 2.0), sorted and without repeats."""
    try:
        values = {float(part) for part in re.split(r"[,\s]+", text.strip()) if part}
    except ValueError:
        raise BenchConfigError(f"{flag}: expected numbers separated by commas, got {text!r}") from None
    return tuple(sorted(values))


def default_base_url(backend: Backend, *, vllm_base_url: str, openai_base_url: str, app_port: int) -> str:
    """Where each backend listens unless `--base-url` says otherwise."""
    if backend == "vllm":
        return vllm_base_url
    if backend == "openai":
        return openai_base_url
    return f"http://localhost:{app_port}/v1"
