"""What vLLM's router policies do with RAG prompts: `cache_aware` vs `round_robin` on the same workers.

    scripts/start_vllm.sh --workers 2 --port 8101 --max-model-len 2048 --detach   # or your own servers
    .venv/bin/python bench/router_policies.py --workers http://127.0.0.1:8101 http://127.0.0.1:8102

For each policy in turn, a fresh router (scripts/start_router.sh) is started in front of the same workers and
sent the same RAG workload: `--collections` collections, each with its own passages (from the python3.11-doc
HTML, the sample corpus) shared by its `--questions` questions, as ragchat sends them (the system prompt
first, then the passages, then the question), interleaved, `--concurrency` at a time. Every phase starts
its prompts with its own random tag, so no phase finds another's prompts in the workers' prefix caches.

Reported per policy: the prefix-cache hit rate over the phase (the workers' vllm:prefix_cache_hits_total ÷
vllm:prefix_cache_queries_total, deltas summed over the workers), TTFT p50/p95, requests per worker (the
router's vllm_router_processed_requests_total), how the router decided (its
vllm_router_prefix_routing_decisions_total by outcome: `missing_tokens` means cache_aware got no tokens from
the workers and fell back to load), and the ratios cache_aware ÷ round_robin.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import random
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ragchat.inference_bench.client import BenchClient, RequestResult
from ragchat.inference_bench.metrics import Distribution
from ragchat.inference_bench.workloads import RAG_SYSTEM_PROMPT
from ragchat.infra.llm.vllm_metrics import metrics_url_for, parse_router_metrics, scrape

REPO_ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = REPO_ROOT / "scripts" / "start_router.sh"
DOCS = Path("/usr/share/doc/python3.11/html/library")
PAGES = ("threading", "queue", "asyncio-task", "sched", "secrets", "tempfile", "json", "csv")
QUESTIONS = (
    "How do I start it?",
    "What does it return?",
    "Which errors can it raise?",
    "Is it safe to use from several threads?",
    "Give a short example.",
    "What are the main classes?",
    "How do I stop or close it?",
    "What changed in recent versions?",
    "Which arguments are optional?",
    "How does it handle timeouts?",
)


def passages(docs: Path, page: str, chars: int) -> str:
    """The first `chars` characters of a documentation page's text, as numbered passages."""
    text = re.sub(r"<[^>]+>", " ", (docs / f"{page}.html").read_text(errors="replace"))
    words = html.unescape(text).split()
    body = " ".join(words[60:])[:chars]  # past the navigation
    size = max(len(body) // 4, 1)
    return "\n\n".join(f"[{i + 1}] {page} — {body[i * size : (i + 1) * size]}" for i in range(4))


def workload(
    docs: Path, tag: str, collections: int, questions: int, chars: int, seed: int
) -> list[list[dict[str, str]]]:
    """The phase's requests: collection c's passages shared by its questions, the order shuffled."""
    requests = []
    for c in range(collections):
        shared = passages(docs, PAGES[c % len(PAGES)], chars)
        for q in range(questions):
            question = f"{QUESTIONS[q % len(QUESTIONS)]} (question {q + 1})"
            requests.append(
                [
                    {"role": "system", "content": f"[{tag}] {RAG_SYSTEM_PROMPT}"},
                    {"role": "user", "content": f"Passages:\n\n{shared}\n\nQuestion: {question}"},
                ]
            )
    random.Random(seed).shuffle(requests)
    return requests


async def prefix_counters(workers: list[str]) -> dict[str, tuple[float, float]]:
    """(hits, queries) of each worker's prefix cache, from its /metrics."""
    async with httpx.AsyncClient(timeout=10) as http:
        samples = [await scrape(http, metrics_url_for(w)) for w in workers]
    return {
        w: (s.get("prefix_cache_hits") or 0.0, s.get("prefix_cache_queries") or 0.0)
        for w, s in zip(workers, samples, strict=True)
    }


async def run_phase(args: argparse.Namespace, policy: str, port: int, metrics_port: int) -> dict[str, Any]:
    start = [str(LAUNCHER), "--workers", *args.workers, "--policy", policy, "--port", str(port)]
    start += ["--metrics-port", str(metrics_port), "--detach"]
    await asyncio.to_thread(subprocess.run, start, check=True, stdout=subprocess.DEVNULL)
    try:
        tag = secrets.token_hex(4)
        requests = workload(args.docs, tag, args.collections, args.questions, args.passage_chars, args.seed)
        client = BenchClient(f"http://127.0.0.1:{port}/v1", api_key=None, max_connections=args.concurrency)
        before = await prefix_counters(args.workers)
        gate = asyncio.Semaphore(args.concurrency)

        async def one(index: int, messages: list[dict[str, str]]) -> RequestResult:
            async with gate:
                body = client.chat_body(
                    args.model,
                    messages,
                    max_tokens=args.max_tokens,
                    temperature=0.0,
                    ignore_eos=True,
                )
                return await client.stream_chat(index, body)

        try:
            results = await asyncio.gather(*(one(i, m) for i, m in enumerate(requests)))
        finally:
            await client.aclose()
        after = await prefix_counters(args.workers)
        async with httpx.AsyncClient(timeout=10) as http:
            router_text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        routed = parse_router_metrics(router_text)
    finally:
        stop = [str(LAUNCHER), "--stop", "--port", str(port)]
        await asyncio.to_thread(subprocess.run, stop, check=False, stderr=subprocess.DEVNULL)
    hits = {w: after[w][0] - before[w][0] for w in args.workers}
    queries = {w: after[w][1] - before[w][1] for w in args.workers}
    ttft = Distribution.of_seconds([r.ttft_s for r in results if r.success and r.ttft_s is not None])
    return {
        "policy": policy,
        "requests": len(results),
        "failed": sum(not r.success for r in results),
        "prefix_cache_hit_rate": sum(hits.values()) / sum(queries.values())
        if sum(queries.values())
        else None,
        "ttft_ms_p50": ttft.p50,
        "ttft_ms_p95": ttft.p95,
        "routing_decisions": routing_decisions(router_text),
        "workers": {
            w: {
                "routed_requests": routed.get(w, {}).get("processed_requests", 0.0),
                "prefix_cache_hit_rate": hits[w] / queries[w] if queries[w] else None,
                "prompt_tokens_queried": queries[w],
            }
            for w in args.workers
        },
    }


def routing_decisions(text: str) -> dict[str, float]:
    """The router's cache_aware decisions by outcome (empty for policies that record none)."""
    outcomes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vllm_router_prefix_routing_decisions_total":
                outcome = sample.labels.get("outcome", "?")
                outcomes[outcome] = outcomes.get(outcome, 0.0) + float(sample.value)
    return outcomes


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", nargs="+", required=True, help="the vLLM servers' root URLs")
    parser.add_argument("--policies", nargs="+", default=["cache_aware", "round_robin"])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the python3.11-doc library pages")
    parser.add_argument("--collections", type=int, default=4)
    parser.add_argument("--questions", type=int, default=8, help="questions per collection")
    parser.add_argument("--passage-chars", type=int, default=3600, help="~4 characters a token")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8131, help="the routers' port (one at a time)")
    parser.add_argument("--metrics-port", type=int, default=29131)
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    args.workers = [w.rstrip("/").removesuffix("/v1") for w in args.workers]
    phases = [await run_phase(args, policy, args.port, args.metrics_port) for policy in args.policies]
    record: dict[str, Any] = {
        "phases": phases,
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
    }
    if len(phases) == 2:
        a, b = phases
        record["ratios"] = {
            key: ratio(a[key], b[key]) for key in ("prefix_cache_hit_rate", "ttft_ms_p50", "ttft_ms_p95")
        }
    text = json.dumps(record, indent=2, default=str)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    for phase in phases:
        share = ", ".join(
            f"{w.rsplit(':', 1)[1]}: {v['routed_requests']:.0f}" for w, v in phase["workers"].items()
        )
        rate = phase["prefix_cache_hit_rate"]
        print(
            f"{phase['policy']:>12}: hit rate {rate:.1%}  TTFT p50 {phase['ttft_ms_p50']:.0f} ms  "
            f"p95 {phase['ttft_ms_p95']:.0f} ms  failed {phase['failed']}  requests per worker {share}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    asyncio.run(main())
