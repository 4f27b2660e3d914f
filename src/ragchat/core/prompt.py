"""Prompt assembly laid out for vLLM's prefix cache, and budgeted in the served model's tokens.

Layout of a stateless request (most stable first, so repeated questions reuse cached KV blocks):

1. `SYSTEM_PROMPT`: the same bytes for every request (no dates, ids or names in it);
2. in the same system message, the passages numbered [1]..[n], best-ranked first (ties broken by chunk id);
3. the earlier turns of the conversation (citation markers removed from old answers: their numbers
   referred to other passages);
4. the question, last.

A conversation continued from the store (`PromptBuilder.build_continued`, `assemble_continued`) is laid out
so that turn N+1's prompt starts with turn N's prompt, byte for byte, and vLLM reuses its cached KV blocks:

1. the system prompt with the FIRST turn's passages (exactly turn 1's system message);
2. turn by turn: the question (from turn 2 on, preceded by the passages that turn added, numbered on from
   the previous ones), then the answer, citations kept (its numbers still mean the same passages);
3. the new question, preceded by the passages it adds; a passage already in the prompt is not repeated:
   the answer cites it by its earlier number.

Text from users and documents (passages, their file names and headings, earlier turns, the question) goes
through `neutralise_control_tokens` first: a chat template's control tokens written in it (`<|im_start|>`,
`<|eot_id|>`, `<start_of_turn>`, `[INST]`...) get a space after their first character, so the tokenizer
reads them as plain text and a document cannot open a turn of its own (a fake system message, say).

Budget (both layouts): the prompt plus the answer reserve (`max_tokens`) must fit `max_model_len`. When it
does not, parts go in this order until it does: the lowest-ranked passages (all but the best one), then the
oldest turns, then the answer reserve shrinks (down to `min_answer_tokens`), then the last passage. A
question that does not fit even then is refused with `PromptTooLong`: no request is ever sent that vLLM
would reject for length.
In a continued conversation "the oldest turns" means whole turns with the passages they added (the next
turn's passages then move into the system message, and citations are stripped from the answers kept, since
the numbers changed); only the new question's passages count as "passages". Dropping a turn changes the
prompt from its start on, so it happens only when the budget leaves no choice.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Protocol

from ragchat.domain import Passage
from ragchat.infra.llm import ChatMessage

SYSTEM_PROMPT = (
    "You are ragchat, an assistant that answers questions about the user's documents.\n"
    "Answer using only the numbered passages below. After each statement, cite the passage it comes from "
    "by its number in square brackets, like [1] or [2][3]. If the passages do not contain the answer, "
    "say that you don't know. Be concise."
)
NO_PASSAGES = "\n\nNo passages were found for this question."
PASSAGES_HEADER = "\n\nPassages:"
PASSAGE_SEPARATOR = "\n\n"

CITATION = re.compile(r"\[(\d+(?:\s*[,;\-\u2013]\s*\d+)*)\]")
"""A citation as `SYSTEM_PROMPT` asks for it: [n], [n, m], [n; m] or [n-m]; group 1 holds the numbers."""

_CITATION_MARKER = re.compile(r"\s*" + CITATION.pattern)
# The families of control tokens chat templates use; the lookaheads keep the matched text to the first
# character, after which a space is inserted.
_CONTROL_TOKEN = re.compile(
    r"<(?=[|\uff5c][^\s<>]{1,64}?[|\uff5c]>)"  # <|im_start|>, <|eot_id|>, <\uff5cUser\uff5c> (DeepSeek)
    r"|<(?=/?(?:[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]*"  # <start_of_turn>, <repo_name>, <jupyter_code>
    r"|s|bos|eos|unk|pad|mask|sep|cls|reponame|filename)>)"  # <s>, </s>, <bos>, StarCoder's names
    r"|\[(?=/?(?:INST|SYSTEM_PROMPT|TOOL_CALLS|AVAILABLE_TOOLS|TOOL_RESULTS)\])"  # Mistral
)
# Template tokens one chat message adds (ChatML and Llama 3 both add about 5); only steers the first guess,
# every budget is then checked with an exact count.
_MESSAGE_OVERHEAD_GUESS = 4


class TokenCounting(Protocol):
    """What the budget needs from the LLM adapter (`ChatModel.count_tokens`)."""

    async def count_tokens(self, prompt: str | Sequence[ChatMessage]) -> int: ...


class PromptTooLong(ValueError):
    """Even the question alone, with the smallest answer reserve, does not fit the model's context."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """An assembled prompt: `passages[i]` is the one numbered [i + 1] in `messages`.

    `passages[added_from:]` are the ones this question added (all of them, except in a continued
    conversation, whose earlier turns' passages come first); `retrieved` holds the numbers of the passages
    retrieved for this question (None: all of them), the sources shown when the answer cites nothing.
    """

    messages: tuple[ChatMessage, ...]
    passages: tuple[Passage, ...]
    max_tokens: int
    prompt_tokens: int
    dropped_passages: int = 0
    dropped_turns: int = 0
    added_from: int = 0
    retrieved: tuple[int, ...] | None = None

    @property
    def added(self) -> tuple[Passage, ...]:
        """The passages this question added to the prompt, in prompt order."""
        return self.passages[self.added_from :]


@dataclass(frozen=True, slots=True)
class EarlierTurn:
    """A stored turn of a continued conversation, with the passages it added to its prompt (in order)."""

    question: str
    answer: str
    passages: tuple[Passage, ...]


def neutralise_control_tokens(text: str) -> str:
    """`text` with a space after the first character of anything shaped like a chat template's control
    token (`<|im_start|>` becomes `< |im_start|>`), so that no tokenizer reads it as one."""
    return _CONTROL_TOKEN.sub(lambda match: match.group(0) + " ", text)


def format_passage(number: int, passage: Passage) -> str:
    """`[n] file.md — Heading > Sub` on one line, then the passage text (control tokens neutralised)."""
    label = PurePath(passage.document_path).name or passage.document_path
    if passage.heading_path:
        label = f"{label} — {passage.heading}"
    return neutralise_control_tokens(f"[{number}] {label}\n{passage.text.strip()}")


def system_message(passages: Sequence[Passage]) -> str:
    """The system prompt followed by the numbered passages (or a line saying there are none)."""
    if not passages:
        return SYSTEM_PROMPT + NO_PASSAGES
    blocks = (format_passage(i, p) for i, p in enumerate(passages, start=1))
    return SYSTEM_PROMPT + PASSAGES_HEADER + PASSAGE_SEPARATOR + PASSAGE_SEPARATOR.join(blocks)


def rank_order(passages: Sequence[Passage]) -> list[Passage]:
    """Best first; equal scores ordered by chunk id; a chunk retrieved twice kept once."""
    unique = {p.chunk_id: p for p in reversed(passages)}  # the first occurrence wins
    return sorted(unique.values(), key=lambda p: (-p.score, p.chunk_id))


def strip_citations(text: str) -> str:
    """`text` without `[n]` markers (used on earlier answers, whose numbers meant other passages)."""
    return _CITATION_MARKER.sub("", text)


def assemble(question: str, history: Sequence[ChatMessage], passages: Sequence[Passage]) -> list[ChatMessage]:
    """The messages for `question`, in the cache-friendly layout described in this module's docstring."""
    messages = [ChatMessage("system", system_message(passages))]
    for turn in history:
        content = strip_citations(turn.content) if turn.role == "assistant" else turn.content
        if content.strip():
            messages.append(ChatMessage(turn.role, neutralise_control_tokens(content.strip())))
    messages.append(ChatMessage("user", neutralise_control_tokens(question.strip())))
    return messages


def assemble_continued(
    question: str,
    earlier: Sequence[EarlierTurn],
    added: Sequence[Passage],
    *,
    keep_citations: bool = True,
) -> tuple[list[ChatMessage], list[Passage]]:
    """The messages for `question` continuing `earlier` in the layout of this module's docstring, and every
    passage in them in number order. `added` must hold no passage of `earlier`."""
    if not earlier:
        return assemble(question, [], added), list(added)
    numbered = list(earlier[0].passages)
    messages = [ChatMessage("system", system_message(numbered))]

    def asked(text: str, passages: Sequence[Passage]) -> ChatMessage:
        if not passages:
            return ChatMessage("user", neutralise_control_tokens(text.strip()))
        start = len(numbered) + 1
        numbered.extend(passages)
        blocks = PASSAGE_SEPARATOR.join(format_passage(start + i, p) for i, p in enumerate(passages))
        header = PASSAGES_HEADER.lstrip() + PASSAGE_SEPARATOR
        return ChatMessage(
            "user", header + blocks + PASSAGE_SEPARATOR + neutralise_control_tokens(text.strip())
        )

    for position, turn in enumerate(earlier):
        messages.append(asked(turn.question, turn.passages if position else ()))
        answer = turn.answer if keep_citations else strip_citations(turn.answer)
        if answer.strip():
            messages.append(ChatMessage("assistant", neutralise_control_tokens(answer.strip())))
    messages.append(asked(question, added))
    return messages, numbered


class PromptBuilder:
    """Builds prompts that fit the served model's context (see the module docstring for the order)."""

    def __init__(self, counter: TokenCounting, *, min_answer_tokens: int = 64) -> None:
        self._counter = counter
        self._min_answer_tokens = min_answer_tokens

    async def build(
        self,
        *,
        question: str,
        history: Sequence[ChatMessage],
        passages: Sequence[Passage],
        max_tokens: int,
        max_model_len: int,
    ) -> Prompt:
        """The prompt for `question` after `history`, with as many of `passages` (best first) as fit.

        The answer reserve is `max_tokens`, but never more than half the context, so passages keep room.
        """
        kept_passages = rank_order(passages)
        kept_turns = [t for t in history if t.role != "system"]
        offered_passages, offered_turns = len(kept_passages), len(kept_turns)
        reserve = min(max_tokens, max_model_len // 2)
        floor = min(self._min_answer_tokens, reserve)

        def finished(messages: list[ChatMessage], count: int) -> Prompt:
            return Prompt(
                messages=tuple(messages),
                passages=tuple(kept_passages),
                max_tokens=reserve,
                prompt_tokens=count,
                dropped_passages=offered_passages - len(kept_passages),
                dropped_turns=offered_turns - len(kept_turns),
            )

        messages = assemble(question, kept_turns, kept_passages)
        count = await self._counter.count_tokens(messages)
        if count + reserve <= max_model_len:
            return finished(messages, count)

        # Over budget: estimate what each droppable part costs, drop in policy order until the estimate
        # fits, then confirm with exact counts (dropping further while it does not).
        passage_costs = await self._costs([format_passage(1, p) for p in kept_passages], extra=1)
        turn_costs = await self._costs([t.content for t in kept_turns], extra=_MESSAGE_OVERHEAD_GUESS)
        cost_of = {id(p): c for p, c in zip(kept_passages, passage_costs, strict=True)}
        cost_of.update({id(t): c for t, c in zip(kept_turns, turn_costs, strict=True)})

        def drop_one(size: int) -> int | None:
            """Apply the next step of the policy; the new estimated prompt size, or None if none is left."""
            nonlocal reserve
            if len(kept_passages) > 1:
                return size - cost_of[id(kept_passages.pop())]
            if kept_turns:
                size -= cost_of[id(kept_turns.pop(0))]
                while kept_turns and kept_turns[0].role == "assistant":
                    size -= cost_of[id(kept_turns.pop(0))]
                return size
            if reserve > floor and size + reserve > max_model_len:
                reserve = max(floor, max_model_len - size)
                return size
            if kept_passages:
                return size - cost_of[id(kept_passages.pop())]
            return None

        estimate: int | None = count
        while estimate is not None and estimate + reserve > max_model_len:
            estimate = drop_one(estimate)
        while True:
            messages = assemble(question, kept_turns, kept_passages)
            count = await self._counter.count_tokens(messages)
            if count + reserve <= max_model_len:
                return finished(messages, count)
            if drop_one(count) is None:
                raise PromptTooLong(
                    f"the question is too long for the model: with no passages and no history the prompt is "
                    f"{count} tokens, and the model takes {max_model_len} tokens in all, answer included "
                    f"(at least {floor}); shorten the question"
                )

    async def _costs(self, texts: Sequence[str], *, extra: int) -> list[int]:
        counts = await asyncio.gather(*(self._counter.count_tokens(text) for text in texts))
        return [c + extra for c in counts]

    async def build_continued(
        self,
        *,
        question: str,
        earlier: Sequence[EarlierTurn],
        passages: Sequence[Passage],
        max_tokens: int,
        max_model_len: int,
    ) -> Prompt:
        """The prompt for `question` continuing `earlier` (oldest first), sharing its start with the prompt
        of the last earlier turn, with as many of `passages` as fit (see the module docstring)."""
        retrieved = rank_order(passages)
        kept = list(earlier)
        reserve = min(max_tokens, max_model_len // 2)
        floor = min(self._min_answer_tokens, reserve)
        fresh_limit: int | None = None  # how many of the new passages to keep (None: all)

        def layout() -> tuple[list[ChatMessage], list[Passage], list[Passage]]:
            seen = {p.chunk_id for turn in kept for p in turn.passages}
            fresh = [p for p in retrieved if p.chunk_id not in seen][:fresh_limit]
            messages, numbered = assemble_continued(
                question, kept, fresh, keep_citations=len(kept) == len(earlier)
            )
            return messages, numbered, fresh

        def drop_one(fresh: int, count: int) -> bool:
            """Apply the next step of the policy; False when nothing is left to drop."""
            nonlocal fresh_limit, reserve
            if fresh > 1:
                fresh_limit = fresh - 1
            elif kept:
                kept.pop(0)
            elif reserve > floor:
                reserve = max(floor, max_model_len - count)
            elif fresh:
                fresh_limit = 0
            else:
                return False
            return True

        while True:
            messages, numbered, fresh = layout()
            count = await self._counter.count_tokens(messages)
            if count + reserve <= max_model_len:
                break
            if not drop_one(len(fresh), count):
                raise PromptTooLong(
                    f"the question is too long for the model: with no passages and no history the prompt is "
                    f"{count} tokens, and the model takes {max_model_len} tokens in all, answer included "
                    f"(at least {floor}); shorten the question"
                )
        number = {p.chunk_id: n for n, p in enumerate(numbered, start=1)}
        return Prompt(
            messages=tuple(messages),
            passages=tuple(numbered),
            max_tokens=reserve,
            prompt_tokens=count,
            dropped_passages=len(retrieved) - sum(1 for p in retrieved if p.chunk_id in number),
            dropped_turns=len(earlier) - len(kept),
            added_from=len(numbered) - len(fresh),
            retrieved=tuple(sorted(number[p.chunk_id] for p in retrieved if p.chunk_id in number)),
        )
