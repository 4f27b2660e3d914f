"""Time to first token added by ragchat: TTFT through the app minus TTFT direct to the same vLLM with the
same final prompt, at 1, 4 and 16 concurrent users; and vLLM's prefix-cache hit rate over repeated questions.

Setup: a temporary store holding the handbook corpus (tests/data/chat_corpus) and eight Python docs pages
(558 chunks with the default settings: 200-token chunks, k = 5); the app runs as the guide starts it
(`uvicorn app.main:app`, its own process); this process builds the same services on the same store and
asks `ChatService.prepare` for each question's final prompt, which it sends directly to vLLM. Every pair
of requests is checked to carry the same prompt (same `usage.prompt_tokens`).

Method: both paths are warmed first, so every measured request finds its prompt in vLLM's prefix cache:
the difference is what the app adds (retrieval, prompt budget, proxying), not prefill luck. Blocks of
requests alternate app / direct (ABBA...) so drift hits both. TTFT = request sent -> first chunk with
content, measured by the same `openai` client code on both paths; answers are `--max-tokens` long.
The prefix-cache hit rate comes from vLLM's /metrics (`vllm:prefix_cache_hits_total` /
`vllm:prefix_cache_queries_total`) over passes of the same questions through the app; give the bench a
vLLM nobody else uses, freshly started, or pass 1 is not cold.

    scripts/start_vllm.sh --preset cpu --port 8031 --detach
    .venv/bin/python bench/app_overhead.py --vllm-url http://127.0.0.1:8031/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from ragchat.config import Settings
from ragchat.container import build_services
from ragchat.infra.llm import ChatMessage

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = REPO / "tests" / "data" / "chat_corpus"
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/library")
DISTRACTORS = ("asyncio-task", "threading", "secrets", "hashlib", "sched", "signal", "queue", "tempfile")
QUESTIONS = (
    "How do I rotate an API key?",
    "How long does a refund take?",
    "How do I roll back a release?",
    "Who do I page during an outage?",
    "When are invoices issued?",
    "What happens if the on-call engineer does not answer?",
    "When are production releases frozen?",
    "How do I revoke an API key immediately?",
)
STAGES = ("query_embedding", "retrieval", "prompt_assembly", "ttft")


@dataclass
class Request:
    question: str
    messages: list[dict[str, str]]  # the final prompt, as ragchat sends it to vLLM
    prompt_tokens: int = 0


@dataclass
class Samples:
    app: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def scrape(url: str) -> dict[str, float]:
    """Prometheus text -> {series: value} (series = name plus its labels, as printed)."""
    values: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        text = (await http.get(url)).text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def summed(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


async def ttft_and_usage(
    client: openai.AsyncOpenAI, model: str, messages: list[dict[str, str]], max_tokens: int
) -> tuple[float, int]:
    """Seconds to the first content chunk, and the prompt tokens vLLM counted."""
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model=model,
        messages=cast("list[ChatCompletionMessageParam]", messages),
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    first: float | None = None
    prompt_tokens = 0
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        if chunk.usage is not None:
            prompt_tokens = chunk.usage.prompt_tokens
    if first is None:
        raise RuntimeError(f"no content came back from {client.base_url}")
    return first, prompt_tokens


async def run_block(users: int, jobs: list[Request], send: Any, into: list[float]) -> None:
    """`users` concurrent users working through `jobs`; TTFTs appended to `into`."""
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def user() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            ttft, _ = await send(job)
            into.append(ttft)

    await asyncio.gather(*(user() for _ in range(users)))


def cpu_seconds(session: int) -> float:
    """User + system CPU time so far of every process in `session` (the app, its workers, their threads)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[3]) == session:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def start_app(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    """The app as the guide starts it, or as `ragchat serve --workers N` when `workers` > 1."""
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command = [sys.executable, "-m", "ragchat", "serve", "--workers", str(workers)]
        command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the app exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError("the app did not answer /health within 300 s")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    vllm_url = args.vllm_url.rstrip("/")
    vllm_root = vllm_url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=10) as http:
        model = (await http.get(f"{vllm_url}/models")).json()["data"][0]["id"]
    data_dir = Path(tempfile.mkdtemp(prefix="ragchat-overhead-"))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data_dir,
        vllm_base_url=vllm_url,
        llm_temperature=0.0,
        auth="off",
        host="127.0.0.1",
    )
    services = await build_services(settings)
    app: subprocess.Popen[bytes] | None = None
    try:
        report = services.ingest.ingest_paths(
            [HANDBOOK, *(PYTHON_DOCS / f"{name}.html" for name in DISTRACTORS)], collection="default"
        )
        requests = []
        for question in QUESTIONS:
            prepared = await services.chat.prepare(
                [ChatMessage("user", question)], max_tokens=args.max_tokens
            )
            messages = [{"role": m.role, "content": m.content} for m in prepared.prompt.messages]
            requests.append(Request(question, messages))

        port = free_port()
        env = {
            **os.environ,
            "RAGCHAT_DATA_DIR": str(data_dir),
            "VLLM_BASE_URL": vllm_url,
            "LLM_TEMPERATURE": "0",
            "HF_HUB_OFFLINE": "1",
            "RAGCHAT_AUTH": "off",  # measures the app's relay cost; bench/auth_cost.py measures auth's
            "RAGCHAT_HOST": "127.0.0.1",
            **dict(item.split("=", 1) for item in args.app_env),
        }
        app = await asyncio.to_thread(start_app, env, port, args.workers)
        app_url = f"http://127.0.0.1:{port}"
        app_client = openai.AsyncOpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0)
        direct_client = openai.AsyncOpenAI(base_url=vllm_url, api_key="unused", max_retries=0)

        async def via_app(job: Request) -> tuple[float, int]:
            return await ttft_and_usage(
                app_client, "ragchat", [{"role": "user", "content": job.question}], args.max_tokens
            )

        async def direct(job: Request) -> tuple[float, int]:
            return await ttft_and_usage(direct_client, model, job.messages, args.max_tokens)

        # 1. Prefix-cache hit rate over passes of the same questions (first thing the server sees).
        hit_rates = []
        for _ in range(args.passes):
            before = await scrape(f"{vllm_root}/metrics")
            for job in requests:
                await via_app(job)
            after = await scrape(f"{vllm_root}/metrics")
            hits = summed(after, "vllm:prefix_cache_hits_total") - summed(
                before, "vllm:prefix_cache_hits_total"
            )
            queries = summed(after, "vllm:prefix_cache_queries_total") - summed(
                before, "vllm:prefix_cache_queries_total"
            )
            hit_rates.append(hits / queries if queries else 0.0)

        # 2. Same prompt on both paths? (Also warms both.)
        for job in requests:
            _, through_app = await via_app(job)
            _, straight = await direct(job)
            if through_app != straight:
                raise RuntimeError(f"prompts differ for {job.question!r}: {through_app} vs {straight} tokens")
            job.prompt_tokens = straight

        # 3. TTFT at each concurrency, alternating blocks.
        results: dict[int, dict[str, Any]] = {}
        for users in args.users:
            samples = Samples()
            jobs = [requests[i % len(requests)] for i in range(users * args.per_user)]
            stages_before = await scrape(f"{app_url}/metrics")
            app_cpu = 0.0
            for round_ in range(args.rounds):
                order = (("app", via_app), ("direct", direct))
                for name, send in order if round_ % 2 == 0 else tuple(reversed(order)):
                    cpu_before = cpu_seconds(app.pid)
                    await run_block(users, jobs, send, getattr(samples, name))
                    if name == "app":
                        app_cpu += cpu_seconds(app.pid) - cpu_before
            stages_after = await scrape(f"{app_url}/metrics")
            stage_means = {}
            for stage in STAGES:
                label = f'ragchat_stage_duration_seconds_sum{{stage="{stage}"}}'
                count = f'ragchat_stage_duration_seconds_count{{stage="{stage}"}}'
                n = stages_after.get(count, 0) - stages_before.get(count, 0)
                total = stages_after.get(label, 0) - stages_before.get(label, 0)
                stage_means[stage] = total / n * 1000 if n else None
            row = {
                "users": users,
                "requests_per_path": len(samples.app),
                "app_p50_ms": percentile(samples.app, 50) * 1000,
                "direct_p50_ms": percentile(samples.direct, 50) * 1000,
                "app_p95_ms": percentile(samples.app, 95) * 1000,
                "direct_p95_ms": percentile(samples.direct, 95) * 1000,
                "app_stage_means_ms": stage_means,
                "app_cpu_ms_per_request": app_cpu / len(samples.app) * 1000,
            }
            row["added_p50_ms"] = row["app_p50_ms"] - row["direct_p50_ms"]
            row["added_p95_ms"] = row["app_p95_ms"] - row["direct_p95_ms"]
            results[users] = row
            print(json.dumps(row), flush=True)
        await app_client.close()
        await direct_client.close()
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "vllm_model": model,
            "corpus": {"documents": len(report.added), "chunks": report.chunk_count},
            "prompt_tokens": [job.prompt_tokens for job in requests],
            "max_tokens": args.max_tokens,
            "app_env": args.app_env,
            "prefix_cache_hit_rate_by_pass": hit_rates,
            "ttft": list(results.values()),
        }
    finally:
        if app is not None:
            app.terminate()
            app.wait(timeout=30)
        await services.aclose()


