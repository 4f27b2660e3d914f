"""The prompts a benchmark sends: short chat, RAG-shaped, long-context, a user's dataset, and the prefix pair.

Text is generated from `--seed` (pseudo-English sentences from a fixed vocabulary), so a run needs no corpus
and two runs with one seed send prompts of the same shape and length. Each run also carries a random tag
(`run_tag`) inside every prompt: without it, a second run against the same server would find the first run's
prompts in vLLM's prefix cache and report cached TTFTs. Where the tag sits decides what may be shared:

- chat: `(tag-i) question` — nothing but the chat template is shared between requests.
- rag: a byte-stable system prompt shared by every request (as ragchat sends it, so it is cached as in
  production), then K passages and a question unique to the request.
- long: one user message sized to `max_model_len - max_tokens - margin` tokens, unique from its first words.
- prefix pair: `rag-shared` sends the same system prompt and passages with a different question each time;
  `rag-unique` puts the request's tag first, so no request shares a single cache block with another.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ragchat.inference_bench.client import Message

TokenCounter = Callable[[list[Message]], Awaitable[int | None]]

DEFAULT_TOKENS_PER_WORD = 1.3
CHARS_PER_TOKEN_ESTIMATE = 4.0

RAG_SYSTEM_PROMPT = (
    "You are a careful assistant for a team's internal documentation. Answer the user's question using only "
    "the numbered context passages in the user's message. Cite every claim with the number of the passage it "
    "comes from, in square brackets, for example [2]. If the passages do not contain the answer, say that "
    "you do not know and name what is missing; never invent facts, names or numbers. Keep answers short: a "
    "few sentences, or a short list when the question asks for steps. Write in the language of the question."
)

CHAT_QUESTIONS = (
    "Explain what a hash map is in two sentences.",
    "Give me three tips for writing clear commit messages.",
    "What is the difference between a process and a thread?",
    "Summarise the causes of the French Revolution briefly.",
    "How do I reverse a list in Python?",
    "Write a haiku about autumn rain.",
    "Why is the sky blue?",
    "What should I pack for a two-day hike?",
    "Explain recursion to a ten-year-old.",
    "What are the pros and cons of remote work?",
    "How does a refrigerator keep food cold?",
    "Suggest a name for a small bakery.",
    "What is the capital of Australia, and why was it chosen?",
    "How can I improve my sleep?",
    "Describe the water cycle in a few sentences.",
    "What is a good way to learn a new language?",
)

_VOCABULARY_TEXT = (
    "the of and to in is that for it as with was on be by this are from or at an which have not has but "
    "system data server request user model memory cache token network file service value table query index "
    "process thread queue batch latency throughput storage disk record field schema version release update "
    "config option default setting parameter flag limit size length buffer block page segment chunk stream "
    "client session connection protocol header payload message event signal error warning failure retry "
    "timeout deadline budget quota policy rule check test build deploy install upgrade restore backup "
    "document section chapter paragraph sentence passage source reference citation answer question "
    "team project owner reviewer operator engineer customer account invoice order payment shipment "
    "report metric dashboard alert incident outage recovery capacity planning forecast estimate target "
    "small large fast slow stable careful simple complex early late new old first last next previous "
    "must should can may will would often usually rarely always never only also still already "
    "reads writes stores returns accepts rejects sends receives starts stops runs waits holds keeps "
    "increases reduces measures compares counts checks loads saves opens closes locks releases "
    "each every any all some most several many few one two three four five ten hundred thousand "
    "when where while after before during between under over within without across through"
)
_VOCABULARY = tuple(_VOCABULARY_TEXT.split())


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(str(part) for part in parts))


def generate_text(rng: random.Random, words: int) -> str:
    """`words` words of pseudo-English sentences (5-18 words each)."""
    out: list[str] = []
    while len(out) < words:
        length = min(rng.randint(5, 18), words - len(out))
        sentence = [rng.choice(_VOCABULARY) for _ in range(length)]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        out.extend(sentence)
    return " ".join(out)


def _rag_question(rng: random.Random) -> str:
    first, second = rng.sample(_VOCABULARY[40:], 2)
    return (
        f"According to the passages, how does the {first} relate to the {second}? Cite the passages you use."
    )


@dataclass(frozen=True)
class Workload:
    """A named prompt family; `build(i)` returns the messages of the workload's i-th request."""

    name: str
    description: str
    build: Callable[[int], Awaitable[list[Message]]]


