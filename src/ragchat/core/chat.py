"""The chat use case: retrieve passages for the conversation, budget the prompt, stream a cited answer.

`ChatService.prepare` does everything that can be refused before an answer starts: it checks the
conversation's size (before anything is tokenized or embedded), then retrieves and budgets. It raises a
`ragchat.core.errors.RequestRefused` (bad or oversized input, unknown collection), an `LLMError` (an
unreachable LLM while budgeting) or an `EmbeddingError` (an unreachable embedding server while
retrieving). `ChatService.generate` then streams typed events: `DeltaEvent`s with answer text, then
`SourcesEvent` and `DoneEvent` (or one `ErrorEvent` if the LLM fails; it never raises `LLMError`).

Follow-up questions (`retrieve_for_conversation`): two searches run side by side, one for the question
alone and one for the question after the user's two previous questions (`retrieval_query`), and their
rankings are fused (RRF). "And how do I undo that?" thus finds the passage about what "that" was, while a
question on a new topic still finds its own, with no LLM call before the answer starts. Each ranking is
2k deep before the fusion, so that a passage just past k in one of them still counts. How this compares
with the question alone and with an LLM rewrite of the question: docs/benchmarks.md, "Follow-up
questions: which retrieval query finds the right passage" (bench/multiturn_retrieval.py).

A conversation saved by the store (`earlier` turns given to `prepare`) is continued server-side: its turns
are the history (the latest ones that fit RAGCHAT_MAX_HISTORY_MESSAGES and RAGCHAT_MAX_HISTORY_CHARS), and
the prompt is laid out so that it starts with the previous turn's prompt (`PromptBuilder.build_continued`),
which vLLM then finds in its prefix cache.

Sources: the passages the answer cites, as [n] numbers (`ragchat.core.prompt.CITATION`) that match a
passage given to the model (other numbers are ignored). If the answer cites nothing (small models often
don't), every passage given to the model for this question is returned with `cited=False`, so the user
still sees what the answer was based on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

from ragchat.core.errors import (
    CollectionNotFound,
    HistoryTooLong,
    InvalidConversation,
    QuestionTooLong,
    RequestRefused,
)
from ragchat.core.prompt import CITATION, EarlierTurn, Prompt, PromptBuilder, PromptTooLong
from ragchat.domain import Passage
from ragchat.infra.conversations import TurnRecord
from ragchat.infra.embeddings import EmbeddingError
from ragchat.infra.llm import ChatMessage, ChatModel, LLMError, LLMTimeout, LLMUnavailable, TokenUsage
from ragchat.observability import AppMetrics, ErrorKind

_SNIPPET_CHARS = 240
_PREVIOUS_QUESTIONS = 2
_RRF_K = 60


class PassageRetriever(Protocol):
    """What chat needs from retrieval (`ragchat.core.retrieve.HybridRetriever`)."""

    async def search(self, query: str, *, collection: str, k: int, mode: str = "hybrid") -> list[Passage]: ...


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """How large a conversation may be; checked before anything in it is tokenized or embedded."""

    max_question_chars: int
    """Characters of the question (the last user message): RAGCHAT_MAX_QUESTION_CHARS."""
    max_history_messages: int
    """Earlier user and assistant messages: RAGCHAT_MAX_HISTORY_MESSAGES."""
    max_history_chars: int
    """Characters of the earlier messages together: RAGCHAT_MAX_HISTORY_CHARS."""

    def check(self, conversation: Sequence[ChatMessage]) -> None:
        """Raise a `RequestRefused` if `conversation` (user and assistant turns) has no question or is
        over a limit. Only lengths are read: this is safe on any input, however large."""
        if not conversation or conversation[-1].role != "user" or not conversation[-1].content.strip():
            raise InvalidConversation("the last message must be a non-empty user message (the question)")
        question = len(conversation[-1].content)
        if question > self.max_question_chars:
            raise QuestionTooLong(
                f"the question is {question} characters long, more than the {self.max_question_chars} "
                "this server takes (RAGCHAT_MAX_QUESTION_CHARS); shorten it"
            )
        history = conversation[:-1]
        if len(history) > self.max_history_messages:
            raise HistoryTooLong(
                f"the conversation has {len(history)} messages before the question, more than the "
                f"{self.max_history_messages} this server takes (RAGCHAT_MAX_HISTORY_MESSAGES); "
                "send only the latest ones"
            )
        history_chars = sum(len(m.content) for m in history)
        if history_chars > self.max_history_chars:
            raise HistoryTooLong(
                f"the messages before the question hold {history_chars} characters, more than the "
                f"{self.max_history_chars} this server takes (RAGCHAT_MAX_HISTORY_CHARS); "
                "send only the latest ones"
            )

    def latest(self, turns: Sequence[TurnRecord]) -> list[TurnRecord]:
        """The latest of a stored conversation's turns that fit the history limits."""
        kept: list[TurnRecord] = []
        chars = 0
        for turn in reversed(turns):
            chars += len(turn.question) + len(turn.answer)
            if 2 * (len(kept) + 1) > self.max_history_messages or chars > self.max_history_chars:
                break
            kept.append(turn)
        return kept[::-1]


