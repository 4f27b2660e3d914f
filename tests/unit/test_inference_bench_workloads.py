"""Benchmark prompts: deterministic from the seed, prefixes shared or not as each workload promises;
and the `/metrics` reader."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ragchat.inference_bench.client import Message
from ragchat.inference_bench.prometheus import (
    KV_USAGE,
    PREFIX_HITS,
    MetricsSnapshot,
    StepMonitor,
    combine_snapshots,
    parse_metrics,
)
from ragchat.inference_bench.report import worker_lines, worker_rows
from ragchat.inference_bench.workloads import (
    RAG_SYSTEM_PROMPT,
    PromptFactory,
    dataset_workload,
    estimate_tokens,
)


def factory(seed: int = 1, tag: str = "t1") -> PromptFactory:
    return PromptFactory(seed=seed, run_tag=tag, rag_passages=3, passage_tokens=40)


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def flat(messages: list[Message]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


async def test_same_seed_same_prompts_other_seed_other_prompts() -> None:
    first, again, other = factory(1).rag(), factory(1).rag(), factory(2).rag()
    assert await first.build(5) == await again.build(5)
    assert await first.build(5) != await other.build(5)
    assert await first.build(5) != await first.build(6)


async def test_rag_requests_share_the_system_prompt_and_nothing_after_it() -> None:
    rag = factory().rag()
    a, b = await rag.build(0), await rag.build(1)
    assert a[0] == b[0] == {"role": "system", "content": RAG_SYSTEM_PROMPT}
    assert a[1]["content"].count("(source: doc-") == 3
    assert a[1]["content"].rstrip().endswith("Cite the passages you use.")
    shared = common_prefix(flat(a), flat(b))
    assert shared == len(flat(a[:1]) + "\nuser: Context passages (set t1-")  # then "0" vs "1"


async def test_prefix_pair_shared_keeps_everything_but_the_question_unique_shares_nothing() -> None:
    made = factory()
    shared, unique = made.rag_shared_prefix(), made.rag_unique_prefix()
    s0, s1 = flat(await shared.build(0)), flat(await shared.build(1))
    u0, u1 = flat(await unique.build(0)), flat(await unique.build(1))
    assert common_prefix(s0, s1) > s0.index("Question:")
    # The unique variant differs within the first characters after the role ("system: [t1-u00000]...").
    assert common_prefix(u0, u1) <= len("system: [t1-u0000")
    # Same shape: the lengths of the pair differ by a few characters only.
    assert abs(len(s0) - len(u0)) < 0.05 * len(s0)


async def test_run_tag_changes_every_prompt_so_runs_do_not_hit_each_others_cache() -> None:
    assert await factory(tag="aaaa").chat().build(3) != await factory(tag="bbbb").chat().build(3)


async def test_long_prompt_is_resized_until_the_counter_says_it_fits() -> None:
    calls: list[int] = []

    async def count(messages: list[Message]) -> int:
        tokens = estimate_tokens(messages)
        calls.append(tokens)
        return tokens

    long = factory().long_context(1500, count)
    messages = await long.build(0)
    assert 0.97 * 1500 <= estimate_tokens(messages) <= 1500
    assert len(calls) >= 2  # the first guess (1.3 tokens per word) was off for this counter


async def test_dataset_file_accepts_prompts_and_message_lists(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "hi"},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    workload = dataset_workload(path)
    assert await workload.build(0) == [{"role": "user", "content": "hi"}]
    assert (await workload.build(1))[0]["role"] == "system"
    assert await workload.build(2) == await workload.build(0)


def test_dataset_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no"}\n')
    with pytest.raises(ValueError, match="line 2 needs a 'prompt'"):
        dataset_workload(bad)
    with pytest.raises(ValueError, match="cannot read"):
        dataset_workload(tmp_path / "missing.jsonl")


METRICS_TEXT = """\
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="smollm2"} 0.25
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="smollm2"} 384.0
vllm:prefix_cache_hits_total{engine="1",model_name="smollm2"} 16.0
vllm:prefix_cache_hits_created{engine="0",model_name="smollm2"} 1.7e+09
vllm:cache_config_info{block_size="128",enable_prefix_caching="True",engine="0"} 1.0
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="smollm2"} 0.0
python_gc_objects_collected_total{generation="0"} 123.0
"""


def test_metrics_reader_sums_label_sets_and_keeps_only_wanted_series() -> None:
    snapshot = parse_metrics(METRICS_TEXT)
    assert snapshot.get(KV_USAGE) == 0.25
    assert snapshot.get(PREFIX_HITS) == 400.0
    assert snapshot.cache_config == {"block_size": "128", "enable_prefix_caching": "True", "engine": "0"}
    assert set(snapshot.values) == {"vllm:kv_cache_usage_perc", "vllm:prefix_cache_hits_total"}


def test_metrics_reader_falls_back_to_the_guides_older_names() -> None:
    snapshot = parse_metrics('vllm:gpu_cache_usage_perc{model_name="m"} 0.5\n')
    assert snapshot.get(KV_USAGE) == 0.5


async def test_step_monitor_reports_counter_deltas_and_gauge_peaks() -> None:
    def page(hits: int, queries: int, kv: float, preemptions: int, waiting: int) -> str:
        return (
            f"vllm:prefix_cache_hits_total {hits}\nvllm:prefix_cache_queries_total {queries}\n"
            f"vllm:kv_cache_usage_perc {kv}\nvllm:num_preemptions_total {preemptions}\n"
            f"vllm:num_requests_waiting {waiting}\n"
        )

    pages = iter([page(100, 400, 0.1, 2, 0), page(150, 500, 0.7, 2, 5)])
    last = page(400, 900, 0.2, 3, 1)

    async def scrape() -> MetricsSnapshot:
        return parse_metrics(next(pages, last))

    monitor = StepMonitor(scrape=scrape, interval_s=0.01)
    await monitor.start()
    await asyncio.sleep(0.1)
    seen = await monitor.stop()

    assert seen.available
    assert seen.prefix_cache_hits == 300 and seen.prefix_cache_queries == 500
    assert seen.prefix_cache_hit_rate == pytest.approx(0.6)
    assert seen.preemptions == 1
    assert seen.peak_kv_cache_usage == pytest.approx(0.7)
    assert seen.peak_requests_waiting == 5


async def test_step_monitor_without_metrics_reports_unavailable() -> None:
    async def scrape() -> None:
        return None

    monitor = StepMonitor(scrape=scrape)
    await monitor.start()
    assert (await monitor.stop()).to_record()["available"] is False


def worker_page(
    finished: int, hits: int, queries: int, generated: int, waiting: int, kv: float
) -> MetricsSnapshot:
    return parse_metrics(
        f'vllm:request_success_total{{finished_reason="stop"}} {finished}\n'
        f'vllm:request_success_total{{finished_reason="length"}} 1\n'
        f"vllm:prefix_cache_hits_total {hits}\nvllm:prefix_cache_queries_total {queries}\n"
        f"vllm:generation_tokens_total {generated}\nvllm:num_requests_waiting {waiting}\n"
        f"vllm:kv_cache_usage_perc {kv}\n"
    )


async def test_step_monitor_behind_the_router_reports_each_worker_and_their_sums() -> None:
    a, b = "http://w:8101", "http://w:8102"
    scrapes = iter(
        [
            combine_snapshots(
                {a: worker_page(10, 0, 100, 50, 0, 0.0), b: worker_page(4, 0, 100, 20, 0, 0.0)}
            ),
            combine_snapshots(
                {a: worker_page(12, 60, 200, 70, 3, 0.4), b: worker_page(5, 10, 150, 30, 1, 0.2)}
            ),
        ]
    )
    last = combine_snapshots(
        {a: worker_page(16, 90, 300, 90, 0, 0.1), b: worker_page(6, 20, 200, 40, 0, 0.0)}
    )

    async def scrape() -> MetricsSnapshot:
        return next(scrapes, last)

    monitor = StepMonitor(scrape=scrape, interval_s=0.01)
    await monitor.start()
    await asyncio.sleep(0.1)
    seen = await monitor.stop()

    assert set(seen.workers) == {a, b}
    first, second = seen.workers[a], seen.workers[b]
    assert (first.requests_finished, first.generation_tokens, first.peak_requests_waiting) == (6, 40, 3)
    assert first.prefix_cache_hit_rate == pytest.approx(90 / 200)
    assert (second.requests_finished, second.generation_tokens, second.peak_requests_waiting) == (2, 20, 1)
    assert second.prefix_cache_hit_rate == pytest.approx(20 / 100)
    # The tier: counters summed over the workers, the queue summed at each scrape, KV-cache use averaged.
    assert (seen.requests_finished, seen.generation_tokens) == (8, 60)
    assert seen.prefix_cache_hit_rate == pytest.approx(110 / 300)
    assert seen.peak_requests_waiting == 4
    assert seen.peak_kv_cache_usage == pytest.approx(0.3)


async def test_a_worker_missing_from_a_scrape_is_unavailable_and_left_out_of_the_sums() -> None:
    a, b = "http://w:8101", "http://w:8102"
    scrapes = iter(
        [
            combine_snapshots(
                {a: worker_page(10, 0, 100, 50, 0, 0.0), b: worker_page(4, 0, 100, 20, 0, 0.0)}
            ),
            combine_snapshots({a: worker_page(13, 30, 160, 80, 0, 0.0)}),  # b stopped answering
        ]
    )

    async def scrape() -> MetricsSnapshot:
        return next(scrapes)

    monitor = StepMonitor(scrape=scrape, interval_s=0)
    await monitor.start()
    seen = await monitor.stop()
    record = seen.to_record()

    assert record["workers"]["http://w:8102"]["available"] is False
    assert record["workers"]["http://w:8101"]["requests_finished"] == 3
    assert (seen.requests_finished, seen.generation_tokens) == (3, 30)

    step = {"workload": "rag", "level": 2, "server": record}
    run = {"steps": [step], "prefix_cache": None}
    assert worker_rows(run) == [
        ["rag", "2", "http://w:8101", "3", "30", "50%", "0", "0%"],
        ["rag", "2", "http://w:8102", "/metrics did not answer", "-", "-", "-", "-"],
    ]
    assert worker_lines(run) == [
        "worker http://w:8101: 3 requests, 30 generated tokens, prefix-cache hit rate 50%",
        "worker http://w:8102: - requests, - generated tokens, prefix-cache hit rate -",
    ]


def test_one_server_has_no_worker_rows() -> None:
    assert worker_rows({"steps": [{"workload": "rag", "level": 1, "server": {"available": True}}]}) == []