@dataclass(frozen=True)
class PromptFactory:
    """Makes the run's workloads from the seed, the run tag and the measured tokens-per-word ratio."""

    seed: int
    run_tag: str
    rag_passages: int
    passage_tokens: int
    tokens_per_word: float = DEFAULT_TOKENS_PER_WORD

    def _passage_words(self) -> int:
        return max(4, round(self.passage_tokens / self.tokens_per_word))

    def _passages(self, stream: str, index: int) -> str:
        blocks = []
        for k in range(self.rag_passages):
            rng = _rng(self.seed, stream, index, k)
            source = f"doc-{rng.randrange(10_000):04d}.md"
            blocks.append(f"[{k + 1}] (source: {source})\n{generate_text(rng, self._passage_words())}")
        return "\n\n".join(blocks)

    def chat(self) -> Workload:
        """Short chat: one short user question, unique per request."""

        async def build(index: int) -> list[Message]:
            question = _rng(self.seed, "chat", index).choice(CHAT_QUESTIONS)
            return [{"role": "user", "content": f"({self.run_tag}-{index}) {question}"}]

        return Workload("chat", "short chat: one short user question", build)

    def rag(self) -> Workload:
        """RAG-shaped: shared system prompt, then K passages and a question unique to the request."""

        async def build(index: int) -> list[Message]:
            user = (
                f"Context passages (set {self.run_tag}-{index}):\n\n{self._passages('rag', index)}\n\n"
                f"Question: {_rag_question(_rng(self.seed, 'rag-q', index))}"
            )
            return [{"role": "system", "content": RAG_SYSTEM_PROMPT}, {"role": "user", "content": user}]

        return Workload(
            "rag",
            f"RAG: system prompt + {self.rag_passages} passages of ~{self.passage_tokens} tokens + question",
            build,
        )

    def rag_shared_prefix(self) -> Workload:
        """Prefix experiment, shared: one system prompt and passage set for all, a new question each."""
        passages = self._passages("rag-shared", 0)

        async def build(index: int) -> list[Message]:
            user = (
                f"Context passages (set {self.run_tag}-shared):\n\n{passages}\n\n"
                f"Question: {_rag_question(_rng(self.seed, 'rag-shared-q', index))}"
            )
            return [{"role": "system", "content": RAG_SYSTEM_PROMPT}, {"role": "user", "content": user}]

        return Workload("rag-shared", "RAG, every request with the same system prompt and passages", build)

    def rag_unique_prefix(self) -> Workload:
        """Prefix experiment, unique: the request's own tag first, so no cache block is shared."""

        async def build(index: int) -> list[Message]:
            user = (
                f"Context passages (set {self.run_tag}-unique):\n\n{self._passages('rag-unique', index)}\n\n"
                f"Question: {_rag_question(_rng(self.seed, 'rag-shared-q', index))}"
            )
            system = f"[{self.run_tag}-u{index:05d}] {RAG_SYSTEM_PROMPT}"
            return [{"role": "system", "content": system}, {"role": "user", "content": user}]

        return Workload("rag-unique", "RAG, every request with its own prefix (nothing shared)", build)

    def long_context(self, target_tokens: int, count_tokens: TokenCounter) -> Workload:
        """One user message of about `target_tokens` prompt tokens, checked with the server's tokenizer."""
        words_cache: dict[str, int] = {}

        def compose(index: int, words: int) -> list[Message]:
            body = generate_text(_rng(self.seed, "long", index), words)
            return [
                {
                    "role": "user",
                    "content": f"({self.run_tag}-{index}) Read this report and list its main points.\n\n"
                    + body,
                }
            ]

        async def build(index: int) -> list[Message]:
            words = words_cache.get("words", max(16, int(target_tokens / self.tokens_per_word)))
            messages = compose(index, words)
            for _ in range(6):
                counted = await count_tokens(messages)
                if counted is None or target_tokens * 0.97 <= counted <= target_tokens:
                    break
                words = max(16, int(words * target_tokens / counted) - (4 if counted > target_tokens else 0))
                messages = compose(index, words)
            words_cache["words"] = words
            return messages

        return Workload("long", f"long context: ~{target_tokens} prompt tokens", build)


def dataset_workload(path: Path) -> Workload:
    """Prompts from a JSONL file: one `{"prompt": "..."}` or `{"messages": [...]}` per line, used in order."""
    prompts: list[list[Message]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"--dataset: cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise ValueError(f"--dataset: {path} line {number} is not JSON") from None
        if isinstance(item, dict) and isinstance(item.get("messages"), list):
            prompts.append([{"role": str(m["role"]), "content": str(m["content"])} for m in item["messages"]])
        elif isinstance(item, dict) and isinstance(item.get("prompt"), str):
            prompts.append([{"role": "user", "content": item["prompt"]}])
        else:
            raise ValueError(f"--dataset: {path} line {number} needs a 'prompt' string or a 'messages' list")
    if not prompts:
        raise ValueError(f"--dataset: {path} holds no prompts")

    async def build(index: int) -> list[Message]:
        return prompts[index % len(prompts)]

    return Workload("dataset", f"prompts from {path.name} ({len(prompts)} distinct)", build)


def estimate_tokens(messages: list[Message]) -> int:
    """A tokenizer-free estimate (4 characters per token), for servers without `/tokenize`."""
    return int(sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN_ESTIMATE)


async def measure_tokens_per_word(
    count_text: Callable[[str], Awaitable[int | None]], seed: int
) -> float | None:
    """Tokens per generated word by the served model's tokenizer, or None when it cannot be asked."""
    sample_words = 2000
    counted = await count_text(generate_text(_rng(seed, "calibrate"), sample_words))
    return counted / sample_words if counted else None