@dataclass(frozen=True, slots=True)
class Source:
    """A passage given to the model, numbered as the model saw it; `cited` if the answer cites it."""

    index: int
    passage: Passage
    cited: bool

    @property
    def snippet(self) -> str:
        """The start of the passage text on one line, cut at a word boundary."""
        text = " ".join(self.passage.text.split())
        if len(text) <= _SNIPPET_CHARS:
            return text
        return text[:_SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    text: str


@dataclass(frozen=True, slots=True)
class SourcesEvent:
    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    error: LLMError


@dataclass(frozen=True, slots=True)
class DoneEvent:
    finish_reason: str
    usage: TokenUsage | None


ChatEvent = DeltaEvent | SourcesEvent | ErrorEvent | DoneEvent


@dataclass(frozen=True, slots=True)
class PreparedChat:
    """A budgeted prompt ready to send, with what produced it. `received_at` is a `perf_counter` time."""

    collection: str
    retrieval_query: str
    prompt: Prompt
    temperature: float
    received_at: float
    model: str = ""
    """The served model that answers (the backend's name for it)."""


async def retrieve_for_conversation(
    retriever: PassageRetriever, conversation: Sequence[ChatMessage], *, collection: str, k: int
) -> tuple[str, list[Passage]]:
    """The passages for the conversation's last question (see the module docstring) and the query used."""
    question = conversation[-1].content.strip()
    query = retrieval_query(conversation)
    if query == question:
        return query, await retriever.search(query, collection=collection, k=k)
    alone, with_history = await asyncio.gather(
        retriever.search(question, collection=collection, k=2 * k),
        retriever.search(query, collection=collection, k=2 * k),
    )
    return query, fuse_rankings(with_history, alone, k=k)


def fuse_rankings(first: Sequence[Passage], second: Sequence[Passage], *, k: int) -> list[Passage]:
    """Reciprocal rank fusion of two rankings (`score` becomes the fused score); `first` wins ties."""
    scores: dict[str, float] = {}
    by_id: dict[str, Passage] = {}
    for ranking in (second, first):
        for rank, passage in enumerate(ranking, start=1):
            scores[passage.chunk_id] = scores.get(passage.chunk_id, 0.0) + 1.0 / (_RRF_K + rank)
            by_id[passage.chunk_id] = passage
    first_rank = {p.chunk_id: rank for rank, p in enumerate(first)}
    order = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], first_rank.get(chunk_id, len(first))))
    return [dataclasses.replace(by_id[chunk_id], score=scores[chunk_id]) for chunk_id in order[:k]]


def retrieval_query(conversation: Sequence[ChatMessage]) -> str:
    """The text to retrieve with: the last user message, after the user's two previous messages."""
    questions = [m.content.strip() for m in conversation if m.role == "user" and m.content.strip()]
    return "\n".join(questions[-(_PREVIOUS_QUESTIONS + 1) :])


def cited_numbers(answer: str) -> list[int]:
    """Every passage number cited as [n], [n, m] or [n-m] in `answer`, in order of first appearance."""
    numbers: list[int] = []
    for group in CITATION.findall(answer):
        for part in re.split(r"\s*[,;]\s*", group):
            bounds = re.split(r"\s*[\-\u2013]\s*", part)
            low, high = int(bounds[0]), int(bounds[-1])
            for number in range(low, min(high, low + 50) + 1):
                if number not in numbers:
                    numbers.append(number)
    return numbers


def select_sources(
    answer: str, passages: Sequence[Passage], retrieved: Sequence[int] | None = None
) -> tuple[Source, ...]:
    """The cited passages (numbers that match no passage are dropped), or, uncited, those numbered in
    `retrieved` (the ones found for this question; None: all of them)."""
    cited = {n for n in cited_numbers(answer) if 1 <= n <= len(passages)}
    if not cited:
        shown = set(range(1, len(passages) + 1) if retrieved is None else retrieved)
        return tuple(Source(i, p, cited=False) for i, p in enumerate(passages, start=1) if i in shown)
    return tuple(Source(i, p, cited=True) for i, p in enumerate(passages, start=1) if i in cited)


