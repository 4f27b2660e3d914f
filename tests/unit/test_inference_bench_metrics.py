"""The benchmark's arithmetic: vLLM's metric definitions, percentiles, goodput, capacity, and flag parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragchat.inference_bench.client import RequestResult
from ragchat.inference_bench.config import (
    BenchConfig,
    BenchConfigError,
    Slo,
    parse_float_list,
    parse_int_list,
)
from ragchat.inference_bench.metrics import Distribution, StepSummary, capacity, summarize


def finished(
    index: int, times: list[float], output_tokens: int | None, e2e: float | None = None
) -> RequestResult:
    """A successful request whose content chunks arrived at `times` (seconds from its start)."""
    return RequestResult(
        index=index,
        ttft_s=times[0],
        e2e_s=times[-1] if e2e is None else e2e,
        content_times_s=times,
        output_tokens=output_tokens,
        prompt_tokens=100,
        success=True,
    )


def test_tpot_is_decode_time_over_tokens_after_the_first_and_itl_are_the_chunk_gaps() -> None:
    # 5 tokens in 4 chunks (the last chunk carries two tokens): TPOT counts tokens, ITL counts chunks.
    result = finished(0, [0.5, 0.6, 0.8, 1.1], output_tokens=5)

    assert result.tpot_s == pytest.approx((1.1 - 0.5) / 4)
    assert result.itl_s == pytest.approx([0.1, 0.2, 0.3])


def test_tpot_needs_two_tokens_and_a_usage_count() -> None:
    assert finished(0, [0.5], output_tokens=1).tpot_s is None
    assert finished(0, [0.5, 0.7], output_tokens=None).tpot_s is None


def test_summary_percentiles_match_numpy_and_failures_only_count_as_errors() -> None:
    rng = np.random.default_rng(7)
    results = []
    for index in range(40):
        ttft = float(rng.uniform(0.05, 0.5))
        times = list(ttft + np.cumsum(rng.uniform(0.01, 0.05, size=10)) - 0.01)
        results.append(finished(index, times, output_tokens=12))
    results.append(RequestResult(index=99, error="HTTP 500: boom"))

    summary = summarize(results, duration_s=10.0, slo=Slo())

    ttfts = np.array([r.ttft_s for r in results[:40]]) * 1000
    tpots = np.array([r.tpot_s for r in results[:40]]) * 1000
    itls = np.concatenate([np.diff(r.content_times_s) for r in results[:40]]) * 1000
    assert summary.ttft_ms.p50 == pytest.approx(np.percentile(ttfts, 50))
    assert summary.ttft_ms.p99 == pytest.approx(np.percentile(ttfts, 99))
    assert summary.tpot_ms.p95 == pytest.approx(np.percentile(tpots, 95))
    assert summary.itl_ms.mean == pytest.approx(itls.mean())
    assert summary.itl_ms.count == len(itls)
    assert (summary.requests, summary.completed, summary.failed) == (41, 40, 1)
    assert summary.error_rate == pytest.approx(1 / 41)
    assert summary.errors == {"HTTP 500: boom": 1}
    assert summary.output_throughput == pytest.approx(40 * 12 / 10.0)
    assert summary.request_throughput == pytest.approx(4.0)
    assert summary.decode_tok_s_per_user == pytest.approx(np.median(1000 / tpots))


def test_goodput_counts_requests_within_both_limits() -> None:
    slo = Slo(ttft_p95_ms=300, tpot_p95_ms=50)
    results = [
        finished(0, [0.1, 0.14, 0.18], output_tokens=3),  # TTFT 100 ms, TPOT 40 ms: good
        finished(1, [0.4, 0.44, 0.48], output_tokens=3),  # TTFT too slow
        finished(2, [0.1, 0.2, 0.3], output_tokens=3),  # TPOT 100 ms: too slow
        finished(3, [0.2], output_tokens=1),  # one token: no TPOT, TTFT fine: good
    ]
    summary = summarize(results, duration_s=2.0, slo=slo)
    assert summary.good_requests == 2
    assert summary.goodput == pytest.approx(1.0)


def test_missing_usage_is_counted_and_left_out_of_tpot() -> None:
    summary = summarize([finished(0, [0.1, 0.2], None), finished(1, [0.1, 0.2], 2)], 1.0, Slo())
    assert summary.missing_usage == 1
    assert summary.tpot_ms.count == 1


def step(ttft_p95: float, tpot_p95: float, failed: int = 0) -> StepSummary:
    base = summarize([finished(0, [0.1, 0.2], 2)], 1.0, Slo())
    return StepSummary(
        **{
            **base.__dict__,
            "failed": failed,
            "ttft_ms": Distribution(count=1, p95=ttft_p95),
            "tpot_ms": Distribution(count=1, p95=tpot_p95),
        }
    )


def test_capacity_is_the_highest_level_within_the_slo() -> None:
    slo = Slo(ttft_p95_ms=1000, tpot_p95_ms=100)
    levels = [(8.0, step(1500, 60)), (1.0, step(200, 30)), (4.0, step(900, 90)), (2.0, step(400, 40))]

    result = capacity("rag", levels, slo, "users")

    assert result.value == 4
    assert result.met == (True, True, True, False)
    assert result.line() == "[rag] max concurrent users at SLO (ttft_p95<=1000 ms, tpot_p95<=100 ms): 4"


def test_capacity_names_a_lower_level_that_missed_and_failed_requests_miss() -> None:
    slo = Slo(ttft_p95_ms=1000, tpot_p95_ms=100)
    noisy = capacity(
        "chat", [(1.0, step(200, 300)), (2.0, step(200, 30)), (4.0, step(2000, 30))], slo, "users"
    )
    assert noisy.value == 2
    assert noisy.line().endswith(": 2 (missed at 1: a noisy run? measure again)")
    failing = capacity("chat", [(1.0, step(200, 30, failed=1))], slo, "users")
    assert failing.value is None
    assert "none of 1 meets it" in failing.line()


def test_capacity_at_the_top_of_the_sweep_says_so() -> None:
    result = capacity("chat", [(1.0, step(10, 1)), (2.0, step(10, 1))], Slo(), "users")
    assert result.value == 2
    assert "raise the sweep" in result.line()


def test_slo_parsing_accepts_either_key_and_rejects_nonsense() -> None:
    assert Slo.parse("ttft_p95=500,tpot_p95=40") == Slo(ttft_p95_ms=500, tpot_p95_ms=40)
    assert Slo.parse("tpot_p95=25ms") == Slo(ttft_p95_ms=2000, tpot_p95_ms=25)
    for bad in ("ttft=5", "ttft_p95=fast", "tpot_p95=-1"):
        with pytest.raises(BenchConfigError, match="--slo"):
            Slo.parse(bad)


def test_list_flags_and_config_checks() -> None:
    assert parse_int_list("8,1, 2,2", "--concurrency") == (1, 2, 8)
    assert parse_float_list("2,0.5", "--request-rate") == (0.5, 2.0)
    with pytest.raises(BenchConfigError, match="--concurrency"):
        parse_int_list("1,x", "--concurrency")
    with pytest.raises(BenchConfigError, match="--workloads"):
        BenchConfig(backend="vllm", base_url="http://x/v1", output_dir=Path("o"), workloads=("chatty",))
    config = BenchConfig(backend="vllm", base_url="http://x/v1", output_dir=Path("o"), runs=3)
    assert config.requests_per_step(1) == 3
    assert config.requests_per_step(16) == 16
    assert "api_key" not in config.to_record()
