"""Which retrieval query finds the right passage for a follow-up question? (chooses ragchat's method)

Conversations over tests/data/chat_corpus (a made-up handbook, so no model knows it), each ending in a
follow-up whose answer lies in one known section ("And how do I undo that?"); two switch topic instead,
so that leaning on the history is penalised too. Strategies compared, with the real embedding model, the
real store and hybrid retrieval:

- `question`: the last user message alone;
- `previous+question`: the previous user question and the last one;
- `last-3-questions`: the last three user messages (ragchat's `retrieval_query`);
- `llm-condensed`: the LLM rewrites the follow-up as a standalone question (the usual "condense" step),
  here with the served model (SmolLM2-135M-Instruct on the CPU default);
- `ragchat`: what ragchat does (`retrieve_for_conversation`): reciprocal rank fusion of the `question`
  and `last-3-questions` results, each 2k deep.

Run (vLLM serving at VLLM_BASE_URL, e.g. the dev server):

    VLLM_BASE_URL=http://127.0.0.1:8000/v1 .venv/bin/python bench/multiturn_retrieval.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ragchat.config import Settings
from ragchat.container import Services, build_services
from ragchat.core.chat import retrieval_query, retrieve_for_conversation
from ragchat.domain import Passage
from ragchat.infra.llm import ChatMessage

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "chat_corpus"
# Real pages that share the handbook's verbs (release, cancel, key, queue, signal...), as distractors.
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/library")
DISTRACTORS = ("asyncio-task", "threading", "secrets", "hashlib", "sched", "signal", "queue", "tempfile")
COLLECTION = "handbook"


@dataclass(frozen=True)
class Case:
    turns: tuple[str, ...]  # user, assistant, user, ... ending with the follow-up
    document: str
    heading: str


CASES = (
    Case(("How do I release a build to staging?",
          "Run `orbitctl release --env staging --build <build-id>` [1].",
          "And how do I undo that?"), "deployments.md", "Rolling back a release"),
    Case(("How do I rotate an API key?",
          "Use `orbitctl keys rotate <key-name> --grace 24h` [1].",
          "How long does the old one keep working?"), "api-keys.md", "Rotating an API key"),
    Case(("Who do I page during an outage?",
          "Page the on-call engineer with `/page orbit-oncall` in #incidents [1].",
          "What happens if they don't acknowledge it?"), "on-call.md", "Escalation"),
    Case(("How do I page the on-call engineer?",
          "Send `/page orbit-oncall` in the #incidents channel [1].",
          "I sent it by mistake. How do I take it back?"), "on-call.md", "Cancelling a page"),
    Case(("How do customers get a refund?",
          "They request it from the billing page with the invoice number [1].",
          "How long does it take?"), "billing.md", "Refunds"),
    Case(("When are invoices issued?",
          "On the first working day of each month [1].",
          "Can they be paid by card?"), "billing.md", "Invoices"),
    Case(("How do I create an API key?",
          "In the Orbit console under Settings > Access > API keys [1].",
          "Where should I keep it?"), "api-keys.md", "Creating an API key"),
    Case(("How do I create an API key?",
          "In the Orbit console under Settings > Access > API keys [1].",
          "And how do I cancel it right away?"), "api-keys.md", "Revoking an API key"),
    Case(("How do I release to production?",
          "Use `--env production`; a second engineer approves it [1].",
          "Are there times when that is not allowed?"), "deployments.md", "Release freezes"),
    Case(("How do I upgrade from Starter to Team?",
          "Upgrades take effect immediately and are billed pro rata [1].",
          "And the other way round?"), "billing.md", "Changing plans"),
    Case(("How do I release a build?",
          "Run `orbitctl release` with the environment and build id [1].",
          "Does it notify anyone?",
          "Yes: #releases hears when the canary pods are healthy [1].",
          "And how do I revert it?"), "deployments.md", "Rolling back a release"),
    Case(("What does a rollback do to database migrations?",
          "Nothing: migrations are not reverted; write a forward migration [1].",
          "How long does it take?"), "deployments.md", "Rolling back a release"),
    Case(("How do I rotate an API key?",
          "Use `orbitctl keys rotate <key-name> --grace 24h` [1].",
          "When does the on-call rotation change?"), "on-call.md", "Paging the on-call engineer"),
    Case(("How do I roll back a release?",
          "Run `orbitctl rollback --env staging --to <previous-release-id>` [1].",
          "How do I request a refund?"), "billing.md", "Refunds"),
)  # fmt: skip

CONDENSE_SYSTEM = (
    "Rewrite the user's last question so that it can be understood without the conversation. "
    "Reply with the rewritten question only."
)


def conversation(case: Case) -> list[ChatMessage]:
    roles = ("user", "assistant")
    return [ChatMessage(roles[i % 2], text) for i, text in enumerate(case.turns)]  # type: ignore[arg-type]


def is_right(passage: Passage, case: Case) -> bool:
    return Path(passage.document_path).name == case.document and passage.heading.endswith(case.heading)


async def condensed(services: Services, turns: list[ChatMessage]) -> str:
    transcript = "\n".join(f"{m.role.capitalize()}: {m.content}" for m in turns)
    messages = [
        ChatMessage("system", CONDENSE_SYSTEM),
        ChatMessage("user", f"Conversation:\n{transcript}\n\nRewritten last question:"),
    ]
    parts = [d.text async for d in services.llm.stream(messages, max_tokens=48, temperature=0.0)]
    return "".join(parts).strip() or turns[-1].content


Strategy = Callable[[list[ChatMessage]], Awaitable[list[Passage]]]


@dataclass
class Tally:
    first: int = 0
    in_top_k: int = 0
    seconds: float = 0.0
    queries: int = 0


async def run_once(
    k: int, with_distractors: bool, tallies: dict[str, Tally], rewrites: dict[int, str]
) -> str:
    """Ingest into a fresh store (new chunk ids, so ties fall differently) and score every strategy."""
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(data_dir),
            chunk_tokens=100,
            chunk_overlap_tokens=0,
            vllm_base_url=os.environ.get("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"),
        )
        services = await build_services(settings)
        try:
            distractors = [PYTHON_DOCS / f"{name}.html" for name in DISTRACTORS] if with_distractors else []
            report = services.ingest.ingest_paths([CORPUS, *distractors], collection=COLLECTION)

            def by_query(make: Callable[[list[ChatMessage]], str]) -> Strategy:
                async def strategy(turns: list[ChatMessage]) -> list[Passage]:
                    return await services.retriever.search(make(turns), collection=COLLECTION, k=k)

                return strategy

            async def llm_condensed(turns: list[ChatMessage]) -> list[Passage]:
                index = next(i for i, case in enumerate(CASES) if conversation(case) == turns)
                if index not in rewrites:  # the LLM answers alike at temperature 0: ask once per case
                    rewrites[index] = await condensed(services, turns)
                return await services.retriever.search(rewrites[index], collection=COLLECTION, k=k)

            async def ragchat(turns: list[ChatMessage]) -> list[Passage]:
                _, passages = await retrieve_for_conversation(
                    services.retriever, turns, collection=COLLECTION, k=k
                )
                return passages

            strategies: dict[str, Strategy] = {
                "question": by_query(lambda turns: turns[-1].content),
                "previous+question": by_query(
                    lambda turns: "\n".join([m.content for m in turns if m.role == "user"][-2:])
                ),
                "last-3-questions": by_query(retrieval_query),
                "llm-condensed": llm_condensed,
                "ragchat": ragchat,
            }
            for name, strategy in strategies.items():
                tally = tallies.setdefault(name, Tally())
                for case in CASES:
                    cached = name == "llm-condensed" and CASES.index(case) in rewrites
                    started = time.perf_counter()
                    hits = await strategy(conversation(case))
                    if not cached:
                        tally.seconds += time.perf_counter() - started
                        tally.queries += 1
                    tally.first += bool(hits) and is_right(hits[0], case)
                    tally.in_top_k += any(is_right(p, case) for p in hits)
            model = (await services.llm.model_info()).model
            return f"{len(report.added)} documents ({report.chunk_count} chunks), model {model}"
        finally:
            await services.aclose()


async def run(k: int, with_distractors: bool, repeats: int) -> None:
    tallies: dict[str, Tally] = {}
    rewrites: dict[int, str] = {}
    for _ in range(repeats):
        corpus = await run_once(k, with_distractors, tallies, rewrites)
    n = len(CASES) * repeats
    print(f"{len(CASES)} conversations x {repeats} fresh ingests, {corpus}, k={k}\n")
    print("| strategy | right passage ranked 1st | in top k | mean time per query |")
    print("|---|---|---|---|")
    for name, tally in tallies.items():
        per_query_ms = tally.seconds / max(tally.queries, 1) * 1000
        print(f"| {name} | {tally.first}/{n} | {tally.in_top_k}/{n} | {per_query_ms:.0f} ms |")
    print("\nLLM rewrites:")
    for index, case in enumerate(CASES):
        print(f"- {case.turns[-1]!r} -> {rewrites[index]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k", type=int, default=3, help="passages retrieved per query (default 3)")
    parser.add_argument(
        "--no-distractors", action="store_true", help="the handbook alone, without Python docs pages"
    )
    parser.add_argument("--repeats", type=int, default=3, help="fresh ingests to average over (default 3)")
    args = parser.parse_args()
    asyncio.run(run(args.k, not args.no_distractors, args.repeats))


if __name__ == "__main__":
    main()
