"""Do continued conversations reuse vLLM's prefix cache? Today's layout against the continued layout.

Scripted four-turn conversations over tests/data/chat_corpus (a made-up handbook), each run twice on the
same vLLM server in the same run, through ragchat's own `ChatService` (real embedding model, real store,
real retrieval and budget):

- `stateless`: the client sends the whole history each turn (today's layout: every passage of the turn
  in the system message, then the history, then the question; `PromptBuilder.build`);
- `continued`: the conversation is continued from stored turns (`conversation_id`; the layout of
  `PromptBuilder.build_continued`, where turn N+1's prompt starts with turn N's prompt and answer).

For turns 2-4 it reads vLLM's `/metrics` counters `vllm:prefix_cache_hits_total` and
`vllm:prefix_cache_queries_total` just before and after each request (hit rate = hits / queries, in prompt
tokens), and the time from the question's arrival (before retrieval) to the first answer token (TTFT).
A request during which the server also served someone else's (queries grew by more than this request's
prompt tokens) is left out of the hit rate and counted as `disturbed`. Each conversation (of each layout)
runs on its own copy of the handbook, stored under file names with a fresh random tag: the passage labels
in its prompts are its own, so no conversation finds another's (or an earlier run's) passages in the cache,
only the byte-stable system prompt and its own earlier turns. The order of the two layouts alternates from
one conversation to the next.

Run (vLLM at VLLM_BASE_URL; the shared dev server by default):

    .venv/bin/python bench/conversation_prefix_cache.py --rounds 3 \
        --json bench/results/conversation_prefix_cache-shared-server.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from ragchat.config import Settings
from ragchat.container import Services, build_services
from ragchat.core.chat import DeltaEvent, DoneEvent, PreparedChat
from ragchat.inference_bench.prometheus import PREFIX_HITS, PREFIX_QUERIES, parse_metrics
from ragchat.infra.conversations import TurnRecord
from ragchat.infra.llm import ChatMessage

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "chat_corpus"
SCRIPTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "How do I create an API key?",
        "Where should I keep it?",
        "How do I rotate it?",
        "How long does the old one keep working?",
    ),
    (
        "How do I release a build to staging?",
        "And to production?",
        "How do I undo a release?",
        "Are there times when releases are not allowed?",
    ),
    (
        "Who do I page during an outage?",
        "What happens if they don't acknowledge it?",
        "I sent a page by mistake. How do I take it back?",
        "Who approves a production release?",
    ),
    (
        "When are invoices issued?",
        "Can they be paid by card?",
        "How do customers get a refund?",
        "How long does it take?",
    ),
    (
        "How do I upgrade from Starter to Team?",
        "And the other way round?",
        "How do I revoke an API key right away?",
        "What happens to requests that use it?",
    ),
)
MODES = ("stateless", "continued")


@dataclass
class Turn:
    """One measured request."""

    mode: str
    conversation: int
    turn: int
    ttft_s: float
    prompt_tokens: int
    hits: float
    queries: float

    @property
    def disturbed(self) -> bool:
        """Someone else's request ran at the same time (the counters grew by more than this one)."""
        return self.queries > self.prompt_tokens


@dataclass
class ModeSummary:
    mode: str
    requests: int
    disturbed: int
    hit_rate: float | None
    ttft_median_s: float
    ttft_mean_s: float
    prompt_tokens_mean: float
    ttft_by_turn_s: dict[int, float] = field(default_factory=dict)


async def scrape(http: httpx.AsyncClient, root: str) -> tuple[float, float]:
    snapshot = parse_metrics((await http.get(f"{root}/metrics")).text)
    return snapshot.get(PREFIX_HITS) or 0.0, snapshot.get(PREFIX_QUERIES) or 0.0


async def ask(services: Services, prepared_at: float, prepared: PreparedChat) -> tuple[str, float, int]:
    """Stream the answer; (answer, seconds from `prepared_at` to the first token, prompt tokens)."""
    parts: list[str] = []
    first: float | None = None
    prompt_tokens = prepared.prompt.prompt_tokens
    async for event in services.chat.generate(prepared):
        if isinstance(event, DeltaEvent):
            if first is None:
                first = time.perf_counter()
            parts.append(event.text)
        elif isinstance(event, DoneEvent) and event.usage is not None:
            prompt_tokens = event.usage.prompt_tokens
    return "".join(parts), (first or time.perf_counter()) - prepared_at, prompt_tokens


def private_copy(services: Services, folder: Path) -> str:
    """The handbook stored again under tagged file names, in a collection of its own; its name."""
    tag = secrets.token_hex(4)
    copy = folder / tag
    copy.mkdir()
    for path in CORPUS.glob("*.md"):
        (copy / f"{path.stem}-{tag}.md").write_bytes(path.read_bytes())
    services.ingest.ingest_paths([copy], collection=f"handbook-{tag}")
    return f"handbook-{tag}"