def print_markdown(result: dict[str, Any]) -> None:
    print(
        "\n| users | requests/path | TTFT p50 app / direct | added p50 | TTFT p95 app / direct | added p95 "
        "| app retrieval (query embedding), mean | app CPU / request |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in result["ttft"]:
        stages = {k: v or 0.0 for k, v in row["app_stage_means_ms"].items()}
        print(
            f"| {row['users']} | {row['requests_per_path']} "
            f"| {row['app_p50_ms']:.0f} / {row['direct_p50_ms']:.0f} ms | **{row['added_p50_ms']:+.1f} ms** "
            f"| {row['app_p95_ms']:.0f} / {row['direct_p95_ms']:.0f} ms | **{row['added_p95_ms']:+.1f} ms** "
            f"| {stages['retrieval']:.1f} ({stages['query_embedding']:.1f}) ms "
            f"| {row['app_cpu_ms_per_request']:.1f} ms |"
        )
    rates = ", ".join(f"{rate:.0%}" for rate in result["prefix_cache_hit_rate_by_pass"])
    print(f"\nprefix-cache hit rate by pass over the same {len(QUESTIONS)} questions: {rates}")


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vllm-url", required=True, help="OpenAI base URL of a vLLM nobody else uses")
    parser.add_argument("--users", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels")
    parser.add_argument("--per-user", type=int, default=6, help="requests per user per block (default 6)")
    parser.add_argument("--rounds", type=int, default=4, help="app/direct block pairs per level (default 4)")
    parser.add_argument("--passes", type=int, default=3, help="passes for the prefix-cache hit rate")
    parser.add_argument("--max-tokens", type=int, default=16, help="answer length (default 16)")
    parser.add_argument(
        "--app-env", nargs="*", default=[], metavar="NAME=VALUE", help="extra environment for the app process"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="app worker processes (>1: `ragchat serve --workers N`)"
    )
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    args = parser.parse_args()
    result = asyncio.run(main(args))
    print_markdown(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