class ChatService:
    """Answers a conversation with cited passages from one collection."""

    def __init__(
        self,
        *,
        retriever: PassageRetriever,
        llm: ChatModel,
        list_collections: Callable[[], Awaitable[list[str]]],
        passages_by_id: Callable[[Sequence[str]], Awaitable[list[Passage]]],
        default_collection: str,
        retrieval_k: int,
        max_tokens: int,
        temperature: float,
        limits: ChatLimits,
        metrics: AppMetrics,
    ) -> None:
        """`max_tokens` is the answer length used when a request names none, and the most it may name."""
        self._retriever = retriever
        self._metrics = metrics
        self._llm = llm
        self._list_collections = list_collections
        self._passages_by_id = passages_by_id
        self._builder = PromptBuilder(llm)
        self.default_collection = default_collection
        self._k = retrieval_k
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._limits = limits

    async def prepare(
        self,
        conversation: Sequence[ChatMessage],
        *,
        collection: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        earlier: Sequence[TurnRecord] | None = None,
    ) -> PreparedChat:
        """Check, retrieve and budget (see the module docstring for what it raises).

        `max_tokens` above the service's maximum is lowered to it, as the budget lowers it to fit.
        `earlier`: the stored turns of the conversation this question continues (oldest first); the
        question is then the last user message of `conversation`, whose other messages are not read.
        """
        received_at = time.perf_counter()
        turns = [m for m in conversation if m.role in ("user", "assistant")]
        stored: list[EarlierTurn] | None = None
        if earlier is not None:
            stored = await self._earlier_turns(self._limits.latest(earlier))
            question = turns[-1:] if turns and turns[-1].role == "user" else []
            turns = [
                *(
                    message
                    for turn in stored
                    for message in (ChatMessage("user", turn.question), ChatMessage("assistant", turn.answer))
                ),
                *question,
            ]
        try:
            self._limits.check(turns)
        except RequestRefused:
            self._metrics.error("bad_request")
            raise
        collection = collection or self.default_collection
        try:
            query, passages = await retrieve_for_conversation(
                self._retriever, turns, collection=collection, k=self._k
            )
        except EmbeddingError:
            self._metrics.error("embedding")
            raise
        if not passages and collection != self.default_collection:
            known = await self._list_collections()
            if collection not in known:
                self._metrics.error("not_found")
                raise CollectionNotFound(
                    f"collection {collection!r} does not exist; "
                    f"known collections: {', '.join(known) or 'none'}"
                )
        try:
            with self._metrics.stage("prompt_assembly"):
                info = await self._llm.model_info()
                answer_tokens = min(max_tokens or self._max_tokens, self._max_tokens)
                if stored is None:
                    prompt = await self._builder.build(
                        question=turns[-1].content,
                        history=turns[:-1],
                        passages=passages,
                        max_tokens=answer_tokens,
                        max_model_len=info.max_model_len,
                    )
                else:
                    prompt = await self._builder.build_continued(
                        question=turns[-1].content,
                        earlier=stored,
                        passages=passages,
                        max_tokens=answer_tokens,
                        max_model_len=info.max_model_len,
                    )
        except PromptTooLong as exc:
            self._metrics.error("bad_request")
            raise QuestionTooLong(str(exc)) from None
        except LLMError as exc:
            self._metrics.error(_error_kind(exc))
            raise
        return PreparedChat(
            collection=collection,
            retrieval_query=query,
            prompt=prompt,
            temperature=self._temperature if temperature is None else temperature,
            received_at=received_at,
            model=info.model,
        )

    async def _earlier_turns(self, turns: Sequence[TurnRecord]) -> list[EarlierTurn]:
        """Stored turns with the passages they added to their prompts (passages deleted since left out)."""
        found = await self._passages_by_id([chunk_id for turn in turns for chunk_id in turn.prompt_chunks])
        by_id = {passage.chunk_id: passage for passage in found}
        return [
            EarlierTurn(
                question=turn.question,
                answer=turn.answer,
                passages=tuple(by_id[c] for c in turn.prompt_chunks if c in by_id),
            )
            for turn in turns
        ]

    async def generate(self, prepared: PreparedChat) -> AsyncGenerator[ChatEvent, None]:
        """Stream the answer, then its sources. Closing this iterator cancels the LLM request."""
        parts: list[str] = []
        finish_reason: str | None = None
        usage: TokenUsage | None = None
        failure: LLMError | None = None
        prompt = prepared.prompt
        try:
            deltas_in = self._llm.stream(
                prompt.messages, max_tokens=prompt.max_tokens, temperature=prepared.temperature
            )
            async with aclosing(deltas_in) as deltas:
                async for delta in deltas:
                    if delta.text:
                        if not parts:
                            self._metrics.observe("ttft", time.perf_counter() - prepared.received_at)
                        parts.append(delta.text)
                        yield DeltaEvent(delta.text)
                    if delta.finish_reason:
                        finish_reason, usage = delta.finish_reason, delta.usage
        except LLMError as exc:
            failure = exc
        finally:
            if finish_reason is None and failure is None:  # closed early: the client went away
                self._metrics.error("client_disconnect")
        if failure is not None:
            self._metrics.error(_error_kind(failure))
            yield ErrorEvent(failure)
            return
        self._metrics.observe("total", time.perf_counter() - prepared.received_at)
        if usage is not None:
            self._metrics.tokens(usage.prompt_tokens, usage.completion_tokens)
        yield SourcesEvent(select_sources("".join(parts), prompt.passages, prompt.retrieved))
        yield DoneEvent(finish_reason or "stop", usage)


def _error_kind(error: LLMError) -> ErrorKind:
    if isinstance(error, LLMTimeout):
        return "llm_timeout"
    if isinstance(error, LLMUnavailable):
        return "llm_unreachable"
    return "llm_error"