async def converse(
    services: Services,
    http: httpx.AsyncClient,
    root: str,
    mode: str,
    number: int,
    questions: Sequence[str],
    collection: str,
) -> list[Turn]:
    history: list[ChatMessage] = []
    stored: list[TurnRecord] = []
    measured: list[Turn] = []
    for position, question in enumerate(questions):
        hits_before, queries_before = await scrape(http, root)
        started = time.perf_counter()
        if mode == "stateless":
            prepared = await services.chat.prepare(
                [*history, ChatMessage("user", question)], collection=collection
            )
        else:
            prepared = await services.chat.prepare(
                [ChatMessage("user", question)], collection=collection, earlier=stored
            )
        answer, ttft, prompt_tokens = await ask(services, started, prepared)
        hits_after, queries_after = await scrape(http, root)
        history += [ChatMessage("user", question), ChatMessage("assistant", answer)]
        stored.append(
            TurnRecord(
                id=f"t{position}",
                conversation_id=f"c{number}",
                position=position,
                question=question,
                answer=answer,
                model=prepared.model,
                sources=[],
                prompt_chunks=[p.chunk_id for p in prepared.prompt.added],
                created_at="",
            )
        )
        if position > 0:
            measured.append(
                Turn(
                    mode=mode,
                    conversation=number,
                    turn=position + 1,
                    ttft_s=ttft,
                    prompt_tokens=prompt_tokens,
                    hits=hits_after - hits_before,
                    queries=queries_after - queries_before,
                )
            )
    return measured


def summarise(mode: str, turns: list[Turn]) -> ModeSummary:
    mine = [t for t in turns if t.mode == mode]
    clean = [t for t in mine if not t.disturbed]
    queries = sum(t.queries for t in clean)
    by_turn: dict[int, float] = {}
    for number in sorted({t.turn for t in mine}):
        by_turn[number] = statistics.median(t.ttft_s for t in mine if t.turn == number)
    return ModeSummary(
        mode=mode,
        requests=len(mine),
        disturbed=len(mine) - len(clean),
        hit_rate=sum(t.hits for t in clean) / queries if queries else None,
        ttft_median_s=statistics.median(t.ttft_s for t in mine),
        ttft_mean_s=statistics.fmean(t.ttft_s for t in mine),
        prompt_tokens_mean=statistics.fmean(t.prompt_tokens for t in mine),
        ttft_by_turn_s=by_turn,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="Times each scripted conversation is run per layout."
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="Answer length (answers become history).")
    parser.add_argument("--json", type=Path, help="Write every measurement and the summary here.")
    args = parser.parse_args()
    base_url = os.environ.get("VLLM_BASE_URL", "http://127.0.0.1:8000/v1")
    root = base_url.removesuffix("/v1")
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(data_dir),
            vllm_base_url=base_url,
            llm_max_tokens=args.max_tokens,
            llm_temperature=0.0,
            auth="off",
            host="127.0.0.1",
        )
        services = await build_services(settings)
        try:
            info = await services.llm.model_info()
            turns: list[Turn] = []
            async with httpx.AsyncClient(timeout=30) as http:
                number = 0
                for _ in range(args.rounds):
                    for questions in SCRIPTS:
                        order = MODES if number % 2 == 0 else MODES[::-1]
                        for mode in order:
                            collection = private_copy(services, Path(data_dir))
                            turns += await converse(services, http, root, mode, number, questions, collection)
                        number += 1
        finally:
            await services.aclose()
    summaries = {mode: summarise(mode, turns) for mode in MODES}
    old, new = summaries["stateless"], summaries["continued"]
    print(
        f"model {info.model} at {base_url}, max_model_len {info.max_model_len}, "
        f"{number} conversations per layout"
    )
    print(
        f"{'layout':<10} {'requests':>8} {'disturbed':>9} {'hit rate':>8} {'TTFT p50':>9} {'TTFT mean':>9} "
        f"{'prompt tok':>10}"
    )
    for summary in (old, new):
        rate = "n/a" if summary.hit_rate is None else f"{summary.hit_rate:.1%}"
        print(
            f"{summary.mode:<10} {summary.requests:>8} {summary.disturbed:>9} {rate:>8} "
            f"{summary.ttft_median_s * 1000:>7.0f}ms {summary.ttft_mean_s * 1000:>7.0f}ms "
            f"{summary.prompt_tokens_mean:>10.0f}"
        )
    for turn in sorted(new.ttft_by_turn_s):
        print(
            f"turn {turn}: TTFT p50 stateless {old.ttft_by_turn_s[turn] * 1000:.0f} ms, "
            f"continued {new.ttft_by_turn_s[turn] * 1000:.0f} ms"
        )
    print(f"TTFT p50 ratio continued/stateless (turns 2-4): {new.ttft_median_s / old.ttft_median_s:.2f}")
    if old.hit_rate is not None and new.hit_rate is not None and old.hit_rate > 0:
        print(f"prefix-cache hit rate ratio continued/stateless: {new.hit_rate / old.hit_rate:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": info.model,
                    "base_url": base_url,
                    "summaries": {mode: asdict(summary) for mode, summary in summaries.items()},
                    "turns": [{**asdict(t), "disturbed": t.disturbed} for t in turns],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
