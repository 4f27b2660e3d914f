"""Step statistics, defined as vLLM's `vllm bench serve` defines them.

- TTFT: request start to the first SSE chunk that carries content (a role-only chunk does not count).
- ITL: gaps between consecutive content-carrying chunks, pooled over all requests of the step.
- TPOT: per request (E2E - TTFT) / (output tokens - 1), for requests with at least two output tokens.
- E2E: request start to the last SSE chunk with `choices` (the trailing usage chunk carries no token).
- Output tokens: `usage.completion_tokens` of the stream's last chunk, never a count of chunks.
- Percentiles: numpy's linear interpolation (as vLLM); request/s and token/s over the step's wall time.
- Goodput: requests per second that individually met the SLO (TTFT and TPOT both within the limits).
- Decode speed per user: median over requests of 1 / TPOT, in tokens per second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ragchat.inference_bench.client import RequestResult
from ragchat.inference_bench.config import Slo

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Distribution:
    """Mean and percentiles of one latency, in milliseconds (None when there were no values)."""

    count: int
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> Distribution:
        """Summarise values given in seconds, reporting milliseconds."""
        if not values:
            return cls(count=0)
        data = np.asarray(values, dtype=float) * 1000.0
        p50, p90, p95, p99 = (float(v) for v in np.percentile(data, PERCENTILES))
        return cls(
            count=len(values),
            mean=float(data.mean()),
            p50=p50,
            p90=p90,
            p95=p95,
            p99=p99,
            max=float(data.max()),
        )


@dataclass(frozen=True)
class StepSummary:
    """The figures of one step (one workload at one concurrency level or request rate)."""

    requests: int
    completed: int
    failed: int
    error_rate: float
    duration_s: float
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    decode_tok_s_per_user: float | None
    good_requests: int
    goodput: float
    ttft_ms: Distribution
    tpot_ms: Distribution
    itl_ms: Distribution
    e2e_ms: Distribution
    mean_prompt_tokens: float | None
    mean_output_tokens: float | None
    missing_usage: int
    errors: dict[str, int]

    def meets(self, slo: Slo) -> bool:
        """Whether the step meets the SLO: no failed request, p95 TTFT and p95 TPOT within the limits."""
        if self.completed == 0 or self.failed or self.ttft_ms.p95 is None:
            return False
        return slo.admits(self.ttft_ms.p95, self.tpot_ms.p95)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StepSummary:
        """Rebuild a summary from `to_record` output."""
        values = dict(record)
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            values[key] = Distribution(**values[key])
        return cls(**values)


def summarize(results: Sequence[RequestResult], duration_s: float, slo: Slo) -> StepSummary:
    """Aggregate one step's requests; failed requests count toward the error rate only."""
    done = [r for r in results if r.success]
    failed = len(results) - len(done)
    ttfts = [r.ttft_s for r in done if r.ttft_s is not None]
    tpots = [t for t in (r.tpot_s for r in done) if t is not None]
    itls = [gap for r in done for gap in r.itl_s]
    e2es = [r.e2e_s for r in done if r.e2e_s is not None]
    output_tokens = [r.output_tokens for r in done if r.output_tokens is not None]
    prompt_tokens = [r.prompt_tokens for r in done if r.prompt_tokens is not None]
    good = sum(1 for r in done if r.ttft_s is not None and slo.admits(r.ttft_s * 1000, _ms(r.tpot_s)))
    duration = max(duration_s, 1e-9)
    total_out = sum(output_tokens)
    decode_speeds = [1.0 / t for t in tpots if t > 0]
    errors = Counter(r.error or "unknown error" for r in results if not r.success)
    return StepSummary(
        requests=len(results),
        completed=len(done),
        failed=failed,
        error_rate=failed / len(results) if results else 0.0,
        duration_s=duration_s,
        request_throughput=len(done) / duration,
        output_throughput=total_out / duration,
        total_token_throughput=(total_out + sum(prompt_tokens)) / duration,
        decode_tok_s_per_user=float(np.median(decode_speeds)) if decode_speeds else None,
        good_requests=good,
        goodput=good / duration,
        ttft_ms=Distribution.of_seconds(ttfts),
        tpot_ms=Distribution.of_seconds(tpots),
        itl_ms=Distribution.of_seconds(itls),
        e2e_ms=Distribution.of_seconds(e2es),
        mean_prompt_tokens=float(np.mean(prompt_tokens)) if prompt_tokens else None,
        mean_output_tokens=float(np.mean(output_tokens)) if output_tokens else None,
        missing_usage=sum(1 for r in done if r.output_tokens is None),
        errors=dict(errors.most_common(5)),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


@dataclass(frozen=True)
class Capacity:
    """The capacity verdict for one workload's sweep."""

    workload: str
    slo: Slo
    levels: tuple[float, ...]
    met: tuple[bool, ...]
    value: float | None
    unit: str

    def line(self) -> str:
        """The one line the CLI prints, e.g. `max concurrent users at SLO (...): 8`."""
        what = "max concurrent users" if self.unit == "users" else "max request rate"
        suffix = "" if self.unit == "users" else " req/s"
        if self.value is None:
            tried = ", ".join(f"{level:g}" for level in self.levels)
            return f"[{self.workload}] {what} at SLO ({self.slo.describe()}): none of {tried} meets it"
        notes = []
        missed_below = [
            f"{lvl:g}" for lvl, ok in zip(self.levels, self.met, strict=True) if lvl < self.value and not ok
        ]
        if missed_below:
            notes.append(f"missed at {', '.join(missed_below)}: a noisy run? measure again")
        if self.value == max(self.levels):
            notes.append("the highest level tried: raise the sweep to find the limit")
        suffix += f" ({'; '.join(notes)})" if notes else ""
        return f"[{self.workload}] {what} at SLO ({self.slo.describe()}): {self.value:g}{suffix}"

    def to_record(self) -> dict[str, Any]:
        """JSON-ready values and the printed line."""
        return {
            "workload": self.workload,
            "slo": asdict(self.slo),
            "levels": list(self.levels),
            "met": list(self.met),
            "value": self.value,
            "unit": self.unit,
            "line": self.line(),
        }


def capacities(steps: Sequence[tuple[str, float, StepSummary]], slo: Slo, unit: str) -> list[Capacity]:
    """A capacity per swept workload, from (workload, level, summary) triples in run order.

    The long-context workload runs at one user only and gets none."""
    names = dict.fromkeys(name for name, _, _ in steps)
    verdicts = []
    for name in names:
        levels = [(level, summary) for workload, level, summary in steps if workload == name]
        if len(levels) > 1 or name != "long":
            verdicts.append(capacity(name, levels, slo, unit))
    return verdicts


def capacity(workload: str, levels: Sequence[tuple[float, StepSummary]], slo: Slo, unit: str) -> Capacity:
    """The highest level of the sweep that meets the SLO (a lower level that missed is named in the line)."""
    ordered = sorted(levels, key=lambda pair: pair[0])
    met = tuple(summary.meets(slo) for _, summary in ordered)
    passing = [level for (level, _), ok in zip(ordered, met, strict=True) if ok]
    value = max(passing) if passing else None
    return Capacity(
        workload=workload,
        slo=slo,
        levels=tuple(level for level, _ in ordered),
        met=met,
        value=value,
        unit=unit,
    )
