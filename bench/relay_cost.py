"""CPU cost of relaying one streamed token: ragchat's LLM client vs the `openai` client's typed stream.

    .venv/bin/python bench/relay_cost.py [--tokens 256] [--streams 40]

At GPU token rates the app relays thousands of tokens per second in one Python process, so the CPU spent
per token decides how many users one process can serve without slowing their decode. An upstream that
sends vLLM-shaped chunks as fast as it can (`paced_upstream.py` without pacing, in its own process: vLLM
itself would add its own CPU and pacing) is read, in alternating rounds, by
- `openai typed`: `AsyncOpenAI.chat.completions.create(stream=True)` iterated chunk by chunk (what
  ragchat did before 2026-11-26);
- `ragchat`: `OpenAICompatibleChatModel.stream()`, the app's client (an `httpx` stream whose events are
  parsed with `json.loads`);
and this process's CPU time per token is reported (median over rounds), with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from openai import AsyncOpenAI

from ragchat.infra.llm import ChatMessage
from ragchat.infra.llm.openai_compatible import OpenAICompatibleChatModel
from ragchat.infra.llm.providers import VllmProvider

UPSTREAM = Path(__file__).with_name("paced_upstream.py")


async def typed_stream(client: AsyncOpenAI, max_tokens: int) -> int:
    stream = await client.chat.completions.create(
        model="paced", messages=[{"role": "user", "content": "q"}], max_tokens=max_tokens, stream=True
    )
    tokens = 0
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                tokens += 1
    return tokens


async def ragchat_stream(model: OpenAICompatibleChatModel, max_tokens: int) -> int:
    tokens = 0
    async for delta in model.stream([ChatMessage("user", "q")], max_tokens=max_tokens, temperature=0):
        if delta.text:
            tokens += 1
    return tokens


async def measure(port: int, tokens: int, streams: int, rounds: int) -> dict[str, list[float]]:
    base_url = f"http://127.0.0.1:{port}/v1"
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    model = OpenAICompatibleChatModel(
        VllmProvider(base_url, model=None), connect_timeout_s=5, read_timeout_s=30
    )
    paths: dict[str, Callable[[], Awaitable[int]]] = {
        "openai typed": lambda: typed_stream(client, tokens),
        "ragchat": lambda: ragchat_stream(model, tokens),
    }
    for run in paths.values():  # warm up: connections, imports, model discovery
        await run()
    per_token: dict[str, list[float]] = {name: [] for name in paths}
    for round_index in range(rounds):
        order = list(paths) if round_index % 2 == 0 else list(reversed(paths))
        for name in order:
            cpu = time.process_time()
            relayed = sum([await paths[name]() for _ in range(streams)])
            per_token[name].append((time.process_time() - cpu) / relayed * 1e6)
    await client.close()
    await model.aclose()
    return per_token


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=256, help="tokens per streamed answer")
    parser.add_argument("--streams", type=int, default=40, help="answers per round and path")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--port", type=int, default=18931)
    args = parser.parse_args()
    upstream = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--port", str(args.port), "--ttft-ms", "0", "--tpot-ms", "0"]
    )
    try:
        time.sleep(1.0)
        per_token = asyncio.run(measure(args.port, args.tokens, args.streams, args.rounds))
    finally:
        upstream.terminate()
        upstream.wait()
    medians = {name: statistics.median(values) for name, values in per_token.items()}
    print(json.dumps({"per_token_cpu_us": per_token, "medians_us": medians}))
    print(f"\n| client | CPU per token, median of {args.rounds} rounds | vs openai typed |\n|---|---:|---:|")
    for name, value in medians.items():
        print(f"| {name} | {value:.1f} us | {value / medians['openai typed']:.2f}x |")


if __name__ == "__main__":
    main()
